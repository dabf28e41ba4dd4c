"""What the user sees: logging (text or JSON lines), progress bars on a terminal, summary and status tables.

Every log record passes a redaction filter that blanks JWT-shaped strings and any secret value the
configuration resolved, so that a token or secret cannot reach a log line even by mistake.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from rich.console import Console, Group, RenderableType
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from fetcher import logfields
from fetcher.discovery import Change, Found, Merged, TenantChange
from fetcher.health import INTERRUPTED_KIND
from fetcher.models import Status
from fetcher.outcome import Counters, RunReport, TenantOutcome
from fetcher.store.ledger import TenantState
from fetcher.tables import Column, fitted_table
from fetcher.text import TOKEN_MASK, one_line, printable, redact_tokens

if TYPE_CHECKING:
    from fetcher.status import StatusReport, TenantStatus
    from fetcher.store.compaction import Compacted, Rebased

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


class OneLine(logging.Filter):
    """A record said on one line: Alembic's "Running upgrade" quotes a revision's first paragraph, which
    may wrap over lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\n" in message:
            record.msg, record.args = " ".join(line.strip() for line in message.splitlines()), None
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
            **logfields.of(record),
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
    handler.addFilter(logfields.Fields())
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
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, OneLine) for f in migration.filters):
        migration.addFilter(OneLine())
    # Alembic's plugin set-up says seven lines at INFO on every start: only with -vv.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)


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
            TextColumn("{task.fields[days]} score-days · {task.fields[graph]}{task.fields[failures]} failed"),
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
        self.task = self.progress.add_task(report.command, total=report.counters.tenants_total, **_bar_fields(report))

    def tenant_done(self, report: RunReport, outcome: TenantOutcome) -> None:  # noqa: ARG002 (the progress sink interface)
        self.progress.update(self.task, completed=report.counters.tenants_done, **_bar_fields(report))

    def finished(self, report: RunReport) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=report.counters.tenants_done, **_bar_fields(report))
            self.progress.stop()


def _bar_fields(report: RunReport) -> dict[str, Any]:
    """The progress bar's counts; throttled answers only where Graph is asked (not in `rebuild`)."""
    c = report.counters
    graph = f"{c.throttled} throttled answers · " if report.asks_graph else ""
    return {"days": c.score_days, "graph": graph, "failures": c.failures}


@contextlib.contextmanager
def progress_bar(console: Console, what: str, total: int, *, shown: bool) -> Iterator[Callable[[int], None]]:
    """A bar of `total` items on a terminal (nothing elsewhere, or when not `shown`); yields its advance."""
    if not (shown and console.is_terminal):
        yield lambda _: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    with progress:
        task = progress.add_task(what, total=total)
        yield lambda n: progress.advance(task, n)


def compaction_line(table: str, total: int, done: Compacted) -> str:
    """What `fetcher archive compact` did to one archive table, in one line."""
    from fetcher.text import human_size

    unread = f"; {len(done.errors)} cannot be read, left as they are" if done.errors else ""
    if done.missing:
        ids = ", ".join(str(i) for i in sorted(done.missing))
        unread += (
            f": the {done.kind} dictionary they were compressed with (id {ids}) is missing from "
            "archive_dictionaries (restore its row from a backup)"
        )
    # What the bodies read take after the pass: the archive's size, whether or not any was rewritten.
    unread += f"; the archive's bodies: {human_size(done.stored_bytes)}" if done.scanned else ""
    if done.dictionary is None:
        from fetcher.store.codec import TRAIN_AFTER

        if done.missing:
            return f"{table}: {total} object(s){unread}"
        return f"{table}: {total} object(s), no dictionary yet: one is trained once it holds {TRAIN_AFTER}{unread}"
    d = done.dictionary
    how = f"trained {'now' if done.trained else f'{d.created_at:%Y-%m-%d}'} on {d.samples} objects"
    if done.recompressed:
        saved = f": {human_size(done.bytes_before)} -> {human_size(done.bytes_after)}"
    else:
        saved = "" if done.errors else " (none needed it)"
    return (
        f"{table}: zstd dictionary {d.dict_id} ({human_size(d.size)}, {how}); "
        f"{done.scanned} of {total} bodies read, {done.recompressed} recompressed{saved}{unread}"
    )


def rebase_line(table: str, total: int, before: int, after: int, done: Rebased) -> str:
    """What `fetcher archive compact` did to raw_payloads' whole bodies, and the table's bodies' size before
    the command and after it (recompression included), in one line."""
    from fetcher.text import human_size

    rewritten = f": {human_size(done.bytes_before)} -> {human_size(done.bytes_after)}" if done.rewritten else ""
    each = f" ({before / total / 1000:.2f} kB -> {after / total / 1000:.2f} kB an object)" if total else ""
    return (
        f"{table}: {done.rewritten} of {done.scanned} bodies rewritten as zstd deltas{rewritten}; "
        f"the table's bodies {human_size(before)} -> {human_size(after)}{each}"
    )


class MoveProgressBar:
    """A migration's move on a terminal (0011, 0014): a bar of the rows moved, named by the table they leave."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[table]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows moved"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=4,
        )
        self.task: Any = None
        self.table = "control_scores"

    def label(self, table: str, done: str) -> None:  # noqa: ARG002 (convert.Labelled: the bar says "rows moved")
        """The next move's source table (`fetcher.store.convert.Labelled`); a bar of its own."""
        self.close()
        self.table = table

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("move", total=total, table=self.table)
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()  # the bar stays, at the rows moved
            self.task = None


class MoveProgressLog:
    """A migration's move off a terminal: a log line each time another tenth of the rows has been moved, with
    the share actually moved (48 %, not the tenth it reached)."""

    def __init__(self) -> None:
        self.log = logging.getLogger("fetcher.migrate")
        self.tenths = -1
        self.table, self.done = "control_scores", "moved into the compact layout"

    def label(self, table: str, done: str) -> None:
        """The next move's source table and what its rows become (`fetcher.store.convert.Labelled`)."""
        self.table, self.done, self.tenths = table, done, -1

    def __call__(self, done: int, total: int) -> None:
        tenths = done * 10 // total if total else 10
        if tenths > self.tenths:
            self.tenths = tenths
            share = done * 100 // total if total else 100
            self.log.info("%s: %d%% %s (%d of %d rows)", self.table, share, self.done, done, total)

    def close(self) -> None:
        pass


class LogObserver:
    """Off a terminal: a log line per partial tenant, and at the end the counts and each cause of failure once."""

    def __init__(self) -> None:
        self.log = logging.getLogger("fetcher.run")

    def started(self, report: RunReport) -> None:
        work = "to rebuild from the archive" if report.command == "rebuild" else "to fetch"
        self.log.info("%s %s: %d tenant(s) %s", report.command, report.run_id, report.counters.tenants_total, work)

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
        self.log.info("%s %s", report.run_id, run_title(report))
        log_failures(self.log, report)


def log_failures(logger: logging.Logger, report: RunReport) -> None:
    """A warning per cause of failure ("25 tenants: ..." once, not 25 times); each tenant's line is at -v."""
    for group in report.failure_groups():
        tenant_id = group.tenants[0].tenant_id if len(group.tenants) == 1 else None
        logger.warning("%s", group.line(), extra={"error_kind": group.kind, "tenant_id": tenant_id})


# -------------------------------------------------------------------------------------------- tables


def run_title(report: RunReport) -> str:
    """The run in one line: its status and counts (interrupted tenants apart from failed ones; stored tenants
    that stored no score-day, as a tenant with no score yet)."""
    c = report.counters
    interrupted = f", {c.interrupted} interrupted" if c.interrupted else ""
    not_started = c.tenants_total - c.tenants_done
    waiting = f", {not_started} not started" if report.stopped_by is not None and not_started else ""
    throttled = f"{throttled_answers(c)}, " if report.asks_graph else ""  # a rebuild asks Graph nothing
    # "stored" is the ledger's status (succeeded or partial): say how many of those hold no score-day
    none = f" ({c.stored_none} with no score-day)" if c.stored_none else ""
    return (
        f"{report.command} {report.status}: {report.stored}/{c.tenants_total} tenants stored{none}, "
        f"{c.score_days} score-days, {throttled}{c.failures} failed{interrupted}{waiting}"
    )


def throttled_answers(c: Counters) -> str:
    """`6 throttled answers from 2 tenants`: the count is of 429 answers, which a tenant may get many of."""
    answers = f"{c.throttled} throttled answer{'' if c.throttled == 1 else 's'}"
    if not c.throttled:
        return answers
    return f"{answers} from {c.throttled_tenants} tenant{'' if c.throttled_tenants == 1 else 's'}"


DETAIL_CAP = 100  # off a terminal a detail wraps at 100 columns: whole, and no row padded to its length

SUMMARY_COLUMNS = (
    Column("tenant", wrap=True, min_width=20),
    Column("tenant id"),
    Column("status"),
    Column("days", "right", drop=1),
    Column("requests", "right"),
    Column("retries", "right", drop=3),
    Column("429s", "right", drop=2),
    Column("detail", wrap=True, min_width=24, cap=DETAIL_CAP),
)


def _summary_rows(report: RunReport, *, verbose: bool, limit: int) -> list[list[str]]:
    """Each tenant that did not simply succeed; failures sharing a cause in one row unless `verbose`."""
    figures = _figures(report)
    rows: list[list[str]] = []
    failed = [o for o in report.outcomes if o.failed]
    groups = [] if verbose else [g for g in report.failure_groups() if len(g.tenants) > 1]
    grouped = {t.tenant_id for g in groups for t in g.tenants}
    for group in groups:
        members = [o for o in failed if o.tenant.tenant_id in {t.tenant_id for t in group.tenants}]
        rows.append(
            [
                f"{len(group.tenants)} tenants",
                "",
                "failed",
                *(str(sum(get(o) for o in members)) for get in figures),
                escape(printable(group.detail())),
            ]
        )
    shown = [o for o in report.outcomes if o.status != Status.SUCCEEDED and o.tenant.tenant_id not in grouped]
    for outcome in sorted(shown, key=lambda o: (o.status, o.tenant.name))[:limit]:
        detail = outcome.error_message or (
            f"{outcome.partial_days} day(s) partial (206), {outcome.rejected} quarantined"
        )
        detail = detail.replace(f"tenant {outcome.tenant.label}: ", "")
        rows.append(
            [
                escape(printable(outcome.tenant.name)),
                escape(printable(outcome.tenant.tenant_id)),
                str(outcome.status),
                *(str(get(outcome)) for get in figures),
                escape(printable(detail)),
            ]
        )
    if len(shown) > limit:
        rows.append([f"... and {len(shown) - limit} more", "", "", *[""] * len(figures), "see tenant_runs"])
    return rows


_FIGURES: tuple[Callable[[TenantOutcome], int], ...] = (
    lambda o: o.scores_upserted,
    lambda o: o.stats.requests,
    lambda o: o.stats.retries,
    lambda o: o.stats.throttled,
)


def _figures(report: RunReport) -> tuple[Callable[[TenantOutcome], int], ...]:
    """The summary's figures: score-days, and where Graph is asked (not `rebuild`) requests, retries, 429s."""
    return _FIGURES if report.asks_graph else _FIGURES[:1]


def _summary_columns(report: RunReport) -> tuple[Column, ...]:
    return SUMMARY_COLUMNS if report.asks_graph else (*SUMMARY_COLUMNS[:4], SUMMARY_COLUMNS[-1])


def summary_table(
    report: RunReport, *, limit: int = 50, width: int | None = None, verbose: bool = False
) -> RenderableType:
    """The end of a run: its counts, then every tenant that did not simply succeed (no table when none);
    failures sharing one cause are one row with their count unless `verbose`. `width`: see fetcher.tables."""
    rows = _summary_rows(report, verbose=verbose, limit=limit)
    if not rows:
        return Text(run_title(report))
    return fitted_table(
        _summary_columns(report), rows, width, pair=(0, 1), title=escape(run_title(report)), title_justify="left"
    )


def _state_cell(row: TenantStatus, history_days: int | None) -> str:
    """The tenant's `fetcher.health` marks (the same words `fetcher report` uses), else short or ok."""
    if row.marks:
        return ", ".join(f"[red]{mark}[/red]" for mark in row.marks)
    if row.short:
        return f"[yellow]short: {row.state.stored_days} day(s) of {history_days}[/yellow]"
    return "[green]ok[/green]"


STATUS_COLUMNS = (
    Column("tenant", wrap=True, min_width=20),
    Column("tenant id"),
    Column("newest day"),
    Column("last success", drop=1),
    Column("state", wrap=True, min_width=9),
)


def _last_error(s: TenantState) -> str:
    error = f"{s.last_error_kind}: {s.last_error_message}" if s.last_error_kind else ""
    error = error.replace(f"tenant {s.tenant_id} ({s.name}): ", "")
    if s.rejected_payloads:
        error = f"{s.rejected_payloads} payload(s) quarantined. {error}".strip()
    return error


def status_table(status: StatusReport, *, width: int | None = None) -> RenderableType:
    """`fetcher status`: a row per tenant, then a line per tenant with a last error (under the table, so a long
    message neither widens every row off a terminal nor wraps in a narrow column). `width`: the terminal's
    (None: not a terminal; see fetcher.tables)."""
    rows = [
        [
            escape(printable(r.state.name)),
            escape(printable(r.state.tenant_id)),
            str(r.state.newest_score_date or "none"),
            f"{r.state.last_success_at:%Y-%m-%d %H:%M}" if r.state.last_success_at else "never",
            _state_cell(r, status.history_days),
        ]
        for r in status.rows
    ]
    table = fitted_table(
        STATUS_COLUMNS,
        rows,
        width,
        pair=(0, 1),
        title=f"tenants ({len(rows)}); stale = newest day older than {status.max_age.total_seconds() / 3600:g} h",
        title_justify="left",
    )
    return Group(table, *(Text(line) for line in status_error_lines(status)))


def status_error_lines(status: StatusReport) -> list[str]:
    """A line per tenant whose last error (or quarantined payloads) is on record, terminal controls escaped; a
    tenant its latest run was stopped before (or while) fetching says `interrupted:`, as `report` does not count
    it failing."""
    lines = []
    for r in status.rows:
        s = r.state
        if s.last_error_kind == INTERRUPTED_KIND:  # a stopped run is not a failure (fetcher.health): not an error
            at = f", {s.last_error_at:%Y-%m-%d %H:%M} UTC" if s.last_error_at else ""
            lines.append(printable(f"interrupted: {s.name or s.tenant_id} ({s.tenant_id}){at}: {s.last_error_message}"))
            s = dataclasses.replace(s, last_error_kind=None, last_error_message=None)  # quarantined ones still said
        if error := _last_error(s):
            at = f", {s.last_error_at:%Y-%m-%d %H:%M} UTC" if s.last_error_at else ""
            lines.append(printable(f"last error: {s.name or s.tenant_id} ({s.tenant_id}){at}: {error}"))
    return lines


def status_json(status: StatusReport) -> bytes:
    """`fetcher status --format json`: a list of tenants; `stale` is true without data too (as before), `marks`
    holds the shared words ("no data", "stale", "failing")."""
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
                "marks": [str(m) for m in r.marks],
                "stale": r.out_of_date,
                "short_history": r.short,
            }
            for r in status.rows
            for s in (r.state,)
        ],
        option=orjson.OPT_INDENT_2,
    )


DISCOVERY_COLUMNS = (
    Column("tenant", wrap=True, min_width=20),
    Column("tenant id"),
    Column("change"),
    Column("detail", wrap=True, min_width=16, cap=DETAIL_CAP),
)


def discovery_table(merged: Merged, *, width: int | None = None) -> RenderableType:
    """`tenants discover`: one row per tenant that changed (unchanged and still gone ones are only counted).
    `width`: the terminal's (None: not a terminal, one line per tenant, a long detail wrapped; see fetcher.tables)."""
    rows = [
        [
            escape(printable(c.row.name)),
            escape(printable(c.row.tenant_id)),
            str(c.change),
            escape(_discovery_detail(c)),
        ]
        for c in merged.changes
        if c.change not in (Change.UNCHANGED, Change.STILL_GONE)
    ]
    return fitted_table(DISCOVERY_COLUMNS, rows, width, pair=(0, 1), title="tenants discovered", title_justify="left")


DISCOVERY_NAME_SHOWN = 60  # a display name in the detail cell: Graph's may be up to 256 characters


def _discovery_detail(c: TenantChange) -> str:
    """The gone date, or the upstream rename (display names from Graph: untrusted, cut to one short line)."""
    if c.change is Change.GONE:
        return printable(c.row.source_status)
    if not c.previous_name:
        return ""
    before, now = (one_line(name, limit=DISCOVERY_NAME_SHOWN) for name in (c.previous_name, c.upstream_name))
    followed = "; the name in the file follows" if c.followed else ""  # else the name is the user's, kept
    return f"upstream name was {before}, now {now}{followed}"


def discovery_summary(found: Found, merged: Merged, target: Path | None, *, written: bool) -> str:
    """One line: the counts of each change and of what was skipped, and where it went. The customers found are
    the added, renamed upstream, returned and unchanged ones; `gone` and `still gone` rows were not found."""
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
                    "change": str(c.change),
                    "tenant_id": c.row.tenant_id,
                    "name": c.row.name,
                    "upstream_name": c.upstream_name,
                    "previous_upstream_name": c.previous_name or None,
                    "name_followed": c.followed,
                    "enabled": c.row.enabled,
                    "source_status": c.row.source_status,
                }
                for c in merged.changes
            ],
        },
        option=orjson.OPT_INDENT_2,
    )
