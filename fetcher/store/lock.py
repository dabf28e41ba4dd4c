"""One writing run per database at a time.

PostgreSQL: a session advisory lock, held on a connection kept open for the run; the server
drops it when that connection dies, so a killed run frees it at once.
SQLite: a lease row in `run_lock`, renewed while the run lives. A lease is free when it has
expired, or when its holder is a process on this host that no longer exists, so a `kill -9`
does not block the next cron run.
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

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.errors import LockHeld
from fetcher.store.engine import display_url, is_sqlite, open_connection, transaction
from fetcher.store.schema import run_lock

log = logging.getLogger(__name__)

LOCK_NAME = "ingestion"
ADVISORY_KEY = 0x5EC5C0E  # "securescore", as a 64-bit advisory lock key
LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class Holder:
    run_id: str
    host: str
    pid: int


def this_process(run_id: str) -> Holder:
    return Holder(run_id, socket.gethostname(), os.getpid())


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Held for the length of a run: `async with RunLock(engine, holder): ...`."""

    def __init__(
        self,
        engine: AsyncEngine,
        holder: Holder,
        *,
        lease_seconds: float = LEASE_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.lease = timedelta(seconds=lease_seconds)
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
                await self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            with contextlib.suppress(Exception):
                await self._conn.close()

    # -- PostgreSQL

    async def _take_advisory(self) -> None:
        conn = await open_connection(self.engine)
        try:
            got = (await conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY})).scalar()
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            raise LockHeld(
                f"another fetcher run holds the lock of database {display_url(self.engine)}; "
                "wait for it to finish (a killed run frees the lock at once)"
            )
        self._conn = conn

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
                raise LockHeld(
                    f"another fetcher run (pid {row.pid} on {row.host}, run {row.run_id}, since "
                    f"{row.acquired_at:%Y-%m-%d %H:%M:%S} UTC) holds database {display_url(self.engine)}; "
                    f"wait for it, or for its lease to expire at {row.expires_at:%H:%M:%S} UTC"
                )
            await conn.execute(sa.delete(run_lock).where(run_lock.c.name == LOCK_NAME))
            await conn.execute(
                sa.insert(run_lock).values(
                    name=LOCK_NAME,
                    run_id=self.holder.run_id,
                    host=self.holder.host,
                    pid=self.holder.pid,
                    acquired_at=now,
                    expires_at=now + self.lease,
                )
            )

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
