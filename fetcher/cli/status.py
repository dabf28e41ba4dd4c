"""`fetcher status`: a row per tenant, and exit 1 when one is stale."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async
from fetcher.cli.group import main
from fetcher.cli.options import Hours, tenant_option


@main.command("status")
@click.option(
    "--max-age",
    type=Hours(),
    default=48.0,
    show_default=True,
    metavar="HOURS",
    help="A tenant whose newest day (counted from its midnight UTC) is older than this is stale. Graph keeps "
    "one score a day, so under 24 hours every tenant is always stale.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@tenant_option
@click.pass_obj
def status_command(ctx: Context, max_age: float, fmt: str, tenants: Sequence[str]) -> None:
    """A row per tenant: newest day, last success, state (no data, stale, failing: as `report` says), last error.
    Exit 1 when an enabled tenant has no data or stale data, or the latest partner discovery failed (4 when no
    discovery ever succeeded, as `run`)."""
    from fetcher.config import Purpose
    from fetcher.output import status_json, status_table
    from fetcher.partner import with_known_tenants
    from fetcher.plan import select_tenants
    from fetcher.status import read_status
    from fetcher.tables import terminal_width

    async def action() -> int:
        config = await with_known_tenants(ctx.config(Purpose.DATABASE))
        chosen = select_tenants(config, tenants) if tenants else None
        status = await read_status(config, chosen, now=datetime.now(UTC), max_age=timedelta(hours=max_age))
        if fmt == "json":
            ctx.console.out(status_json(status).decode(), highlight=False)
        else:
            ctx.console.print(status_table(status, width=terminal_width(ctx.console)))
        if status.discovery_problem:
            ctx.notice(status.discovery_problem, "error", kind=status.discovery_problem_kind)
        if status.without_data:  # each makes status exit 1: warnings, not information
            ctx.notice(f"{len(status.without_data)} enabled tenant(s) have no data", "warning")
        if status.stale:
            hours = f"{max_age:g} hour{'' if max_age == 1 else 's'}"
            ctx.notice(f"{len(status.stale)} enabled tenant(s) have no data newer than {hours}", "warning")
        if status.short:
            ctx.notice(
                f"{len(status.short)} enabled tenant(s) hold fewer days than [fetch] history_days = "
                f"{status.history_days}: `fetcher backfill --tenant ID` fetches what Graph still has"
            )
        return status.exit_code

    run_async(ctx, action())
