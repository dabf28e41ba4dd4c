"""2. CPU-bound: latency 0, `cpu_tenants` x 90 days x about 230 controls, on SQLite and on PostgreSQL.

Per database, side by side against the same warm simulator: `fetcher backfill --days 90` (keep_raw = false,
so both sides store the same rows) and the floor (`benchmarks.clients.floor`), each into a fresh database
migrated by `fetcher migrate`, each in its own process.

    score-days per second     = score-days stored / wall seconds of the process
    CPU s per 1,000 score-days = (user + system seconds of the process, from wait4) / score-days x 1,000
    ratio                     = fetcher / floor, for wall time and for CPU seconds; target <= 1.5

The database server's own CPU (PostgreSQL) is not in either figure. An informational row runs the
fetcher's default configuration (keep_raw = true: every object also hashed, compressed and archived).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.harness import (
    BenchmarkError,
    Measured,
    SimServer,
    client_argv,
    expect_complete,
    fetcher_argv,
    measure,
    migrate,
    read_ledger,
    seconds,
    sqlite_url,
)
from benchmarks.session import Session
from benchmarks.table import Row, skipped

TARGET = 1.5
NAME = "cpu"


@dataclass(frozen=True)
class Figures:
    """One side's run: what it stored and what it cost."""

    score_days: int
    control_rows: int
    run: Measured

    @property
    def rate(self) -> float:
        return self.score_days / self.run.wall

    @property
    def cpu_per_thousand(self) -> float:
        return self.run.cpu / self.score_days * 1000


def simulator(session: Session, name: str) -> SimServer:
    sizes = session.sizes
    cache_mb = 64 + sizes.cpu_tenants * sizes.cpu_days * 0.06  # every serialized day stays cached
    return SimServer(
        session.directory(name),
        tenants=sizes.cpu_tenants,
        controls=sizes.controls,
        page_size=sizes.page_size,
        cache_mb=cache_mb,
    )


def warm_up(session: Session, sim: SimServer) -> None:
    """Fetch everything once, storing nothing, so every measured run is served from the simulator's cache."""
    session.log(f"{NAME}: warming the simulator up ({session.sizes.cpu_tenants} tenants)")
    measure(
        client_argv("floor", *sim.client_args(), "--days", str(session.sizes.cpu_days), "--database", "none")
    ).check()


def run_fetcher(session: Session, sim: SimServer, database_url: str, label: str, *, keep_raw: bool) -> Figures:
    sizes = session.sizes
    config = sim.write_config(session.directory(NAME) / f"{label}.toml", database_url=database_url, keep_raw=keep_raw)
    migrate(config)
    session.log(f"{NAME}: fetcher, {label}")
    run = measure(fetcher_argv(config, "backfill", "--days", str(sizes.cpu_days))).check()
    ledger = read_ledger(database_url)
    expect_complete(ledger, tenants=sizes.cpu_tenants, days=sizes.cpu_days, what=f"fetcher {label}")
    return Figures(ledger.score_rows, ledger.control_rows, run)


def run_floor(session: Session, sim: SimServer, database_url: str, floor_database: str, label: str) -> Figures:
    config = sim.write_config(session.directory(NAME) / f"{label}.toml", database_url=database_url)
    migrate(config)
    session.log(f"{NAME}: floor, {label}")
    run = measure(
        client_argv("floor", *sim.client_args(), "--days", str(session.sizes.cpu_days), "--database", floor_database)
    ).check()
    report = run.json()
    return Figures(report["score_days"], report["control_rows"], run)


def compare(name: str, ours: Figures, floor: Figures, *, limit: float | None = TARGET) -> list[Row]:
    if (ours.score_days, ours.control_rows) != (floor.score_days, floor.control_rows):
        raise BenchmarkError(
            f"{name}: the fetcher stored {ours.score_days} score-days and {ours.control_rows} "
            f"control rows, the floor {floor.score_days} and {floor.control_rows}"
        )
    target = f"<= {limit}" if limit is not None else ""
    return [
        Row(
            f"{name}: throughput",
            f"{ours.rate:.0f} score-days/s ({seconds(ours.run.wall)})",
            f"floor {floor.rate:.0f} score-days/s ({seconds(floor.run.wall)})",
            ours.run.wall / floor.run.wall,
            limit,
            target,
        ),
        Row(
            f"{name}: CPU",
            f"{ours.cpu_per_thousand:.2f} CPU s / 1,000 score-days",
            f"floor {floor.cpu_per_thousand:.2f}",
            ours.cpu_per_thousand / floor.cpu_per_thousand,
            limit,
            target,
        ),
    ]


def _sqlite(session: Session, sim: SimServer) -> list[Row]:
    directory = session.directory(NAME)
    for stale in directory.glob("*.db*"):  # a repeat (--repeat) starts from empty databases, as the first run did
        stale.unlink()
    ours = run_fetcher(session, sim, sqlite_url(directory / "fetcher.db"), "sqlite", keep_raw=False)
    floor_path = directory / "floor.db"
    floor = run_floor(session, sim, sqlite_url(floor_path), str(floor_path), "sqlite-floor")
    archived = run_fetcher(session, sim, sqlite_url(directory / "fetcher-raw.db"), "sqlite-keep-raw", keep_raw=True)
    session.shared["fetcher-sqlite"] = archived  # the default configuration: what the peer comparison shows
    return [
        *compare(f"cpu sqlite {describe(session, ours)}", ours, floor),
        *compare("cpu sqlite, keep_raw=true (default config)", archived, floor, limit=None),
    ]


def _postgres(session: Session, sim: SimServer) -> list[Row]:
    postgres = session.postgres
    if session.postgres_missing is not None:
        return [skipped("cpu postgresql", session.postgres_missing, f"<= {TARGET}")]
    with postgres.scratch("fetcher") as ours_db, postgres.scratch("floor") as floor_db:
        ours = run_fetcher(
            session, sim, postgres.database_url(ours_db, driver="sqlalchemy"), "postgresql", keep_raw=False
        )
        floor = run_floor(
            session,
            sim,
            postgres.database_url(floor_db, driver="sqlalchemy"),
            postgres.database_url(floor_db),
            "postgresql-floor",
        )
    return compare(f"cpu postgresql {describe(session, ours)}", ours, floor)


def describe(session: Session, figures: Figures) -> str:
    return f"({session.sizes.cpu_tenants}x{session.sizes.cpu_days} days, {figures.control_rows:,} control rows)"


def run(session: Session) -> list[Row]:
    with simulator(session, "cpu-sim") as sim:
        warm_up(session, sim)
        return [*_sqlite(session, sim), *_postgres(session, sim)]
