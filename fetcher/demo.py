"""`fetcher demo`: the whole product on one machine, with no configuration and no Microsoft tenant.

It serves the simulator on loopback (about 25 tenants, a few in scripted trouble), backfills 90
days of every tenant and their control profiles into a local SQLite file through the real code path
(azure-identity, aiohttp, retries, limits, upserts), prints the status table and the portfolio's top
improvement actions, and says which reports to try next and how to query the result.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence, Set
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fetcher.config import Config, parse_config
from fetcher.outcome import Observer
from fetcher.output import status_table, summary_table
from fetcher.plan import plan_backfill, profiles_policy
from fetcher.report import formats
from fetcher.report.model import ActionsReport
from fetcher.runner import Run
from fetcher.simulator import RunningSimulator, demo_simulator, serving_simulator
from fetcher.simulator.configfile import toml_string
from fetcher.status import build_status
from fetcher.store import ledger, reports
from fetcher.store.engine import create_engine, transaction
from fetcher.tables import terminal_width

DEMO_DAYS = 90
DEMO_ACTIONS = 8


def demo_config_text(db_path: Path, tenants: list[tuple[str, str]]) -> str:
    """A configuration for reading the demo's database (report, status, metrics, alerts), ending in [alerts].

    The reading commands need only `[database]` and the tenants' names: no `[auth]`, no Graph endpoint
    (the simulator stops with the demo), no secret.
    """
    lines = [
        "# Written by `fetcher demo` for reading its database: report, status, metrics, alerts.",
        "[database]",
        f"url = {toml_string(f'sqlite+aiosqlite:///{db_path}')}",
    ]
    for tenant_id, name in tenants:
        lines += ["", "[[tenants]]", f"tenant_id = {toml_string(tenant_id)}", f"name = {toml_string(name)}"]
    lines += [
        "",
        "# Rules and channels: README, Alerts (two lines after this header send the slipping tenants).",
        "[alerts]",
    ]
    return "\n".join(lines) + "\n"


def write_demo_config(path: Path, db_path: Path, tenants: list[tuple[str, str]]) -> bool:
    """Write the demo's configuration unless the file exists (it may hold the user's [alerts] lines).

    Mode 0600, as `config init` writes: the README's alert example appends a literal webhook URL to it, and a
    literal secret in a file its group or others can read is warned about."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(demo_config_text(db_path, tenants))
    return True


def weakest_tenant(latest: Sequence[reports.LatestScore]) -> str | None:
    """The tenant with the lowest newest percent (ties: by id), None when no tenant has data."""
    scored = [(row.percent, row.tenant_id) for row in latest if row.percent is not None]
    return min(scored)[1] if scored else None


def next_commands(config_path: Path, weakest: str | None) -> list[str]:
    """The three commands the demo ends with, runnable as printed from the current folder."""
    shown = _shown_path(config_path)
    base = f"  fetcher --config {shlex.quote(shown)} report"
    commands = [base, f"{base} --html demo.html"]
    if weakest is not None:
        commands.append(f"{base} --tenant {weakest}")
    return commands


def scripted_failure_note(failed: Set[str], unconsented: Set[str]) -> str:
    """The closing remark on the run's failures (tenant ids): that they are scripted when every one is a
    tenant the simulator keeps without admin consent; "" when none failed, or another did."""
    if failed and failed <= unconsented:
        return " The failure above is scripted (a tenant without admin consent)."
    return ""


def no_data_note(no_data: Sequence[reports.LatestScore], empty: Set[str]) -> str:
    """The closing remark on the tenants stored without any score (the run did not fail them): scripted when
    every one is a tenant the simulator keeps with no score yet; "" when there is none."""
    if not no_data:
        return ""
    names = ", ".join(row.tenant_name or row.tenant_id for row in no_data)
    which = "The tenant" if len(no_data) == 1 else f"The {len(no_data)} tenants"
    why = (
        "scripted (a new tenant Graph has no score for yet)"
        if {r.tenant_id for r in no_data} <= empty
        else "Graph answered with no score"
    )
    return f" {which} with no score data ({names}): {why}."


def closing_counts(latest: Sequence[reports.LatestScore], failed: Set[str], empty: Set[str]) -> tuple[int, str]:
    """How many tenants have score data in the database, and the note on those that stored none without
    failing (a failed tenant is the failure note's)."""
    no_data = [row for row in latest if row.score_date is None and row.tenant_id not in failed]
    return sum(row.score_date is not None for row in latest), no_data_note(no_data, empty)


def _shown_path(path: Path) -> str:
    """`path` relative to the current folder when it lies under it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def demo_config(running: RunningSimulator, db_path: Path) -> Config:
    sim = running.simulator
    raw = {
        "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
        "graph": {
            "base_url": running.graph_base_url,
            "authority_host": running.authority_host,
            "ca_bundle": str(running.ca_file),
            "timeout_seconds": 30,
        },
        "fetch": {"concurrency": 16, "history_days": DEMO_DAYS, "max_attempts": 4},
        "auth": {"method": "client_secret", "client_id": sim.client_id, "client_secret": sim.client_secret},
        "tenants": [{"tenant_id": t.tenant_id, "name": t.name} for t in sim.tenants.values()],
    }
    return parse_config(raw)


async def run_demo(console: Console, err: Console, *, n_tenants: int, db_path: Path, observer: Observer) -> int:
    """The demo; `db_path` must be absolute."""
    sim = demo_simulator(n_tenants)
    started = time.monotonic()
    async with serving_simulator(sim) as running:
        err.print(
            f"Simulated Graph and Entra ID at {running.origin} ({n_tenants} tenants; a few are scripted "
            "to throttle, answer 206, lack consent, or hold no data yet)."
        )
        config = demo_config(running, db_path)
        planner = plan_backfill(config.enabled_tenants, DEMO_DAYS, resume=False, profiles=profiles_policy(config))
        report = await Run(config, "backfill", planner, observer=observer).execute()
    elapsed = time.monotonic() - started
    err.print(summary_table(report, width=terminal_width(err)))
    engine = create_engine(config.database)
    try:
        async with transaction(engine, write=False) as conn:
            states = await ledger.tenant_states(conn)
            actions = await reports.actions(conn)
            latest = await reports.latest(conn)
    finally:
        await engine.dispose()
    # Written before anything is printed on standard output: a reader gone (`fetcher demo | true`) stops the
    # printing, and must not leave the database without the configuration that reads it.
    config_path = db_path.with_suffix(".toml")
    written = write_demo_config(config_path, db_path, [(t.tenant_id, t.name) for t in config.tenants])
    status = build_status(states, config, None, now=datetime.now(UTC), max_age=timedelta(hours=48))
    console.print(status_table(status, width=terminal_width(console)))
    now = datetime.now(UTC)
    console.print(formats.actions_table(ActionsReport(now, None, None, tuple(actions[:DEMO_ACTIONS]))))
    failed = {outcome.tenant.tenant_id for outcome in report.outcomes if outcome.failed}
    unconsented = {tenant.tenant_id for tenant in sim.tenants.values() if not tenant.consent}
    empty = {tenant.tenant_id for tenant in sim.tenants.values() if tenant.empty}
    with_data, no_data = closing_counts(latest, failed, empty)
    console.print(
        f"\nDone in {elapsed:.1f} s: {report.counters.score_days} score-days stored for {with_data} of "
        f"{report.counters.tenants_total} tenants in "
        f"[bold]{db_path}[/bold].{scripted_failure_note(failed, unconsented)}{escape(no_data)}\n"
        "Query it with any SQLite client, for example:\n"
        f'  sqlite3 {db_path} "SELECT t.name, s.score_date, s.current_score, s.max_score FROM secure_scores s '
        'JOIN tenants t USING (tenant_id) ORDER BY s.score_date DESC, t.name LIMIT 10"\n'
        "Tables: tenants, secure_scores, comparative_scores, controls, control_scores (a view over "
        "control_score_rows, tenant_keys, day_keys, control_keys, status_texts), control_profiles, "
        "control_state_updates, fetch_runs, tenant_runs, raw_payloads, raw_control_profiles, archive_dictionaries "
        "(see README.md).\n"
        f"{'Wrote' if written else 'Kept'} [bold]{config_path}[/bold] for reading it (also: metrics, "
        "report --actions; alerts once you add a rule: README.md, Alerts).",
        soft_wrap=True,
    )
    tries = next_commands(config_path, weakest_tenant(latest))
    console.print("\n".join(["Try next:", *tries]), soft_wrap=True, markup=False, highlight=False)
    return 0 if report.stopped_by is None else report.exit_code
