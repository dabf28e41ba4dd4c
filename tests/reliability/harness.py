"""The reliability suite's rig: `fetcher` as a real process against the simulator, every word it says kept
for the secrets scan, and the database compared with the simulator's truth.

`Rig` is `tests.e2e.World` with distinctive secrets, JSON logs at debug level, output kept in files (a
pipe would fill and stall a chatty process), and each process's transcript handed to the session's
`Transcripts`, which `test_secrets.py` scans after everything else has run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fetcher.config import DatabaseConfig
from fetcher.simulator import SimTenant, Simulator, running_simulator
from fetcher.store.archive import dictionary_of, with_base
from fetcher.store.codec import Codec
from fetcher.store.engine import create_engine
from fetcher.store.schema import (
    archive_dictionaries,
    comparative_scores,
    control_scores,
    fetch_runs,
    raw_payloads,
    rejected_payloads,
    run_lock,
    secure_scores,
    tables_of,
    tenant_runs,
)
from tests.e2e import World

# Distinctive, so that a scan for them finds nothing by accident; none of them is ever printed by a test.
CLIENT_SECRET = "Rel~client-secret.7Qx9Zk2Wm4Vn8Tp_do-not-log"
CERTIFICATE_PASSWORD = "Rel-pfx-password.3Gh5Lq8Rt_do-not-log"
WRONG_PASSWORD = "Rel-wrong-pfx-password.9Zq4Xw_do-not-log"
SECRETS = {
    "client secret": CLIENT_SECRET,
    "certificate password": CERTIFICATE_PASSWORD,
    "wrong certificate password": WRONG_PASSWORD,
}
# A JWT's header and payload (the simulator's access tokens are JWTs); looser than the fetcher's own redactor.
TOKEN_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
LOG_OPTIONS = ("-v", "--log-format", "json")
# Retries as short as the configuration allows: few attempts, short timeouts, no long Retry-After.
# Control profiles off: these runs check secureScores against the simulator's truth under every fault;
# the profiles resource has its own runs under faults (tests/resources/test_control_profiles.py).
QUICK_FETCH = {"concurrency": 16, "max_attempts": 3, "max_retry_wait_seconds": 5, "control_profiles": False}


@dataclass(frozen=True)
class Transcript:
    """What one `fetcher` process was asked and said."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str


def essence(output: str, limit: int = 4000) -> str:
    """A process's output without its debug lines, for assertion messages."""
    lines = [line for line in output.splitlines() if '"level":"debug"' not in line]
    return "\n".join(lines)[-limit:]


def fatal_errors(output: str) -> list[str]:
    """The lines of `output` that report what stopped a command: `error: ...` in text, or, with
    `--log-format json` (`LOG_OPTIONS`), the JSON line of level `error` that `fetcher.cli` writes."""
    return [
        line
        for line in output.splitlines()
        if line.startswith("error:") or ('"level":"error"' in line and '"logger":"fetcher.cli"' in line)
    ]


def leaks(text: str) -> list[str]:
    """What in `text` is a secret or shaped like an access token (named, never shown)."""
    found = [f"the {name}" for name, secret in SECRETS.items() if secret in text]
    return found + [f"a token shaped like {m.group()[:6]}..." for m in TOKEN_SHAPE.finditer(text)]


@dataclass
class Transcripts:
    """Every transcript and database of the session, for the secrets scan.

    PostgreSQL tests share one database that later tests empty, so each test's is scanned as it ends
    (the `reliability_postgres` fixture) and only the findings are kept; SQLite files stay on disk.
    """

    entries: list[Transcript] = field(default_factory=list)
    sqlite_files: set[Path] = field(default_factory=set)
    database_leaks: list[str] = field(default_factory=list)
    databases_scanned: int = 0

    def add(self, transcript: Transcript) -> None:
        self.entries.append(transcript)

    def scan_database(self, url: str) -> None:
        self.databases_scanned += 1
        texts = sqlite_text(Path(url.split("///", 1)[1])) if url.startswith("sqlite") else database_text(url)
        self.database_leaks += [f"{url}: {leak}" for text in texts for leak in leaks(text)]


@dataclass
class Rig(World):
    """A running simulator, its configuration, and `fetcher` processes whose every word is kept."""

    transcripts: Transcripts = field(default_factory=Transcripts)
    extra_env: dict[str, str] = field(default_factory=dict)
    logs: Path = Path()
    settings: dict[str, Any] = field(default_factory=dict)
    log_options: tuple[str, ...] = LOG_OPTIONS  # a test of many processes may drop -v: its debug lines cost CPU
    _started: int = 0

    def configure(self, **changes: Any) -> Path:
        """Rewrite the configuration: the settings given so far, these changes, and the quick retries."""
        self.settings.update(changes)
        settings = dict(self.settings)
        return self.write_config(fetch={**QUICK_FETCH, **settings.pop("fetch", {})}, **settings)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "fetcher", "--config", str(self.config), *self.log_options, *args]

    def fetcher(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run `fetcher -v --log-format json ARGS` to completion; its output is kept."""
        return self.start(*args).finish(timeout)

    def start(self, *args: str) -> Process:
        """Start `fetcher -v --log-format json ARGS` and return at once."""
        self._started += 1
        out, err = self.logs / f"{self._started}.out", self.logs / f"{self._started}.err"
        argv = self.argv(*args)
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=self.env())
        self.remember_database()
        return Process(popen, tuple(argv[3:]), out, err, self.transcripts)

    def remember_database(self) -> None:
        if self.database_url.startswith("sqlite"):
            self.transcripts.sqlite_files.add(Path(self.database_url.split("///", 1)[1]))


@dataclass
class Process:
    """A started `fetcher`; `finish()` or `kill()` it, and its transcript is kept."""

    popen: subprocess.Popen[bytes]
    argv: tuple[str, ...]
    out: Path
    err: Path
    transcripts: Transcripts

    def finish(self, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            command = " ".join(self.argv)
            raise AssertionError(f"fetcher {command} hung for {timeout} s:\n{self.stderr()[-3000:]}") from None
        return self._keep()

    def kill(self) -> subprocess.CompletedProcess[str]:
        """SIGKILL: no handler runs, no transaction commits that was not committed already."""
        self.popen.kill()
        self.popen.wait()
        return self._keep()

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60) -> bool:
        """Wait until a log line holds `text`; False if the process ended (or the time ran out) first."""
        deadline, wanted, seen = time.monotonic() + timeout, text.encode(), b""
        with self.err.open("rb") as log:
            while time.monotonic() < deadline:
                seen = seen[-len(wanted) :] + log.read()
                if wanted in seen:
                    return True
                if self.popen.poll() is not None:
                    return False
                time.sleep(0.01)
        return False

    def _keep(self) -> subprocess.CompletedProcess[str]:
        stdout, stderr = self.out.read_text(encoding="utf-8", errors="replace"), self.stderr()
        self.transcripts.add(Transcript(self.argv, self.popen.returncode, stdout, stderr))
        return subprocess.CompletedProcess(self.argv, self.popen.returncode, stdout, stderr)


@contextmanager
def rig(
    tmp_path: Path,
    database_url: str,
    tenants: Sequence[SimTenant],
    transcripts: Transcripts,
    *,
    fetch: Mapping[str, Any] | None = None,
    database: Mapping[str, Any] | None = None,
    graph: Mapping[str, Any] | None = None,
    **sim_options: Any,
) -> Iterator[Rig]:
    """A simulator on loopback with the distinctive secret, and a configuration for it."""
    sim = Simulator(tenants, client_secret=CLIENT_SECRET, **sim_options)
    with running_simulator(sim, tls_dir=tmp_path / "tls") as running:
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        r = Rig(sim, running, tmp_path / "fetcher.toml", database_url, transcripts=transcripts, logs=logs)
        r.configure(fetch=fetch or {}, database=database or {}, graph=graph or {})
        yield r


def tenant_with(tenant: SimTenant, *faults: Any, **changes: Any) -> SimTenant:
    return dataclasses.replace(tenant, faults=faults, **changes)


# ------------------------------------------------------------------------------------------ database


def read(url: str, query: Callable[[sa.Connection], Any]) -> Any:
    """Run a synchronous query function on a short-lived engine."""

    async def go() -> Any:
        engine = create_engine(DatabaseConfig(url=url, busy_timeout_seconds=10))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(query)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def all_rows(url: str, *tables: sa.Table) -> dict[str, list[dict[str, Any]]]:
    """Every row of each table, in primary-key order."""

    def query(conn: sa.Connection) -> dict[str, list[dict[str, Any]]]:
        return {
            t.name: [dict(r._mapping) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
            for t in tables
        }

    return read(url, query)


@dataclass(frozen=True)
class StoredDay:
    """What the database holds for one tenant-day, reduced to what the truth can be compared with."""

    id: str
    current_score: float | None
    controls: int
    bases: frozenset[str]


def truth(sim: Simulator, tenant_id: str, days: int | None = None) -> dict[str, StoredDay]:
    """The simulator's newest `days` objects of a tenant (None: all), as the database should hold them."""
    return {
        o["id"]: StoredDay(
            o["id"],
            o["currentScore"],
            len(o["controlScores"]),
            frozenset(a["basis"] for a in o["averageComparativeScores"]),
        )
        for o in sim.expected_objects(tenant_id, days)
    }


def stored(url: str) -> dict[str, dict[str, StoredDay]]:
    """Every tenant's stored days: its score row, how many control rows, which comparative bases."""

    def query(conn: sa.Connection) -> tuple[list[Any], ...]:
        per_day = (control_scores.c.tenant_id, control_scores.c.score_date)
        return (
            conn.execute(
                sa.select(
                    secure_scores.c.tenant_id,
                    secure_scores.c.score_date,
                    secure_scores.c.id,
                    secure_scores.c.current_score,
                )
            ).all(),
            conn.execute(sa.select(*per_day, sa.func.count()).group_by(*per_day)).all(),
            conn.execute(
                sa.select(comparative_scores.c.tenant_id, comparative_scores.c.score_date, comparative_scores.c.basis)
            ).all(),
        )

    scores, control_counts, basis_rows = read(url, query)
    controls = {(t, str(d)): n for t, d, n in control_counts}
    bases: dict[tuple[str, str], set[str]] = defaultdict(set)
    for tenant_id, day, basis in basis_rows:
        bases[tenant_id, str(day)].add(basis)
    days: dict[str, dict[str, StoredDay]] = defaultdict(dict)
    for tenant_id, day, score_id, current_score in scores:
        key = (tenant_id, str(day))
        days[tenant_id][score_id] = StoredDay(
            score_id, current_score, controls.pop(key, 0), frozenset(bases.pop(key, set()))
        )
    assert not controls, f"control rows without their day's score row: {sorted(controls)[:5]}"
    assert not bases, f"comparative rows without their day's score row: {sorted(bases)[:5]}"
    return dict(days)


def assert_equals_truth(url: str, sim: Simulator, expected: Mapping[str, int | Mapping[str, StoredDay]]) -> int:
    """The database holds exactly the expected days of each tenant (a number: its newest that many), row for
    row, and the archive one object per day; returns the number of days compared."""
    holding = stored(url)
    assert set(holding) <= set(expected), f"days of tenants never asked for: {set(holding) - set(expected)}"
    archive = dict(
        read(
            url,
            lambda conn: conn.execute(
                sa.select(raw_payloads.c.tenant_id, sa.func.count()).group_by(raw_payloads.c.tenant_id)
            ).all(),
        )
    )
    compared = 0
    for tenant_id, days in expected.items():
        want = truth(sim, tenant_id, days) if isinstance(days, int) else days
        have = holding.get(tenant_id, {})
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        assert not missing, f"tenant {tenant_id}: days missing {missing[:3]}"
        assert not extra, f"tenant {tenant_id}: days that should not be there {extra[:3]}"
        wrong = [day for day in want if want[day] != have[day]]
        assert not wrong, f"tenant {tenant_id}: {wrong[0]} stored as {have[wrong[0]]}, simulated {want[wrong[0]]}"
        assert archive.get(tenant_id, 0) == len(want), f"tenant {tenant_id}: archive holds {archive.get(tenant_id)}"
        compared += len(want)
    return compared


def database_text(url: str) -> list[str]:
    """Every row of every table as text (the server's text form of each row), and the archive's compressed
    bodies decompressed; for PostgreSQL, whose files the scan cannot read."""

    def query(conn: sa.Connection) -> list[str]:
        if not sa.inspect(conn).has_table("tenant_runs"):
            return []
        texts = [
            conn.execute(sa.text(f'SELECT string_agg(t::text, chr(10)) FROM "{table.name}" t')).scalar() or ""
            for table in tables_of("postgresql")
        ]
        return texts + archive_text(conn)

    return read(url, query)


def archive_text(conn: sa.Connection) -> list[str]:
    """The archive's bodies, decompressed (zlib, or zstd with the database's dictionary): compression would
    hide a secret from a scan of the bytes."""
    stored = (
        conn.execute(sa.select(archive_dictionaries)).all()
        if sa.inspect(conn).has_table("archive_dictionaries")
        else []
    )
    codec = Codec([dictionary_of(row) for row in stored])
    query = with_base(sa.select(raw_payloads.c.body))  # a delta is read with its base
    return [
        codec.decompress(row.body, None if row.base_body is None else bytes(row.base_body)).decode("utf-8", "replace")
        for row in conn.execute(query)
    ]


def sqlite_text(database: Path) -> list[str]:
    """An SQLite database's files (main, -wal, -shm: freed pages and rolled-back writes too) and its
    archive's decompressed bodies."""
    texts = [path.read_bytes().decode("latin-1") for path in database.parent.glob(database.name + "*")]

    def query(conn: sa.Connection) -> list[str]:
        return archive_text(conn) if sa.inspect(conn).has_table("raw_payloads") else []

    return texts + read(f"sqlite+aiosqlite:///{database}", query)


def truncate(url: str) -> None:
    """Empty every table of a PostgreSQL database (the session's, shared by tests one after another)."""

    def query(conn: sa.Connection) -> None:
        names = ", ".join(f'"{t.name}"' for t in tables_of("postgresql"))
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.commit()

    read(url, query)


def ledger(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`fetch_runs` (oldest first) and `tenant_runs`."""
    tables = all_rows(url, fetch_runs, tenant_runs)
    runs = sorted(tables["fetch_runs"], key=lambda r: r["started_at"])
    return runs, tables["tenant_runs"]


def rejections(url: str) -> list[dict[str, Any]]:
    return all_rows(url, rejected_payloads)["rejected_payloads"]


def lock_rows(url: str) -> list[dict[str, Any]]:
    return all_rows(url, run_lock)["run_lock"]


def wait_for(condition: Callable[[], bool], timeout: float = 60, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except sa.exc.DBAPIError:  # the process under test has not made the tables yet, or holds a lock
            pass
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def environ_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default
