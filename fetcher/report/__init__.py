"""Reports for the weekly questions: which customers are weakest, who slipped since last week, and why.

    model     the report records and the pure rules that build them (marks, sorting, totals, ranks)
    collect   reads the reporting views (through fetcher.store.reports) and builds a report
    formats   table, CSV, JSON, Markdown
    charts    inline SVG trend charts
    html      the self-contained HTML page

`produce` is what `fetcher report` calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import Config
from fetcher.errors import ConfigError
from fetcher.outfile import replace_atomically
from fetcher.report import collect, formats
from fetcher.report.formats import Format
from fetcher.report.model import ActionsReport, DiscoveryNote, Portfolio, Sort, TenantReport, discovery_note
from fetcher.status import discovery_line, never_discovered, partner_discovery
from fetcher.store.engine import existing_database, transaction
from fetcher.tables import terminal_width
from fetcher.text import printable


@dataclass(frozen=True)
class ReportRequest:
    """What `fetcher report` was asked for."""

    tenant_id: str | None = None
    actions: bool = False  # improvement actions across the portfolio (or over `tenant_id`)
    since: date | None = None
    sort: Sort = Sort.PERCENT
    max_age: timedelta = timedelta(hours=48)
    fmt: Format = Format.TABLE
    output: Path | None = None
    html: Path | None = None
    zoom: bool = False  # HTML charts: each y axis fitted to its chart's values instead of the shared 0-100 %


# A line on standard error and its level ("info", "warning", "error"): `fetcher.cli.context.Context.notice`.
Notice = Callable[[str, str], None]


async def produce(
    config: Config, request: ReportRequest, console: Console, notice: Notice, now: datetime | None = None
) -> int:
    """Build the report, then write it: the page to `html`, the text format to `output` or the terminal.

    With `html` and no `output`, only the page is written. A failed partner discovery, or none tried yet, is a
    warning (`notice`), the report still written (exit 0; `status` exits 1 or 4 for them).
    """
    now = now or datetime.now(UTC)
    refusal = usage_refusal(request, now.date())
    if refusal is not None:
        raise refusal
    async with existing_database(config.database) as engine:
        async with transaction(engine, write=False) as conn:
            discovery = await partner_discovery(conn, config)
        report, page = await _build(engine, config, request, now, discovery_note(discovery))
    if request.html is not None and page is not None:
        _write(request.html, page)
        notice(f"wrote {request.html}", "info")
    if request.output is not None:
        _write(request.output, formats.to_text(report, request.fmt))
        # On standard error, as `--html` says what it wrote: standard output stays the report's.
        notice(f"wrote {described(report, request.fmt)} to {request.output}", "info")
    elif request.html is None and request.fmt is Format.TABLE:
        console.print(formats.renderable(report, terminal_width(console)))
    elif request.html is None:
        # CSV and Markdown hold names as given; a terminal is shown their control characters, not sent them.
        console.out(printable(formats.to_text(report, request.fmt), lines=True), highlight=False, end="")
    problem = discovery_line(discovery, now)  # also in the report's header; here for cron's mail and the logs
    if problem is None and discovery is None and config.tenants_source == "partner" and config.partner is not None:
        problem = never_discovered(config.partner.tenant_id)  # an empty portfolio, and why
    if problem is not None:
        notice(problem, "warning")
    return 0


async def _build(
    engine: AsyncEngine, config: Config, request: ReportRequest, now: datetime, note: DiscoveryNote | None
) -> tuple[Portfolio | TenantReport | ActionsReport, str | None]:
    """The report (with `note`, a failed partner discovery, in its header), and its HTML page when one was asked
    for (only then is the page's code imported)."""
    if request.html is not None:
        from fetcher.report import html
    if request.actions:
        found = replace(await collect.actions(engine, config, now=now, tenant_id=request.tenant_id), discovery=note)
        return found, html.actions_page(found) if request.html else None
    if request.tenant_id is not None:
        one = await collect.tenant_report(
            engine, config, request.tenant_id, since=request.since, now=now, max_age=request.max_age
        )
        one = replace(one, discovery=note)
        return one, html.tenant_page(one, zoom=request.zoom) if request.html else None
    if request.html is None:
        portfolio = await collect.portfolio(engine, config, now=now, max_age=request.max_age, sort=request.sort)
        return replace(portfolio, discovery=note), None
    portfolio, points, why = await collect.portfolio_with_histories(
        engine, config, now=now, max_age=request.max_age, sort=request.sort, since=request.since
    )
    portfolio = replace(portfolio, discovery=note)
    return portfolio, html.portfolio_page(portfolio, points, since=request.since, zoom=request.zoom, why=why)


def described(report: Portfolio | TenantReport | ActionsReport, fmt: Format) -> str:
    """What a report is, for the line saying it was written: `the portfolio (25 tenants, csv)`."""
    if isinstance(report, Portfolio):
        return f"the portfolio ({len(report.rows)} tenants, {fmt})"
    if isinstance(report, TenantReport):
        return f"the report of tenant {report.tenant.tenant_id} ({fmt})"
    scope = "" if report.tenant_id is None else f" of tenant {report.tenant_id}"
    return f"the improvement actions{scope} ({len(report.actions)} controls, {fmt})"


def usage_refusal(request: ReportRequest, today: date | None = None) -> ConfigError | None:
    """Options that contradict each other: `--since` where it sets no window or after `today` (UTC), `--output`
    and `--html` naming one file (the text would overwrite the page)."""
    return since_refusal(request, today or datetime.now(UTC).date()) or _same_file_refusal(request.output, request.html)


def _same_file_refusal(output: Path | None, html: Path | None) -> ConfigError | None:
    if output is None or html is None:
        return None
    same = output.resolve() == html.resolve() or (output.exists() and html.exists() and output.samefile(html))
    if not same:
        return None
    return ConfigError(
        f"report --output and --html both name {html}: the text would overwrite the page; give two files"
    )


def since_refusal(request: ReportRequest, today: date) -> ConfigError | None:
    """`--since` where it sets no window (the portfolio's text, `--actions`): refused, not ignored; after `today`,
    refused as `backfill --since` refuses it (no stored day can be in the window)."""
    if request.since is None:
        return None
    if request.actions:
        return ConfigError(
            "report --since: the improvement actions are of each tenant's newest day and have no window; "
            "leave --since out"
        )
    if request.tenant_id is None and request.html is None:
        return ConfigError(
            "report --since needs --tenant (the window of one tenant's report) or --html (the charts' window); "
            "the portfolio's text has no window (its changes are over 7 and 30 days)"
        )
    if request.since > today:
        return ConfigError(f"report --since {request.since}: that is in the future")
    return None


def _write(path: Path, text: str) -> None:
    """The previous file survives a failed write (a full disk): replaced whole, never truncated first."""
    replace_atomically(path, text.encode("utf-8"))


__all__ = ["Format", "Notice", "ReportRequest", "Sort", "produce", "since_refusal", "usage_refusal"]
