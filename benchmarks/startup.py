"""7. Start-up (`startup`): the wall time of commands that do little work, which is mostly imports (issue 17).

    fetcher --help    target < 0.3 s
    fetcher status    on a database like the demo's (`startup_tenants` tenants x 90 days of about 230
                      controls, stored by `fetcher backfill` first); informational

Each command runs `startup_repeats` times in a fresh process; the figure is the median wall time, the
spread (fastest to slowest) and the median CPU seconds beside it. Yardstick: the same interpreter starting
and exiting (`python -c pass`), measured the same way in the same run; ratio = command / yardstick.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchmarks.harness import (
    PYTHON,
    Measured,
    SimServer,
    expect_complete,
    fetcher_argv,
    measure,
    migrate,
    read_ledger,
    seconds,
    sqlite_url,
)
from benchmarks.session import Session
from benchmarks.table import Row

NAME = "startup"
HELP_TARGET_S = 0.3
TENANTS = 25  # `fetcher demo`'s default
DAYS = 90


def timed(argv: Sequence[str], repeats: int, *allowed: int) -> list[Measured]:
    return sorted((measure(argv).check(*allowed) for _ in range(repeats)), key=lambda run: run.wall)


def wall(runs: list[Measured]) -> float:
    return statistics.median(run.wall for run in runs)


def spread(runs: list[Measured]) -> str:
    """Median wall time, its spread, and the median CPU seconds (steadier than wall time on a busy machine)."""
    cpu = statistics.median(run.cpu for run in runs)
    return (
        f"{seconds(wall(runs))} (spread {runs[0].wall:.2f} to {runs[-1].wall:.2f} s, {len(runs)} runs; {cpu:.2f} CPU s)"
    )


def run(session: Session) -> list[Row]:
    repeats = session.sizes.startup_repeats
    directory = session.directory(NAME)
    with SimServer(directory / "sim", tenants=TENANTS, controls=session.sizes.controls) as sim:
        database = directory / "status.db"
        database.unlink(missing_ok=True)
        config = sim.write_config(directory / "fetcher.toml", database_url=sqlite_url(database))
        migrate(config)
        session.log(f"{NAME}: filling a demo-sized database ({TENANTS} tenants x {DAYS} days)")
        measure(fetcher_argv(config, "backfill", "--days", str(DAYS))).check()
        expect_complete(read_ledger(sqlite_url(database)), tenants=TENANTS, days=DAYS, what=f"{NAME} database")
    session.log(f"{NAME}: timing, {repeats} runs each")
    bare = timed([PYTHON, "-c", "pass"], repeats)
    help_ = timed([PYTHON, "-m", "fetcher", "--help"], repeats)
    status = timed(fetcher_argv(config, "status"), repeats, 0, 1)  # 1: a stale tenant, still a full answer
    yardstick = f"python -c pass {spread(bare)}"
    return [
        Row(
            "startup: fetcher --help",
            spread(help_),
            yardstick,
            wall(help_) / wall(bare),
            target=f"< {HELP_TARGET_S:g} s",
            value=wall(help_),
            unit="s",
            value_limit=HELP_TARGET_S,
        ),
        Row(
            f"startup: fetcher status ({TENANTS} tenants x {DAYS} days)",
            spread(status),
            yardstick,
            wall(status) / wall(bare),
        ),
    ]
