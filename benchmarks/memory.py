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
"""

from __future__ import annotations

import csv
from pathlib import Path

from benchmarks.harness import (
    SimServer,
    client_argv,
    expect_complete,
    fetcher_argv,
    measure,
    megabytes,
    migrate,
    read_ledger,
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
    return rows
