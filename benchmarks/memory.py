"""4. Memory: the fetcher's peak RSS over a small and a large tenant list (1,000 and 10,000), short history
(`backfill --days 2`), latency 0, realistic days (about 230 controls), SQLite, default configuration.

    peak RSS            = the process's high-water resident set (ru_maxrss from wait4)
    tenant list          = peak RSS of a process that imports the fetcher, loads the same configuration
                           (tenants from a CSV `tenants_file`) and holds the selected tenants
    growth               = peak RSS(large) - peak RSS(small), for the fetcher and for the tenant list
    ratio                = fetcher growth / tenant-list growth; target <= 1.5 (the run may keep a few
                           bytes per tenant beyond its configuration, such as its outcome for the summary,
                           but nothing in proportion to the data fetched)

Both runs use one simulator (the small list is the first tenants of the large one). The bytes the loaded
list holds (tracemalloc) are shown too.

A first night (informational): peak RSS of `backfill --days 90` at concurrency 16 into a new SQLite file
(archive on), where the runner's day budget holds the tenants in flight to concurrency x 90 score-days; the
yardstick is the floor client's peak over the same tenants, days and concurrency on the same simulator (no
budget: 2 x concurrency tenants in flight, no archive).
"""

from __future__ import annotations

import csv
from pathlib import Path

from benchmarks.harness import (
    BenchmarkError,
    Measured,
    SimServer,
    client_argv,
    expect_complete,
    fetcher_argv,
    measure,
    megabytes,
    migrate,
    read_ledger,
    seconds,
    sqlite_url,
)
from benchmarks.session import Session
from benchmarks.table import Row

TARGET = 1.5
NAME = "memory"


def first_tenants(source: Path, target: Path, count: int) -> Path:
    with source.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))[: count + 1]
    with target.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return target


def measure_count(session: Session, sim: SimServer, tenants: int) -> dict[str, int]:
    directory = session.directory(NAME)
    database = directory / f"t{tenants}.db"
    database.unlink(missing_ok=True)
    tenants_file = first_tenants(Path(sim.info["tenants_file"]), directory / f"t{tenants}.csv", tenants)
    config = sim.write_config(
        directory / f"t{tenants}.toml",
        database_url=sqlite_url(database),
        tenants_file=str(tenants_file),
        history_days=session.sizes.memory_days,
    )
    migrate(config)
    session.log(f"{NAME}: {tenants} tenants x {session.sizes.memory_days} days")
    run = measure(fetcher_argv(config, "backfill", "--days", str(session.sizes.memory_days))).check()
    expect_complete(
        read_ledger(sqlite_url(database)),
        tenants=tenants,
        days=session.sizes.memory_days,
        what=f"{NAME} {tenants} tenants",
    )
    listed = measure(client_argv("tenant_list", "--config", str(config))).check()
    traced = measure(client_argv("tenant_list", "--config", str(config), "--trace")).check().json()
    return {
        "fetcher": run.peak_rss,
        "list": listed.peak_rss,
        "traced": traced["traced_bytes"],
        "seconds": int(run.wall),
    }


def run(session: Session) -> list[Row]:
    small, large = session.sizes.memory_tenants
    with SimServer(
        session.directory("memory-sim"),
        tenants=large,
        controls=session.sizes.controls,
        page_size=session.sizes.page_size,
    ) as sim:
        figures = {count: measure_count(session, sim, count) for count in (small, large)}
    a, b = figures[small], figures[large]
    growth, list_growth = b["fetcher"] - a["fetcher"], b["list"] - a["list"]
    rows = [
        Row(
            f"memory: peak RSS, {count:,} tenants x {session.sizes.memory_days} days",
            megabytes(figures[count]["fetcher"]),
            f"tenant list alone {megabytes(figures[count]['list'])} (holds {megabytes(figures[count]['traced'])})",
            value=figures[count]["fetcher"] / 1024 / 1024,  # no target: the median and range under --repeat
            unit="MB",
        )
        for count in (small, large)
    ]
    rows.append(
        Row(
            f"memory: growth {small:,} -> {large:,} tenants",
            f"+{megabytes(growth)}",
            f"tenant list +{megabytes(list_growth)}",
            growth / max(list_growth, 1),
            TARGET,
            f"<= {TARGET}",
        )
    )
    return [*rows, first_night(session)]


FIRST_NIGHT_DAYS = 90
FIRST_NIGHT_CONCURRENCY = 16


def first_night(session: Session) -> Row:
    """Peak RSS of a first night's 90-day backfill, with the floor client's over the same work as yardstick."""
    tenants = session.sizes.first_night_tenants
    directory = session.directory(NAME)
    database, floor_database = directory / "first-night.db", directory / "first-night-floor.db"
    with SimServer(
        session.directory("memory-first-night-sim"),
        tenants=tenants,
        controls=session.sizes.controls,
        page_size=session.sizes.page_size,
    ) as sim:
        for path in (database, floor_database):
            path.unlink(missing_ok=True)
        config = sim.write_config(
            directory / "first-night.toml",
            database_url=sqlite_url(database),
            concurrency=FIRST_NIGHT_CONCURRENCY,
            history_days=FIRST_NIGHT_DAYS,
        )
        migrate(config)
        session.log(f"{NAME}: first night, {tenants} x {FIRST_NIGHT_DAYS} days, concurrency {FIRST_NIGHT_CONCURRENCY}")
        run = measure(fetcher_argv(config, "backfill", "--days", str(FIRST_NIGHT_DAYS))).check()
        ledger = read_ledger(sqlite_url(database))
        expect_complete(ledger, tenants=tenants, days=FIRST_NIGHT_DAYS, what=f"{NAME} first night")
        floor_config = sim.write_config(directory / "first-night-floor.toml", database_url=sqlite_url(floor_database))
        migrate(floor_config)
        session.log(f"{NAME}: first night, the floor")
        floor = measure(
            client_argv(
                "floor", *sim.client_args(), "--days", str(FIRST_NIGHT_DAYS), "--concurrency",
                str(FIRST_NIGHT_CONCURRENCY), "--database", str(floor_database),
            )
        ).check()  # fmt: skip
    stored = floor.json()["score_days"]
    if stored != tenants * FIRST_NIGHT_DAYS:  # a floor that fetched less would flatter the yardstick
        raise BenchmarkError(
            f"{NAME} first night: the floor stored {stored} score-days of {tenants * FIRST_NIGHT_DAYS}"
        )
    return first_night_row(tenants, run, floor)


def first_night_row(tenants: int, ours: Measured, floor: Measured) -> Row:
    """Informational: the fetcher's peak RSS over the floor's, on the same work."""
    return Row(
        f"memory: first night, peak RSS, {tenants:,} tenants x {FIRST_NIGHT_DAYS} days at concurrency "
        f"{FIRST_NIGHT_CONCURRENCY}",
        megabytes(ours.peak_rss),
        f"floor {megabytes(floor.peak_rss)} ({seconds(ours.wall)}; the floor {seconds(floor.wall)})",
        ours.peak_rss / max(floor.peak_rss, 1),
        value=ours.peak_rss / 1024 / 1024,  # no target: the day budget's hold, against a client without one
        unit="MB",
    )
