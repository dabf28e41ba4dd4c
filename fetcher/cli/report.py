"""`fetcher report`: the portfolio, one tenant, or the improvement actions."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async
from fetcher.cli.group import main
from fetcher.cli.options import Hours, OutputFile


@main.command("report")
@click.option(
    "--tenant",
    "tenant_id",
    metavar="ID",
    help="One tenant: its trend, the controls that moved it (by title, Microsoft's changes told apart), its next "
    "best actions, state changes, score by category, standing; with --actions, that tenant's actions only.",
)
@click.option(
    "--actions",
    is_flag=True,
    help="Improvement actions across the portfolio: each control's points available in all tenants, biggest "
    "total gain first.",
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Window start of one tenant's report (--tenant) and of the HTML charts (--html); default: the 90 days up "
    "to the newest day. Refused (exit 2) without either, and with --actions, which have no window.",
)
@click.option(
    "--sort",
    type=click.Choice(["percent", "name", "change"]),
    default="percent",
    show_default=True,
    help="percent: weakest first; change: largest 7-day slip first; name: A to Z.",
)
@click.option(
    "--max-age",
    type=Hours(),
    default=48.0,
    show_default=True,
    metavar="HOURS",
    help="A tenant whose newest day is older than this is marked stale.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table", show_default=True
)
@click.option(
    "--output",
    type=OutputFile(),
    metavar="FILE",
    help="Write the report to FILE instead of the terminal; a line on standard error says what was written where.",
)
@click.option(
    "--html",
    "html_path",
    type=OutputFile(),
    metavar="FILE",
    help="Write a self-contained HTML page with charts to FILE (then text only with --output).",
)
@click.option(
    "--zoom",
    is_flag=True,
    help="HTML charts: fit each chart's y axis to its own values instead of the shared 0-100 % axis "
    "(small moves look large; charts no longer compare by eye).",
)
@click.pass_obj
def report_command(
    ctx: Context,
    tenant_id: str | None,
    actions: bool,
    since: datetime | None,
    sort: str,
    max_age: float,
    fmt: str,
    output: Path | None,
    html_path: Path | None,
    zoom: bool,
) -> None:
    """A row per tenant, weakest first, with 7- and 30-day changes; with --tenant, why one tenant moved and what
    to fix next; with --actions, which changes would raise the most tenants."""
    from fetcher.config import Purpose
    from fetcher.partner import with_known_tenants
    from fetcher.report import Format, ReportRequest, Sort, produce, usage_refusal

    async def action() -> int:
        request = ReportRequest(
            tenant_id=tenant_id,
            actions=actions,
            since=since.date() if since else None,
            sort=Sort(sort),
            max_age=timedelta(hours=max_age),
            fmt=Format(fmt),
            output=output,
            html=html_path,
            zoom=zoom,
        )
        refusal = usage_refusal(request)  # a usage error, said before the configuration is read
        if refusal is not None:
            raise refusal
        config = await with_known_tenants(ctx.config(Purpose.DATABASE))
        return await produce(config, request, ctx.console, ctx.notice)  # a failed partner discovery: in its header

    run_async(ctx, action())
