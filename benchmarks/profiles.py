"""6. What fetching control profiles adds to a run: SQLite, `cpu_tenants` tenants of about 230 controls,
each command run twice against the same warm simulator, into fresh copies of one database: once with
`[fetch] control_profiles = false` (the yardstick) and once with profiles on (about 264 per tenant, two pages).

- daily run: `fetcher run` on a database already backfilled (one new day per tenant), the cron case that
  fetches a tenant's profiles once a day (`profiles_max_age_hours` = 24);
- backfill: `fetcher backfill --days cpu_days`, which always fetches them.

    requests per tenant = sum of tenant_runs.requests of the run / tenants
    CPU ms per tenant   = (user + system seconds of the process, from wait4) / tenants x 1,000
    ratio               = with profiles / without, for CPU

Informational rows (no target): they say what the feature costs, so that it is a choice.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from benchmarks.harness import (
    BenchmarkError,
    Measured,
    SimServer,
    fetcher_argv,
    measure,
    migrate,
    read_ledger,
    sqlite_url,
)
from benchmarks.session import Session
from benchmarks.table import Row

NAME = "profiles"


@dataclass(frozen=True)
class Side:
    requests: int
    run: Measured


def simulator(session: Session) -> SimServer:
    sizes = session.sizes
    return SimServer(
        session.directory("profiles-sim"),
        tenants=sizes.cpu_tenants,
        controls=sizes.controls,
        page_size=sizes.page_size,
        cache_mb=64 + sizes.cpu_tenants * sizes.cpu_days * 0.06 + sizes.cpu_tenants * 0.4,
    )


def _side(
    session: Session, sim: SimServer, label: str, command: list[str], *, profiles: bool, base: str | None
) -> Side:
    directory = session.directory(NAME)
    database = directory / f"{label}.db"
    if base is not None:
        shutil.copyfile(base, database)
    config = sim.write_config(directory / f"{label}.toml", database_url=sqlite_url(database), control_profiles=profiles)
    migrate(config)
    session.log(f"{NAME}: {label}")
    run = measure(fetcher_argv(config, *command)).check()
    ledger = read_ledger(sqlite_url(database))
    if ledger.tenants_failed:
        raise BenchmarkError(f"{NAME} {label}: {ledger.tenants_failed} tenants failed")
    return Side(ledger.graph_requests, run)


def _rows(session: Session, name: str, without: Side, with_: Side) -> list[Row]:
    tenants = session.sizes.cpu_tenants
    extra = (with_.requests - without.requests) / tenants
    return [
        Row(
            f"profiles, {name}: requests per tenant",
            f"{with_.requests / tenants:.2f} with profiles (+{extra:.2f})",
            f"{without.requests / tenants:.2f} without",
            with_.requests / without.requests,
        ),
        Row(
            f"profiles, {name}: CPU per tenant",
            f"{with_.run.cpu / tenants * 1000:.1f} CPU ms with profiles",
            f"{without.run.cpu / tenants * 1000:.1f} without",
            with_.run.cpu / without.run.cpu,
        ),
    ]


def run(session: Session) -> list[Row]:
    days = str(session.sizes.cpu_days)
    with simulator(session) as sim:
        backfill = ["backfill", "--days", days]
        warm = _side(session, sim, "warm-up", backfill, profiles=True, base=None)  # fills the simulator's cache
        del warm
        plain = _side(session, sim, "backfill-without", backfill, profiles=False, base=None)
        full = _side(session, sim, "backfill-with", backfill, profiles=True, base=None)
        base = str(session.directory(NAME) / "backfill-without.db")
        daily_plain = _side(session, sim, "run-without", ["run"], profiles=False, base=base)
        daily_full = _side(session, sim, "run-with", ["run"], profiles=True, base=base)
    return [
        *_rows(session, f"daily run ({session.sizes.cpu_tenants} tenants)", daily_plain, daily_full),
        *_rows(session, f"backfill {days} days", plain, full),
    ]
