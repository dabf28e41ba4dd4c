"""1. Latency-bound: the simulator (its own process) answering every request after `latency_ms`, token
requests included (`Service._sleep` runs before the token endpoint and the Graph endpoints alike);
`fetcher backfill --days 30` into a fresh SQLite database (migrated first) with `[fetch] concurrency = 16`,
the default, and the other limits at their defaults (per tenant: 4 in flight, 150 a minute).

    requests             = token requests + list requests, as the simulator counted them during the run
                           (the list count is checked against the fetcher's own, tenant_runs.requests)
    effective concurrency = min(concurrency, tenants x per_tenant_concurrency, rate bound), where the rate
                            bound (Little's law: tenants x per_tenant_rate / 60 x latency) applies only when
                            a tenant makes more list requests than its bucket's burst (5)
    ideal                = requests x latency / effective concurrency
    measured             = the run's own duration from the ledger (fetch_runs.finished_at - started_at):
                           planning, fetching, storing and the ledger, without interpreter start-up;
                           beside it, when its first tenant started and how long before the run's end
                           its last one finished (tenant_runs: start-up and the end's fixed costs), and
                           the process's wall and CPU seconds (CPU seconds near the ideal mean the run
                           is bound by CPU, not by latency)
    ratio                = measured / ideal; target <= 1.2

Days hold `latency_controls` controls (10) so that the run is bound by latency, which is what this measures;
an informational row repeats it with realistic days (about 230 controls), where storing becomes the bound
on a small machine. A second, informational row runs at concurrency 64: its ideal (a quarter of the
default's) is below the CPU time the run needs on a small machine, so it shows where latency stops being
the bound, not a target. Beside the target row, the floor client (`benchmarks.clients.floor`) at the same
concurrency under the same latency, its span over the same ideal (informational): the ratio a client with next
to no machinery reaches on this machine, so the yardstick says whether the target can be met here at all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import (
    OWN_FETCHER,
    BenchmarkError,
    Fetcher,
    Measured,
    RunLedger,
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
from benchmarks.table import Row

TARGET = 1.2
NAME = "latency"
PER_TENANT_CONCURRENCY = 4  # the configuration's defaults, which the benchmark does not change
PER_TENANT_RATE = 150.0
BURST = 5  # fetcher.limits.DEFAULT_BURST: requests a tenant may make before its rate applies


def effective_concurrency(concurrency: int, tenants: int, list_requests: int, latency_s: float) -> float:
    """The most requests the limits let be in flight at once, on average over the run."""
    bound = float(min(concurrency, tenants * PER_TENANT_CONCURRENCY))
    if list_requests > tenants * BURST:
        bound = min(bound, tenants * PER_TENANT_RATE / 60 * latency_s)
    return bound


def ideal_seconds(token_requests: int, list_requests: int, latency_s: float, effective: float) -> float:
    """Every request's latency, spread over the requests the limits let be in flight at once."""
    return (token_requests + list_requests) * latency_s / effective


@dataclass(frozen=True)
class Outcome:
    span: float  # the run's own seconds: the fetcher's ledger (fetch_runs), the floor's own clock
    process_wall: float
    process_cpu: float
    token_requests: int
    list_requests: int
    ideal: float
    effective: float
    ledger: RunLedger | None = None  # the fetcher's: when its first tenant started, its last finished


def outcome(
    span: float, run: Measured, counts: dict[str, int], concurrency: int, tenants: int, latency_s: float
) -> Outcome:
    """A run's span against its ideal, from the requests the simulator counted (`counts`, by endpoint)."""
    tokens, lists = counts.get("token", 0), counts.get("list", 0)
    effective = effective_concurrency(concurrency, tenants, lists, latency_s)
    return Outcome(
        span, run.wall, run.cpu, tokens, lists, ideal_seconds(tokens, lists, latency_s, effective), effective
    )


def scenario(
    session: Session,
    sim: SimServer,
    label: str,
    *,
    concurrency: int,
    tenants: int | None = None,
    days: int | None = None,
    name: str = NAME,
    fetcher: Fetcher = OWN_FETCHER,
) -> Outcome:
    """`fetcher backfill --days days` of `tenants` (the session's latency sizes by default) at `concurrency`;
    `fetcher` another checkout's for `benchmarks.before`."""
    sizes = session.sizes
    tenants = sizes.latency_tenants if tenants is None else tenants
    days = sizes.latency_days if days is None else days
    directory = session.directory(name)
    database = directory / f"{label}.db"
    database.unlink(missing_ok=True)
    config = sim.write_config(
        directory / f"{label}.toml",
        database_url=sqlite_url(database),
        concurrency=concurrency,
        control_profiles=False if fetcher.profiles_key else None,
    )
    migrate(config, fetcher)
    sim.clear()
    session.log(
        f"{name}: {label}: {tenants} tenants x {days} days at {sizes.latency_ms:g} ms, concurrency {concurrency}"
    )
    run = measure(fetcher_argv(config, "backfill", "--days", str(days), fetcher=fetcher)).check()
    counts = sim.requests()
    ledger = read_ledger(sqlite_url(database))
    expect_complete(ledger, tenants=tenants, days=days, what=f"{name} {label}")
    if counts.get("list", 0) != ledger.graph_requests:
        raise BenchmarkError(
            f"{name} {label}: the simulator answered {counts.get('list', 0)} list requests, the fetcher's ledger "
            f"(tenant_runs.requests) counts {ledger.graph_requests}"
        )
    found = outcome(ledger.seconds, run, counts, concurrency, tenants, sizes.latency_ms / 1000)
    return dataclasses.replace(found, ledger=ledger)


def floor_scenario(
    session: Session,
    sim: SimServer,
    label: str,
    *,
    concurrency: int,
    tenants: int | None = None,
    days: int | None = None,
    name: str = NAME,
) -> Outcome:
    """The floor client (`benchmarks.clients.floor`) doing what `scenario` has the fetcher do, at the same
    `concurrency` (requests in flight; tokens among them): the yardstick for the span, what a client with
    next to no machinery needs on this machine under the same latency. Its span is its own clock, from
    reading its tenants to its last commit (`seconds` in its report: interpreter start-up excluded, as the
    ledger's span excludes the fetcher's)."""
    sizes = session.sizes
    tenants = sizes.latency_tenants if tenants is None else tenants
    days = sizes.latency_days if days is None else days
    directory = session.directory(name)
    database = directory / f"{label}.db"
    for stale in directory.glob(f"{label}.db*"):
        stale.unlink()
    migrate(sim.write_config(directory / f"{label}.toml", database_url=sqlite_url(database)))
    sim.clear()
    session.log(f"{name}: {label}: the floor, {tenants} tenants x {days} days, concurrency {concurrency}")
    argv = [*sim.client_args(), "--days", str(days), "--concurrency", str(concurrency), "--database", str(database)]
    run = measure(client_argv("floor", *argv)).check()
    report, counts = run.json(), sim.requests()
    check_floor(report, counts, tenants * days, f"{name} {label}")
    return outcome(float(report["seconds"]), run, counts, concurrency, tenants, sizes.latency_ms / 1000)


def check_floor(report: dict[str, Any], counts: dict[str, int], score_days: int, what: str) -> None:
    """Refuse a floor run that stored less than asked, or whose requests the simulator counted otherwise."""
    if report["score_days"] != score_days:
        raise BenchmarkError(f"{what}: the floor stored {report['score_days']} of {score_days} score-days")
    for kind in ("token", "list"):
        if report["requests"][kind] != counts.get(kind, 0):
            raise BenchmarkError(
                f"{what}: the floor made {report['requests'][kind]} {kind} requests, "
                f"the simulator answered {counts.get(kind, 0)}"
            )


def row(session: Session, name: str, outcome: Outcome, *, limit: float | None, target: float = TARGET) -> Row:
    """The span against its ideal; a floor's row (no ledger) says what its span is instead of the tenants'."""
    ledger = outcome.ledger
    where = (
        "floor's own clock"
        if ledger is None
        else f"first tenant at {seconds(ledger.lead_in)}, last {seconds(ledger.lead_out)} before the end"
    )
    return Row(
        name,
        f"{seconds(outcome.span)} ({where}; process {seconds(outcome.process_wall)}, {outcome.process_cpu:.1f} CPU s)",
        f"ideal {seconds(outcome.ideal)} = ({outcome.token_requests} token + {outcome.list_requests} list) x "
        f"{session.sizes.latency_ms:g} ms / {outcome.effective:g}",
        outcome.span / outcome.ideal,
        limit,
        f"<= {target}" if limit is not None else "",
    )


def run(session: Session) -> list[Row]:
    sizes = session.sizes
    shape = f"{sizes.latency_tenants} tenants x {sizes.latency_days} days @ {sizes.latency_ms:g} ms"
    rows = []
    with SimServer(
        session.directory("latency-sim"),
        tenants=sizes.latency_tenants,
        latency_ms=sizes.latency_ms,
        controls=sizes.latency_controls,
        page_size=sizes.page_size,
    ) as sim:
        for concurrency in (sizes.latency_concurrency, 64):
            outcome = scenario(session, sim, f"concurrency-{concurrency}", concurrency=concurrency)
            target = TARGET if concurrency == sizes.latency_concurrency else None
            name = f"latency {shape}, {sizes.latency_controls} controls/day, concurrency {concurrency}"
            rows.append(row(session, name, outcome, limit=target))
            if concurrency == sizes.latency_concurrency:  # the yardstick: what any client gets here
                floor = floor_scenario(session, sim, f"floor-{concurrency}", concurrency=concurrency)
                rows.append(row(session, f"{name}, floor", floor, limit=None))
    with SimServer(
        session.directory("latency-sim-230"),
        tenants=sizes.latency_tenants,
        latency_ms=sizes.latency_ms,
        controls=sizes.controls,
        page_size=sizes.page_size,
        cache_mb=64 + sizes.latency_tenants * sizes.latency_days * 0.06,
    ) as sim:
        outcome = scenario(session, sim, "realistic-days", concurrency=sizes.latency_concurrency)
        rows.append(
            row(
                session,
                f"latency {shape}, {sizes.controls} controls/day, concurrency {sizes.latency_concurrency}",
                outcome,
                limit=None,
            )
        )
    return rows
