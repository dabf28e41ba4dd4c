"""One writing run per shard of a database at a time (`fetcher run --shard K/N`), and one per database
for an unsharded run.

PostgreSQL: session advisory locks, held on a connection kept open for the run; the server drops them
when that connection dies, so a killed run frees them at once. An unsharded run holds the database's key
exclusively; a shard holds it shared, plus its own shard's key exclusively: shards of one database run
side by side, two copies of one shard never do, and an unsharded run excludes (and is excluded by) every
shard.
SQLite: a lease row in `run_lock`, renewed while the run lives, whatever the shard (SQLite has one
writer: a second shard is refused with its own message). A lease is free when it has expired, or when its
holder is a process on this host that no longer exists, so a `kill -9` does not block the next cron run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.errors import LockHeld
from fetcher.models import Shard, Status
from fetcher.store.engine import display_url, is_sqlite, open_connection, transaction
from fetcher.store.schema import fetch_runs, run_lock

log = logging.getLogger(__name__)

LOCK_NAME = "ingestion"
ADVISORY_KEY = 0x5EC5C0E  # "securescore", as a 64-bit advisory lock key
SHARD_CLASS = 0x5EC5C0E  # a shard's key is the pair (SHARD_CLASS, shard_key(shard)): a space apart from the above
LEASE_SECONDS = 120.0
# `fetcher vacuum`'s lease: its renewal cannot write while VACUUM holds SQLite's write lock, and a lease that
# expired meanwhile would let a run in to wait on the lock. A killed vacuum still frees the lock at once for
# the next run on this host (its process is gone). Its run id says it is a vacuum's, so a refusal names the
# figures of the lease actually held, not the refused command's own.
VACUUM_LEASE_SECONDS = 6 * 3600.0
VACUUM_RUN_PREFIX = "vacuum-"
ARCHIVE_RUN_PREFIX = "archive-compact-"
APPLICATION_NAME = "fetcher"  # PostgreSQL: the lock's connection says its holder in `application_name`


def lease_of(run_id: str) -> float:
    """The lease (seconds) the holder of `run_id` takes: a vacuum's long one, else a run's."""
    return VACUUM_LEASE_SECONDS if run_id.startswith(VACUUM_RUN_PREFIX) else LEASE_SECONDS


@dataclass(frozen=True)
class Holder:
    run_id: str
    host: str
    pid: int


def this_process(run_id: str) -> Holder:
    return Holder(run_id, socket.gethostname(), os.getpid())


def shard_key(shard: Shard) -> int:
    """A shard's advisory lock key within SHARD_CLASS: one per (K, N), within PostgreSQL's int4."""
    return shard.count * 1_000_003 + shard.index


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Held for the length of a run: `async with RunLock(engine, holder, shard=...): ...`.

    Raises LockHeld (exit code 3) naming the run that holds it, when it can tell."""

    def __init__(
        self,
        engine: AsyncEngine,
        holder: Holder,
        *,
        shard: Shard | None = None,
        lease_seconds: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.shard = shard
        self.lease = timedelta(seconds=lease_of(holder.run_id) if lease_seconds is None else lease_seconds)
        self._sleep = sleep  # between renewals (SQLite) or checks (PostgreSQL); tests pass their own
        self._conn: AsyncConnection | None = None
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunLock:
        if is_sqlite(self.engine):
            await self._take_lease()
            self._renewer = asyncio.create_task(self._renew_forever(), name="run-lock-renewal")
        else:
            await self._take_advisory()
            self._renewer = asyncio.create_task(self._watch_advisory(), name="run-lock-watch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if is_sqlite(self.engine):
            await self._drop_lease()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))  # the connection is ours alone
                await self._conn.execute(sa.text("RESET application_name"))  # back to the pool as it came
            with contextlib.suppress(Exception):
                await self._conn.close()

    # -- PostgreSQL

    async def _take_advisory(self) -> None:
        conn = await open_connection(self.engine)
        try:
            refused = await self._try_advisory(conn)
            holder = await _lock_holder(conn, refused) if refused else None
            if not refused:  # what a refused command reads in `_lock_holder`: ours has no ledger row
                await _scalar(conn, "SELECT set_config('application_name', :n, false)", n=_application(self.holder))
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if refused:
            await conn.close()
            raise refusal(_describe(holder, refused), display_url(self.engine), "a killed run frees the lock at once")
        self._conn = conn

    async def _try_advisory(self, conn: AsyncConnection) -> str | None:
        """Take this run's keys; None when taken, else what holds one: "*" (the unsharded run) or a shard's
        "K/N", "any" when an unsharded run is refused (some run, sharded or not, holds a key)."""
        if self.shard is None:
            got = await _scalar(conn, "SELECT pg_try_advisory_lock(:key)", key=ADVISORY_KEY)
            return None if got else "any"
        if not await _scalar(conn, "SELECT pg_try_advisory_lock_shared(:key)", key=ADVISORY_KEY):
            return "*"
        if not await _scalar(conn, "SELECT pg_try_advisory_lock(:c, :k)", c=SHARD_CLASS, k=shard_key(self.shard)):
            await _scalar(conn, "SELECT pg_advisory_unlock_all()")
            return str(self.shard)
        return None

    async def _watch_advisory(self) -> None:
        """Say so once if the lock's connection dies (a failover, `pg_terminate_backend`): the server has
        then dropped the lock. The run goes on, since each tenant's transaction keeps the data whole, but
        another run could start meanwhile."""
        assert self._conn is not None
        while True:
            await self._sleep(self.lease.total_seconds() / 3)
            try:
                await self._conn.execute(sa.text("SELECT 1"))
                await self._conn.commit()
            except Exception as exc:
                log.warning(
                    "lost the run lock: its database connection was closed (%s); the run goes on, "
                    "but another run may now start beside it",
                    type(exc).__name__,
                )
                return

    # -- SQLite

    async def _take_lease(self) -> None:
        now = datetime.now(UTC)
        async with transaction(self.engine) as conn:
            row = (await conn.execute(sa.select(run_lock).where(run_lock.c.name == LOCK_NAME))).first()
            if row is not None and not self._lease_is_free(row, now):
                raise self._lease_held(row)
            await conn.execute(sa.delete(run_lock).where(run_lock.c.name == LOCK_NAME))
            await conn.execute(
                sa.insert(run_lock).values(
                    name=LOCK_NAME,
                    run_id=self.holder.run_id,
                    host=self.holder.host,
                    pid=self.holder.pid,
                    shard=None if self.shard is None else str(self.shard),
                    acquired_at=now,
                    expires_at=now + self.lease,
                )
            )

    def _lease_held(self, row: sa.Row[tuple[object, ...]]) -> LockHeld:
        """Refused: a copy of this run, or (SQLite has one writer) another shard of the database."""
        mine = None if self.shard is None else str(self.shard)
        who = f"pid {row.pid} on {row.host}, run {row.run_id}, since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC"
        where = display_url(self.engine)
        if mine is not None and row.shard is not None and row.shard != mine:
            return LockHeld(
                f"shard {mine}: shard {row.shard} ({who}) is running on SQLite database {where}, which takes one "
                "writer: run the shards one after another, or side by side on PostgreSQL"
            )
        of = f" of shard {row.shard}" if row.shard is not None else ""
        # Not the lease's expiry: the holder renews it while it lives, so that time moves and means nothing
        # to a retry; what frees the database is the run ending (or dying, which the next taker notices).
        lease = lease_of(row.run_id)  # the holder's lease, not ours: a vacuum's is 6 h, a run's 120 s
        frees = (
            f"it renews its lock every {lease / 3:g} s while it runs (a run killed on {row.host} frees it at once "
            f"for the next run started there; from another host, {lease:g} s after its last renewal)"
        )
        return refusal(f"another {_kind(row.run_id)}{of} ({who})", where, frees)

    def _lease_is_free(self, row: sa.Row[tuple[object, ...]], now: datetime) -> bool:
        if row.expires_at <= now:
            return True
        same_host = row.host == self.holder.host
        if same_host and row.pid == self.holder.pid:
            return True
        return same_host and not _process_exists(row.pid)

    async def _renew_forever(self) -> None:
        interval = self.lease.total_seconds() / 3
        while True:
            await self._sleep(interval)
            try:
                async with transaction(self.engine) as conn:
                    await conn.execute(
                        sa.update(run_lock)
                        .where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == self.holder.run_id)
                        .values(expires_at=datetime.now(UTC) + self.lease)
                    )
            except Exception as exc:  # a missed renewal is retried; the lease outlives two misses
                log.warning("could not renew the run lock: %s", exc)

    async def _drop_lease(self) -> None:
        with contextlib.suppress(Exception):
            async with transaction(self.engine) as conn:
                await conn.execute(
                    sa.delete(run_lock).where(run_lock.c.name == LOCK_NAME, run_lock.c.run_id == self.holder.run_id)
                )


async def _scalar(conn: AsyncConnection, sql: str, **params: object) -> object:
    return (await conn.execute(sa.text(sql), params)).scalar()


def refusal(who: str, where: str, frees: str) -> LockHeld:
    """The one refusal of every command that needs the run lock (run, backfill, vacuum, archive compact),
    on either database: who holds it, the database, and what frees it."""
    return LockHeld(f"{who} holds database {where}; wait for it to finish: {frees}")


def _kind(run_id: str) -> str:
    """What holds the lock, by its run id: `fetcher vacuum`, `fetcher archive compact`, else a run."""
    if run_id.startswith(VACUUM_RUN_PREFIX):
        return "fetcher vacuum"
    if run_id.startswith(ARCHIVE_RUN_PREFIX):
        return "fetcher archive compact"
    return "fetcher run"


def _application(holder: Holder) -> str:
    """`fetcher PID HOST RUN_ID` within PostgreSQL's 63 bytes of `application_name` (the run id last: a
    long host name cuts it, never the pid)."""
    return f"{APPLICATION_NAME} {holder.pid} {holder.host} {holder.run_id}".encode()[:63].decode(errors="ignore")


@dataclass(frozen=True)
class _Seen:
    """A holder as the ledger or `pg_stat_activity` tells it; `run_id` None when cut from the name."""

    run_id: str | None
    host: str
    pid: int
    started_at: datetime
    shard: str | None


async def _lock_holder(conn: AsyncConnection, refused: str) -> Any:
    """The holder from the ledger (a run), else from the `application_name` of the session holding the
    advisory lock (archive compact writes no ledger row)."""
    return await _running_holder(conn, refused) or await _session_holder(conn)


async def _session_holder(conn: AsyncConnection) -> _Seen | None:
    query = (
        "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND a.application_name LIKE :name "
        "ORDER BY a.backend_start LIMIT 1"
    )
    row = (await conn.execute(sa.text(query), {"key": ADVISORY_KEY, "name": f"{APPLICATION_NAME} %"})).first()
    if row is None:
        return None
    parts = row.application_name.split(" ", 3)
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    run_id = parts[3] if len(parts) == 4 else None
    return _Seen(run_id, parts[2], int(parts[1]), row.backend_start, None)


async def _running_holder(conn: AsyncConnection, refused: str) -> Any:
    """The newest `running` run that can hold what refused us (see `_try_advisory`), from the ledger; None
    when it has not written its row yet."""
    runs = fetch_runs.c
    query = (
        sa.select(runs.run_id, runs.host, runs.pid, runs.started_at, runs.shard)
        .where(runs.status == Status.RUNNING)
        .order_by(runs.started_at.desc())
        .limit(1)
    )
    if refused == "*":
        query = query.where(runs.shard.is_(None))
    elif refused != "any":
        query = query.where(runs.shard == refused)
    return (await conn.execute(query)).first()


def _describe(holder: Any, refused: str) -> str:
    """'another fetcher run [of shard K/N] (pid .. on .., run .., since ..)', as far as the ledger tells."""
    shard = holder.shard if holder is not None else (refused if refused not in ("*", "any") else None)
    kind = _kind(holder.run_id) if holder is not None and holder.run_id else "fetcher run"
    text = f"another {kind}" + (f" of shard {shard}" if shard else "")
    if holder is None:
        return text
    since = f"{holder.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    run = f", run {holder.run_id}" if holder.run_id else ""
    return f"{text} (pid {holder.pid} on {holder.host}{run}, since {since})"
