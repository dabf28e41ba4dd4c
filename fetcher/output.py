"""What the user sees: logging (text or JSON lines), progress bars on a terminal, summary and status tables.

Every log record passes a redaction filter that blanks JWT-shaped strings and any secret value the
configuration resolved, so that a token or secret cannot reach a log line even by mistake.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fetcher.discovery import Change, Found, Merged
from fetcher.models import Status
from fetcher.outcome import RunReport, TenantOutcome
from fetcher.plan import covers
from fetcher.store.ledger import TenantState
from fetcher.text import TOKEN_MASK, printable, redact_tokens

REDACTED = TOKEN_MASK


class Redactor(logging.Filter):
    """Blanks tokens and known secret values in every record's message and arguments."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = {s for s in secrets if len(s) >= 4}

    def add(self, secret: str) -> None:
        if len(secret) >= 4:
            self.secrets.add(secret)

    def scrub(self, text: str) -> str:
        text = redact_tokens(text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class TerminalSafe(logging.Filter):
    """For text logs: control characters in a record (a tenant's name, Graph's words) shown, not obeyed.

    JSON logs need no such filter: JSON escapes every control character.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = printable(message, lines=True)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        if record.exc_text:
            record.exc_text = printable(record.exc_text, lines=True)
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for cron mail filters and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry).decode()


REDACTOR = Redactor()


def setup_logging(
    *, verbosity: int, log_format: str, console: Console | None, stream: IO[str] | None = None, log_sql: bool = False
) -> None:
    """Configure the root logger once per process: level from -v/-q, text or JSON, always redacted.

    SQL statements are logged only with `log_sql` (`--log-sql`), whatever the verbosity: a backfill sends
    hundreds of megabytes of them. Their parameters never are (the engines hide them).
    """
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JSONFormatter())
    elif console is not None and console.is_terminal:
        handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(REDACTOR)
    if log_format != "json":
        handler.addFilter(TerminalSafe())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The Azure SDK logs every exchange at INFO and each Entra refusal as a multi-line WARNING that
    # repeats our own one-line error; show it only with -vv.
    logging.getLogger("azure").setLevel(logging.DEBUG if verbosity > 1 else logging.ERROR)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # MSAL (device_code) logs its token-cache events at DEBUG with the device code in clear (the tokens
    # masked): never below INFO, and only with -vv, as the Azure SDK's.
    logging.getLogger("msal").setLevel(logging.INFO if verbosity > 1 else logging.ERROR)
    # aiosqlite logs every call it hands to its thread, parameters and all, at DEBUG: never.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    # SQLAlchemy logs each statement at INFO, with its parameters replaced by a note (hide_parameters).
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if log_sql else logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING)


# ------------------------------------------------------------------------------------------- progress


class ProgressObserver:
    """A rich progress bar on a terminal: tenants done of total, score-days, throttled answers, failures."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tenants"),
            TextColumn(
                "{task.fields[days]} score-days · {task.fields[throttled]} throttled · {task.fields[failures]} failed"
            ),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            refresh_per_second=8,
        )
        self.task: Any = None
        self.report: RunReport | None = None

    def started(self, report: RunReport) -> None:
        self.report = report
        self.progress.start()
        self.task = self.progress.add_task(
            report.command, total=report.counters.tenants_total, days=0, throttled=0, failures=0
        )

    def tenant_done(self, report: RunReport, outcome: TenantOutcome) -> None:  # noqa: ARG002 (the progress sink interface)
        c = report.counters
        self.progress.update(
            self.task, completed=c.tenants_done, days=c.score_days, throttled=c.throttled, failures=c.failures
        )

    def finished(self, report: RunReport) -> None:
        if self.task is not None:
            c = report.counters
            self.progress.update(
                self.task, completed=c.tenants_done, days=c.score_days, throttled=c.throttled, failures=c.failures
            )
            self.progress.stop()


class LogObserver:
    """Off a terminal: a log line per failed tenant and one at the end; no bars."""

    def __init__(self) -> None:
        self.log = logging.getLogger("fetcher.run")

    def started(self, report: RunReport) -> None:
        self.log.info("%s %s: %d tenant(s) to fetch", report.command, report.run_id, report.counters.tenants_total)

    def tenant_done(self, report: RunReport, outcome: TenantOutcome) -> None:  # noqa: ARG002 (the progress sink interface)
        if outcome.status == Status.PARTIAL:
            self.log.warning(
                "tenant %s: stored %d day(s), %d flagged partial, %d payload(s) quarantined",
                outcome.tenant.label,
                outcome.scores_upserted,
                outcome.partial_days,
                outcome.rejected,
            )

    def finished(self, report: RunReport) -> None:
        c = report.counters
        self.log.info(
            "%s %s %s: %d of %d tenant(s) stored, %d failed, %d score-day(s), %d throttled answer(s)",
            report.command,
            report.run_id,
            report.status,
            c.tenants_done - c.failures,
            c.tenants_total,
            c.failures,
            c.score_days,
            c.throttled,
        )


# -------------------------------------------------------------------------------------------- tables


def _tenant_cell(name: str, tenant_id: str) -> str:
    """A tenant's name (as text: names may contain rich markup characters) and, dimmed, its id."""
    if not name:
        return escape(printable(tenant_id))
    return f"{escape(printable(name))}\n[dim]{escape(printable(tenant_id))}[/dim]"


def summary_table(report: RunReport, *, limit: int = 50) -> Table:
    """The end-of-run table: every tenant that did not simply succeed, then the totals."""
    c = report.counters
    title = (
        f"{report.command} {report.status}: {c.tenants_done - c.failures}/{c.tenants_total} tenants stored, "
        f"{c.score_days} score-days, {c.throttled} throttled, {c.failures} failed"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("tenant", overflow="fold", min_width=20, ratio=1)
    table.add_column("status", no_wrap=True)
    for column in ("days", "requests", "retries", "429s"):
        table.add_column(column, no_wrap=True, justify="right")
    table.add_column("detail", overflow="fold", min_width=24, ratio=2)
    shown = [o for o in report.outcomes if o.status != Status.SUCCEEDED]
    for outcome in sorted(shown, key=lambda o: (o.status, o.tenant.name))[:limit]:
        detail = outcome.error_message or (
            f"{outcome.partial_days} day(s) partial (206), {outcome.rejected} quarantined"
        )
        detail = detail.replace(f"tenant {outcome.tenant.label}: ", "")
        table.add_row(
            _tenant_cell(outcome.tenant.name, outcome.tenant.tenant_id),
            outcome.status,
            str(outcome.scores_upserted),
            str(outcome.stats.requests),
            str(outcome.stats.retries),
            str(outcome.stats.throttled),
            escape(printable(detail)),
        )
    if len(shown) > limit:
        table.add_row(f"... and {len(shown) - limit} more", "", "", "", "", "", "see tenant_runs")
    return table


def is_stale(state: TenantState, now: datetime, max_age: timedelta) -> bool:
    """Whether a tenant's newest day (counted from its midnight UTC) is older than `max_age`, or missing."""
    if state.newest_score_date is None:
        return True
    return now - datetime.combine(state.newest_score_date, datetime.min.time(), UTC) > max_age


def is_short(state: TenantState, today: date, history_days: int | None) -> bool:
    """Whether a tenant's stored days reach back less far than its configured window (`history_days`):
    a backfill with a shorter window, or one cut short, left older days that Graph will soon drop."""
    if history_days is None or state.oldest_score_date is None:
        return False
    return not covers(state.oldest_score_date, history_days, today)


def _state_cell(state: TenantState, now: datetime, max_age: timedelta, history_days: int | None) -> str:
    if is_stale(state, now, max_age):
        return "[red]stale[/red]"
    if is_short(state, now.date(), history_days):
        return f"[yellow]short: {state.stored_days} day(s) of {history_days}[/yellow]"
    return "[green]ok[/green]"


def status_table(
    states: Sequence[TenantState], now: datetime, max_age: timedelta, history_days: int | None = None
) -> Table:
    table = Table(
        title=f"tenants ({len(states)}); stale = newest day older than {max_age.total_seconds() / 3600:g} h",
        title_justify="left",
    )
    table.add_column("tenant", overflow="fold", min_width=20, ratio=1)
    for column in ("newest day", "last success", "state"):
        table.add_column(column, no_wrap=True)
    table.add_column("last error", overflow="fold", min_width=16, ratio=1)
    for s in states:
        error = f"{s.last_error_kind}: {s.last_error_message}" if s.last_error_kind else ""
        error = error.replace(f"tenant {s.tenant_id} ({s.name}): ", "")
        if s.rejected_payloads:
            error = f"{s.rejected_payloads} payload(s) quarantined. {error}".strip()
        table.add_row(
            _tenant_cell(s.name, s.tenant_id),
            str(s.newest_score_date or "none"),
            f"{s.last_success_at:%Y-%m-%d %H:%M}" if s.last_success_at else "never",
            _state_cell(s, now, max_age, history_days),
            escape(printable(error)),
        )
    return table


def status_json(
    states: Sequence[TenantState], now: datetime, max_age: timedelta, history_days: int | None = None
) -> bytes:
    return orjson.dumps(
        [
            {
                "tenant_id": s.tenant_id,
                "name": s.name,
                "newest_score_date": s.newest_score_date,
                "last_success_at": s.last_success_at,
                "last_error_at": s.last_error_at,
                "last_error_kind": s.last_error_kind,
                "last_error_message": s.last_error_message,
                "rejected_payloads": s.rejected_payloads,
                "oldest_score_date": s.oldest_score_date,
                "stored_days": s.stored_days,
                "stale": is_stale(s, now, max_age),
                "short_history": is_short(s, now.date(), history_days),
            }
            for s in states
        ],
        option=orjson.OPT_INDENT_2,
    )


def discovery_table(merged: Merged) -> Table:
    """`tenants discover`: one row per tenant that changed (unchanged ones are only counted)."""
    table = Table(title="tenants discovered", title_justify="left")
    table.add_column("tenant", overflow="fold", min_width=20, ratio=1)
    table.add_column("change", no_wrap=True)
    table.add_column("detail", overflow="fold", min_width=16, ratio=1)
    for change, row, upstream in merged.changes:
        if change is Change.UNCHANGED:
            continue
        detail = {
            Change.RENAMED_UPSTREAM: f"upstream name: {upstream} (your name is kept)",
            Change.GONE: row.source_status,
        }
        table.add_row(_tenant_cell(row.name, row.tenant_id), str(change), escape(detail.get(change, "")))
    return table


def discovery_summary(found: Found, merged: Merged, target: Path | None, *, written: bool) -> str:
    """One line: the counts of each change and of what was skipped, and where it went."""
    counts = ", ".join(f"{merged.count(c)} {c}" for c in Change)
    skipped = ", ".join(f"{n} {why}" for why, n in found.skipped.items()) or "none"
    where = f"written to {target}" if written else "nothing written"
    return f"{len(found.customers)} customer(s) found: {counts}; skipped: {skipped}; {escape(where)}"


def discovery_json(found: Found, merged: Merged, target: Path | None, *, written: bool) -> bytes:
    return orjson.dumps(
        {
            "file": str(target) if target else None,
            "written": written and target is not None,
            "found": len(found.customers),
            "skipped": found.skipped,
            "counts": {str(c): merged.count(c) for c in Change},
            "changes": [
                {
                    "change": str(change),
                    "tenant_id": row.tenant_id,
                    "name": row.name,
                    "upstream_name": upstream,
                    "enabled": row.enabled,
                    "source_status": row.source_status,
                }
                for change, row, upstream in merged.changes
            ],
        },
        option=orjson.OPT_INDENT_2,
    )
