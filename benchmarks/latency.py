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
the bound, not a target.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.harness import (
    BenchmarkError,
    RunLedger,
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


@dataclass(frozen=True)
class Outcome:
    ledger: RunLedger
    process_wall: float
    process_cpu: float
    token_requests: int
    list_requests: int
    ideal: float
    effective: float


def scenario(
    session: Session,
    sim: SimServer,
    label: str,
    *,
    concurrency: int,
    tenants: int | None = None,
    days: int | None = None,
    name: str = NAME,
) -> Outcome:
    """`fetcher backfill --days days` of `tenants` (the session's latency sizes by default) at `concurrency`."""
    sizes = session.sizes
    tenants = sizes.latency_tenants if tenants is None else tenants
    days = sizes.latency_days if days is None else days
    directory = session.directory(name)
    database = directory / f"{label}.db"
    database.unlink(missing_ok=True)
    config = sim.write_config(directory / f"{label}.toml", database_url=sqlite_url(database), concurrency=concurrency)
    migrate(config)
    sim.clear()
    session.log(
        f"{name}: {label}: {tenants} tenants x {days} days at {sizes.latency_ms:g} ms, concurrency {concurrency}"
    )
    run = measure(fetcher_argv(config, "backfill", "--days", str(days))).check()
    counts = sim.requests()
    ledger = read_ledger(sqlite_url(database))
    expect_complete(ledger, tenants=tenants, days=days, what=f"{name} {label}")
    tokens, lists = counts.get("token", 0), counts.get("list", 0)
    if lists != ledger.graph_requests:
        raise BenchmarkError(
            f"{name} {label}: the simulator answered {lists} list requests, the fetcher's ledger "
            f"(tenant_runs.requests) counts {ledger.graph_requests}"
        )
    latency = sizes.latency_ms / 1000
    effective = effective_concurrency(concurrency, tenants, lists, latency)
    return Outcome(ledger, run.wall, run.cpu, tokens, lists, (tokens + lists) * latency / effective, effective)


def row(session: Session, name: str, outcome: Outcome, *, limit: float | None, target: float = TARGET) -> Row:
    sizes = session.sizes
    return Row(
        name,
        f"{seconds(outcome.ledger.seconds)} (first tenant at {seconds(outcome.ledger.lead_in)}, last "
        f"{seconds(outcome.ledger.lead_out)} before the end; process {seconds(outcome.process_wall)}, "
        f"{outcome.process_cpu:.1f} CPU s)",
        f"ideal {seconds(outcome.ideal)} = ({outcome.token_requests} token + {outcome.list_requests} list) x "
        f"{sizes.latency_ms:g} ms / {outcome.effective:g}",
        outcome.ledger.seconds / outcome.ideal,
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
            rows.append(
                row(
                    session,
                    f"latency {shape}, {sizes.latency_controls} controls/day, concurrency {concurrency}",
                    outcome,
                    limit=target,
                )
            )
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
