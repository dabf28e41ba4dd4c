"""What every benchmark shares: child processes measured from outside (wall time, CPU seconds and peak RSS
from `wait4`), the simulator server process, configuration files pointing at it, scratch PostgreSQL
databases, and the fetcher's own ledger read back after a run.

Everything measured runs in a child process of its own, so one client's imports, threads or garbage never
count against another, and the simulator never shares a GIL with what it serves.
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT = 3 * 3600.0


def compile_sources() -> None:
    """Write the bytecode of the fetcher's and the benchmarks' own modules, as installing a wheel does.

    An editable install has none, and with `PYTHONDONTWRITEBYTECODE` set (as on the CI machine) every child
    would compile each module it imports from source at each start: about 1,040 M instructions, 11 % of a
    3-tenant backfill (callgrind), charged to the fetcher alone, since the yardsticks' libraries come
    compiled from their wheels. Python reads existing bytecode whatever that variable says."""
    for package in ("fetcher", "benchmarks"):
        compileall.compile_dir(REPO / package, quiet=1)


class BenchmarkError(RuntimeError):
    """A benchmark could not produce a figure (a child failed, a count did not add up)."""


# ------------------------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class Measured:
    """One child process, measured from the parent."""

    argv: tuple[str, ...]
    wall: float  # seconds from spawn to exit
    cpu: float  # user + system seconds of the child, all its threads
    peak_rss: int  # bytes: the child's high-water resident set (ru_maxrss)
    returncode: int
    stdout: str
    stderr: str

    def check(self, *allowed: int) -> Measured:
        if self.returncode not in (allowed or (0,)):
            tail = "\n".join(self.stderr.strip().splitlines()[-15:])
            raise BenchmarkError(f"{' '.join(self.argv[:6])} ... exited {self.returncode}:\n{tail}")
        return self

    def json(self) -> Any:
        """The last line of standard output, as JSON (how the clients report)."""
        lines = self.stdout.strip().splitlines()
        if not lines:
            raise BenchmarkError(f"{' '.join(self.argv[:6])} printed nothing")
        return orjson.loads(lines[-1])


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run `argv` to its end; rusage comes from `wait4`, so it is the child's alone, threads included."""
    with _capture() as out, _capture() as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd or REPO,
            env={**os.environ, **(env or {})},
        )
        try:
            _, status, usage = _wait4(child.pid, started)
        except BaseException:
            child.kill()
            child.wait()
            raise
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: stop Popen from waiting again
        out.seek(0)
        err.seek(0)
        return Measured(
            tuple(argv),
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss * 1024,
            child.returncode,
            out.read(),
            err.read(),
        )


def _wait4(pid: int, started: float) -> tuple[int, int, Any]:
    while True:
        found, status, usage = os.wait4(pid, os.WNOHANG)
        if found:
            return found, status, usage
        if time.perf_counter() - started > CHILD_TIMEOUT:
            raise BenchmarkError(f"child {pid} ran longer than {CHILD_TIMEOUT:.0f} s")
        time.sleep(0.02)


@contextlib.contextmanager
def _capture() -> Iterator[IO[str]]:
    import tempfile

    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as file:
        yield file


@dataclass(frozen=True)
class Fetcher:
    """The fetcher program a benchmark runs: this checkout's by default, or another checkout's (`of_checkout`,
    for a same-run A/B against older code: `benchmarks.before`)."""

    argv: tuple[str, ...] = (PYTHON, "-m", "fetcher")
    profiles_key: bool = True  # its configuration knows `[fetch] control_profiles` (older code fetched none)

    @classmethod
    def of_checkout(cls, checkout: Path) -> Fetcher:
        """The `fetcher` script of `checkout`'s own virtualenv (`.venv`), its bytecode written first as
        `compile_sources` does for this one, so that neither side compiles at start-up."""
        script = checkout / ".venv" / "bin" / "fetcher"
        if not script.is_file():
            raise BenchmarkError(f"{script} is missing: make {checkout}'s virtualenv and `pip install -e .` there")
        compileall.compile_dir(checkout / "fetcher", quiet=1)
        example = (checkout / "config.example.toml").read_text(encoding="utf-8")
        return cls((str(script),), "control_profiles" in example)


OWN_FETCHER = Fetcher()


def fetcher_argv(config: Path, *args: str, fetcher: Fetcher = OWN_FETCHER) -> list[str]:
    return [*fetcher.argv, "--config", str(config), "-q", *args]


def client_argv(module: str, *args: str) -> list[str]:
    return [PYTHON, "-m", f"benchmarks.clients.{module}", *args]


# ------------------------------------------------------------------------------------------ simulator


@dataclass
class SimServer:
    """The simulator, served by `benchmarks.clients.simserver` in its own process."""

    directory: Path
    tenants: int
    latency_ms: float = 0.0
    controls: int = 230
    page_size: int = 20
    cache_mb: float = 256.0
    seed: int = 7
    synced_groups: int = 0  # > 0: lastSynced shared by groups of controls, as real tenants show it
    info: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[str] | None = None

    def __enter__(self) -> SimServer:
        argv = client_argv(
            "simserver",
            "--tenants",
            str(self.tenants),
            "--seed",
            str(self.seed),
            "--latency-ms",
            str(self.latency_ms),
            "--controls",
            str(self.controls),
            "--page-size",
            str(self.page_size),
            "--cache-mb",
            str(self.cache_mb),
            "--synced-groups",
            str(self.synced_groups),
            "--dir",
            str(self.directory),
        )
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("READY "):
            self._process.kill()
            raise BenchmarkError(f"the simulator did not start: {line!r}")
        self.info = json.loads(line[len("READY ") :])
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            assert process.stdin is not None
            process.stdin.write("quit\n")
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def command(self, name: str) -> dict[str, Any]:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(name + "\n")
        process.stdin.flush()
        answer: dict[str, Any] = json.loads(process.stdout.readline())
        return answer

    def clear(self) -> None:
        self.command("clear")

    def set_newest_day(self, day: date) -> None:
        """Move the simulator's "today": `day` becomes the newest (full) day, the days before it thin."""
        self.command(f"newest {day.isoformat()}")

    def requests(self) -> dict[str, int]:
        """Requests seen since the last `clear`, by endpoint (token, list, get, other)."""
        counts: dict[str, int] = self.command("stats")["requests"]
        return counts

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def write_config(
        self,
        path: Path,
        *,
        database_url: str,
        keep_raw: bool = True,
        concurrency: int = 16,
        history_days: int = 90,
        tenants_file: str | None = None,
        control_profiles: bool | None = False,
    ) -> Path:
        """A fetcher.toml for this simulator, its tenants read from a CSV file (as for thousands of tenants).

        Control profiles are off unless asked for: the other benchmarks compare secureScores alone with
        clients that fetch nothing else (`benchmarks.profiles` measures what profiles add). None leaves the
        key out, for a fetcher older than it (which fetched no profiles)."""
        info = self.info
        lines = [
            f"tenants_file = {_toml(tenants_file or info['tenants_file'])}",
            "",
            "[database]",
            f"url = {_toml(database_url)}",
            f"keep_raw = {'true' if keep_raw else 'false'}",
            "",
            "[graph]",
            f"base_url = {_toml(info['graph_base_url'])}",
            f"authority_host = {_toml(info['origin'])}",
            f"ca_bundle = {_toml(info['ca_file'])}",
            "timeout_seconds = 120",
            "",
            "[fetch]",
            f"concurrency = {concurrency}",
            f"history_days = {history_days}",
            *([] if control_profiles is None else [f"control_profiles = {'true' if control_profiles else 'false'}"]),
            "",
            "[auth]",
            'method = "client_secret"',
            f"client_id = {_toml(info['client_id'])}",
            f"client_secret = {_toml('file:' + info['client_secret_file'])}",
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def client_args(self) -> list[str]:
        """What the floor and peer clients need to reach this simulator."""
        info = self.info
        return [
            "--origin",
            info["origin"],
            "--ca-file",
            info["ca_file"],
            "--client-id",
            info["client_id"],
            "--client-secret-file",
            info["client_secret_file"],
            "--tenants-file",
            info["tenants_file"],
        ]


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=True)


# ---------------------------------------------------------------------------------------------- databases


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


@dataclass(frozen=True)
class Postgres:
    """A server where scratch databases are made and dropped; `url` names any database on it."""

    url: str  # postgresql://user@host:port/db (a +asyncpg suffix is accepted)

    @property
    def plain_url(self) -> str:
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    def database_url(self, name: str, *, driver: str = "") -> str:
        parts = urlsplit(self.plain_url)
        scheme = "postgresql+asyncpg" if driver == "sqlalchemy" else "postgresql"
        return urlunsplit((scheme, parts.netloc, f"/{name}", "", ""))

    def available(self) -> str | None:
        """None when the server answers, else why not."""
        try:
            asyncio.run(self._execute("SELECT 1"))
        except (TimeoutError, OSError, ImportError) as error:
            return f"PostgreSQL at {self.url} is unreachable ({type(error).__name__}: {error})"
        except Exception as error:  # asyncpg's own errors: authentication, missing database
            return f"PostgreSQL at {self.url} refused ({type(error).__name__}: {error})"
        return None

    @contextlib.contextmanager
    def scratch(self, label: str) -> Iterator[str]:
        """A fresh database, dropped on exit; yields its name."""
        name = f"bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        try:
            yield name
        finally:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _execute(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.plain_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def migrate(config: Path, fetcher: Fetcher = OWN_FETCHER) -> None:
    """Create the schema with the project's own migrations (`fetcher migrate`), or with those of the
    `fetcher` given (an older checkout's schema, for its own runs; the floor writes this checkout's)."""
    measure(fetcher_argv(config, "migrate", fetcher=fetcher), cwd=REPO).check()


# ------------------------------------------------------------------------------------------ the ledger


@dataclass(frozen=True)
class RunLedger:
    """What the fetcher recorded about its latest run, and what its tables hold."""

    status: str
    seconds: float  # fetch_runs.finished_at - started_at
    tenants_succeeded: int
    tenants_failed: int
    scores_upserted: int
    graph_requests: int  # sum of tenant_runs.requests
    retries: int
    throttled: int
    score_rows: int
    control_rows: int
    lead_in: float = 0.0  # seconds from the run's start to its first tenant's (start-up: lock, plan, session)
    lead_out: float = 0.0  # seconds from its last tenant's end to the run's (last commit, closing, ledger)


_LEDGER_SQL = (
    "SELECT status, started_at, finished_at, tenants_succeeded, tenants_failed, scores_upserted, run_id "
    "FROM fetch_runs ORDER BY started_at DESC LIMIT 1",
    "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(retries), 0), COALESCE(SUM(throttled), 0), "
    "MIN(started_at), MAX(finished_at) FROM tenant_runs WHERE run_id = {run}",
    "SELECT COUNT(*) FROM secure_scores",
    "SELECT COUNT(*) FROM control_scores",
)


def read_ledger(database_url: str) -> RunLedger:
    if database_url.startswith("sqlite"):
        return _sqlite_ledger(Path(database_url.split("///", 1)[1]))
    return asyncio.run(_postgres_ledger(database_url.replace("postgresql+asyncpg://", "postgresql://", 1)))


def _sqlite_ledger(path: Path) -> RunLedger:
    with contextlib.closing(sqlite3.connect(path)) as db:
        run = db.execute(_LEDGER_SQL[0]).fetchone()
        if run is None:
            raise BenchmarkError(f"{path}: no run in fetch_runs")
        sums = db.execute(_LEDGER_SQL[1].format(run="?"), (run[6],)).fetchone()
        scores = db.execute(_LEDGER_SQL[2]).fetchone()[0]
        control_rows = db.execute(_LEDGER_SQL[3]).fetchone()[0]
    return _ledger(run, sums, scores, control_rows)


async def _postgres_ledger(url: str) -> RunLedger:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        run = await conn.fetchrow(_LEDGER_SQL[0])
        if run is None:
            raise BenchmarkError(f"{url}: no run in fetch_runs")
        sums = await conn.fetchrow(_LEDGER_SQL[1].format(run="$1"), run[6])
        scores = await conn.fetchval(_LEDGER_SQL[2])
        control_rows = await conn.fetchval(_LEDGER_SQL[3])
    finally:
        await conn.close()
    return _ledger(tuple(run), tuple(sums), scores, control_rows)


def _ledger(run: Sequence[Any], sums: Sequence[Any], scores: int, control_rows: int) -> RunLedger:
    started, finished = _time(run[1]), _time(run[2])
    first, last = (started, finished) if sums[3] is None else (_time(sums[3]), _time(sums[4]))
    return RunLedger(
        status=run[0],
        seconds=(finished - started).total_seconds(),
        tenants_succeeded=run[3],
        tenants_failed=run[4],
        scores_upserted=run[5],
        graph_requests=int(sums[0]),
        retries=int(sums[1]),
        throttled=int(sums[2]),
        score_rows=scores,
        control_rows=control_rows,
        lead_in=(first - started).total_seconds(),
        lead_out=(finished - last).total_seconds(),
    )


def _time(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def expect_complete(ledger: RunLedger, *, tenants: int, days: int, what: str) -> None:
    """Refuse a figure from a run that did not fetch everything it was asked (a failure would flatter it)."""
    if ledger.tenants_failed or ledger.tenants_succeeded != tenants or ledger.scores_upserted != tenants * days:
        raise BenchmarkError(
            f"{what}: the run was not complete: {ledger.tenants_succeeded} of {tenants} tenants succeeded, "
            f"{ledger.tenants_failed} failed, {ledger.scores_upserted} of {tenants * days} score-days"
        )


# ------------------------------------------------------------------------------------------ formatting


def megabytes(size: float) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"
