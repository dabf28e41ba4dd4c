"""Reports as text: a rich table for the terminal, CSV, JSON and Markdown.

JSON and CSV carry stored values as stored and computed figures (percentages, changes, differences, a
category's summed score and max score) rounded to 2 decimals, without float noise; the table and Markdown
round for reading; all by `fetcher.figures`' rule (half up), so SQLite and PostgreSQL print the same. Every
string from the database (tenant and control names) is shown as text: never as rich markup, Markdown or HTML.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import orjson
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from fetcher.figures import FIGURE_DIGITS, format_figure, format_percent, round_figure
from fetcher.health import Mark
from fetcher.report.model import ActionsReport, DiscoveryNote, Portfolio, TenantReport, TenantRow, Totals
from fetcher.report.sanitize import remediation_text
from fetcher.store.reports import (
    NET_ZERO,
    CategoryPoint,
    ControlDelta,
    ImprovementAction,
    NextAction,
    ScorePoint,
    StateUpdate,
)
from fetcher.tables import UNLIMITED, Column, fitted_table
from fetcher.text import csv_cell, printable

Report = Portfolio | TenantReport | ActionsReport
NONE = "—"


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    MARKDOWN = "markdown"


# ------------------------------------------------------------------------------------- plain figures


def number(value: float | None, digits: int = 2) -> str:
    return NONE if value is None else format_figure(value, digits)


def signed(value: float | None, digits: int = 2) -> str:
    """With its sign; a zero is `+0.00`."""
    return NONE if value is None else format_figure(value, digits, sign=True)


def percent(value: float | None) -> str:
    return NONE if value is None else format_percent(value)


def day(value: date | None) -> str:
    return value.isoformat() if value else NONE


def hours(max_age: timedelta) -> float:
    return max_age.total_seconds() / 3600


def marks_text(row: TenantRow) -> str:
    return ", ".join(row.marks) if row.marks else "ok"


def discovery_warning(report: Report) -> str | None:
    """The header line of a report made while the partner's latest discovery had failed, else None."""
    return None if report.discovery is None else f"Warning: {report.discovery.sentence()}"


def totals_sentence(t: Totals) -> str:
    return (
        f"{t.tenants} tenants ({t.with_data} with data), average {percent(t.average_percent)}; "
        f"over 7 days {t.improved} improved, {t.slipped} slipped, {t.unchanged} unchanged; "
        f"{t.stale} stale, {t.no_data} without data, {t.failing} failing, {t.not_configured} not configured"
    )


def last_error_text(row: TenantRow) -> str:
    """The tenant's latest run's error, without the tenant's own label ("" when that run ended well)."""
    if row.last_error is None:
        return ""
    text = row.last_error.text()
    for label in (f"tenant {row.tenant_id} ({row.name}): ", f"tenant {row.tenant_id}: "):
        text = text.replace(label, "")
    return text


def why_no_data(row: TenantRow) -> str | None:
    """Why a tenant without data has none (`fetcher.report.model.why_no_data`, read from the ledger by
    `collect`); its latest run's error when the report was built without the ledger's reasons."""
    if Mark.NO_DATA not in row.marks:
        return None
    return row.why or last_error_text(row) or "never fetched: no run has reached this tenant yet"


def no_data_lines(rows: Iterable[TenantRow]) -> list[str]:
    """A line per tenant without data, saying why."""
    return [f"no data: {r.name or r.tenant_id} ({r.tenant_id}): {why}" for r in rows if (why := why_no_data(r))]


# ---------------------------------------------------------------------------------------------- JSON

# Figures computed from stored ones (by the views or here): rounded to FIGURE_DIGITS in CSV and JSON by
# `fetcher.figures`' one rule (half up, after the float noise is taken off), so that float noise
# (3.8799999999999955) does not reach a spreadsheet and SQLite and PostgreSQL print the same figure. Stored
# values (scores, averages) are as stored.
COMPUTED = frozenset(
    {
        "percent",
        "change_7d_points",
        "change_7d_percent",
        "change_30d_points",
        "change_30d_percent",
        "vs_all_tenants",
        "vs_total_seats",
        "average_percent",
        "change_points",
        "change_percent",
        "window_change_points",
        "window_change_percent",
        "controls_change",
        "microsoft_change",
        "tenant_change",
        "change",
        "points_available",
        "points_available_total",
        "points_available_average",
        "percent_gain_average",
    }
)


def figure(value: Any) -> Any:
    """A computed figure rounded to FIGURE_DIGITS (anything else as it is)."""
    return round_figure(value, FIGURE_DIGITS) if isinstance(value, float) else value


def rounded(data: Any) -> Any:
    """JSON data with every computed figure (by its key, at any depth) rounded."""
    if isinstance(data, dict):
        return {k: figure(v) if k in COMPUTED else rounded(v) for k, v in data.items()}
    if isinstance(data, list):
        return [rounded(v) for v in data]
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, timedelta):
        return hours(value)
    raise TypeError


def tenant_dict(row: TenantRow) -> dict[str, Any]:
    score = asdict(row.score)
    del score["tenant_name"]
    return {
        "tenant_id": row.tenant_id,
        "name": row.name,
        "configured": row.configured,
        "enabled": row.enabled,
        "marks": list(row.marks),
        **score,
        "vs_all_tenants": row.vs_all_tenants,
        "vs_total_seats": row.vs_total_seats,
        "last_error": None
        if row.last_error is None
        else {"at": row.last_error.at, "kind": row.last_error.kind, "message": row.last_error.message},
    }


def discovery_dict(note: DiscoveryNote | None) -> dict[str, Any] | None:
    """A failed partner discovery (None: none failed) and the customer list the report covers."""
    if note is None:
        return None
    return {**asdict(note), "sentence": note.sentence()}


def portfolio_dict(p: Portfolio) -> dict[str, Any]:
    return {
        "generated_at": p.generated_at,
        "discovery_failure": discovery_dict(p.discovery),
        "max_age_hours": hours(p.max_age),
        "sort": p.sort,
        "tenants": [tenant_dict(r) for r in p.rows],
        "totals": asdict(p.totals),
    }


def tenant_report_dict(r: TenantReport) -> dict[str, Any]:
    return {
        "generated_at": r.generated_at,
        "discovery_failure": discovery_dict(r.discovery),
        "max_age_hours": hours(r.max_age),
        "tenant": tenant_dict(r.tenant),
        "window": {
            "since": r.since,
            "first_day": r.first_day,
            "last_day": r.last_day,
            "change_points": r.window_change_points,
            "change_percent": r.window_change_percent,
            "controls_change": r.controls_change,
            "microsoft_change": r.microsoft_change,
            "tenant_change": r.tenant_change,
        },
        "standing": {"rank": r.rank, "ranked_of": r.ranked_of},
        "gains": [_delta_dict(d) for d in r.gains],
        "losses": [_delta_dict(d) for d in r.losses],
        "next_actions": [_action_dict(a) for a in r.next_actions],
        "state_updates": [asdict(u) for u in r.state_updates],
        "categories": [_category_dict(c) for c in r.categories],
        "trend": [_trend_dict(p) for p in r.trend],
    }


def _category_dict(c: CategoryPoint) -> dict[str, Any]:
    """A category's day, its score and max_score rounded: sums over its controls by the view, whose float noise
    differs by database (SQLite 364.3799999999999, PostgreSQL 364.38000000000017)."""
    return {**asdict(c), "score": figure(c.score), "max_score": figure(c.max_score)}


def _trend_dict(p: ScorePoint) -> dict[str, Any]:
    """A trend day as `score_history` has it (the chart-only fields, partial and averages, stay in the HTML)."""
    return {
        "score_date": p.score_date,
        "current_score": p.current_score,
        "max_score": p.max_score,
        "percent": p.percent,
    }


def _delta_dict(d: ControlDelta) -> dict[str, Any]:
    return {**asdict(d), "tenant_change": d.tenant_change}


def _action_dict(a: NextAction) -> dict[str, Any]:
    """A next action with its remediation as plain text: the HTML is someone else's and untrusted."""
    values = asdict(a)
    values["remediation"] = remediation_text(a.remediation)
    return values


def actions_dict(r: ActionsReport) -> dict[str, Any]:
    return {
        "generated_at": r.generated_at,
        "discovery_failure": discovery_dict(r.discovery),
        "tenant_id": r.tenant_id,
        "tenant_name": r.tenant_name,
        "points_available_total": r.points_available_total,
        "actions": [asdict(a) for a in r.actions],
    }


def to_json(report: Report) -> str:
    if isinstance(report, ActionsReport):
        data = actions_dict(report)
    else:
        data = portfolio_dict(report) if isinstance(report, Portfolio) else tenant_report_dict(report)
    return orjson.dumps(rounded(data), default=_jsonable, option=orjson.OPT_INDENT_2).decode() + "\n"


# ----------------------------------------------------------------------------------------------- CSV

CsvColumn = tuple[str, Callable[[TenantRow], Any]]

PORTFOLIO_COLUMNS: tuple[CsvColumn, ...] = (
    ("tenant_id", lambda r: r.tenant_id),
    ("name", lambda r: r.name),
    ("marks", lambda r: "; ".join(r.marks)),
    ("score_date", lambda r: r.score.score_date),
    ("days_since_newest", lambda r: r.score.days_since_newest),
    ("current_score", lambda r: r.score.current_score),
    ("max_score", lambda r: r.score.max_score),
    ("percent", lambda r: r.score.percent),
    ("change_7d_points", lambda r: r.score.change_7d_points),
    ("change_7d_percent", lambda r: r.score.change_7d_percent),
    ("baseline_7d_date", lambda r: r.score.baseline_7d_date),
    ("change_30d_points", lambda r: r.score.change_30d_points),
    ("change_30d_percent", lambda r: r.score.change_30d_percent),
    ("baseline_30d_date", lambda r: r.score.baseline_30d_date),
    ("all_tenants_average", lambda r: r.score.all_tenants_average),
    ("vs_all_tenants", lambda r: r.vs_all_tenants),
    ("total_seats_average", lambda r: r.score.total_seats_average),
    ("vs_total_seats", lambda r: r.vs_total_seats),
    ("last_error", last_error_text),
)


def _cell(value: Any) -> Any:
    """A value as a CSV cell: dates in ISO form, text that a spreadsheet would evaluate defused."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return csv_cell(value)


def _csv(rows: Iterable[Sequence[Any]]) -> str:
    """A CSV block: an optional `# title` row, a header, then rows whose computed figures are rounded."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header: Sequence[Any] | None = None
    for row in rows:
        if header is None and not str(row[0]).startswith("#"):
            header = row
        cells = _rounded_row(header, row) if header is not None and row is not header else row
        writer.writerow([_cell(v) for v in cells])
    return out.getvalue()


def _rounded_row(header: Sequence[Any], row: Sequence[Any]) -> list[Any]:
    if list(header) == ["key", "value"]:
        return [row[0], figure(row[1]) if row[0] in COMPUTED else row[1]]
    return [figure(v) if name in COMPUTED else v for name, v in zip(header, row, strict=False)]


def portfolio_csv(p: Portfolio) -> str:
    """One row per tenant; the totals are not repeated here, so the file stays one clean table."""
    header = [name for name, _ in PORTFOLIO_COLUMNS]
    return _csv([header, *([get(r) for _, get in PORTFOLIO_COLUMNS] for r in p.rows)])


def tenant_csv(r: TenantReport) -> str:
    """Three blocks, each opened by a `# title` row and its header, separated by an empty row."""
    t = r.tenant
    summary = [
        ("tenant_id", t.tenant_id),
        ("name", t.name),
        ("marks", "; ".join(t.marks)),
        ("first_day", r.first_day),
        ("last_day", r.last_day),
        ("current_score", t.score.current_score),
        ("max_score", t.score.max_score),
        ("percent", t.score.percent),
        ("window_change_points", r.window_change_points),
        ("window_change_percent", r.window_change_percent),
        ("controls_change", r.controls_change),
        ("microsoft_change", r.microsoft_change),
        ("tenant_change", r.tenant_change),
        ("all_tenants_average", t.score.all_tenants_average),
        ("vs_all_tenants", t.vs_all_tenants),
        ("total_seats_average", t.score.total_seats_average),
        ("vs_total_seats", t.vs_total_seats),
        ("rank", r.rank),
        ("ranked_of", r.ranked_of),
    ]
    controls = [
        (d.control_name, d.title, d.control_category, d.change, d.microsoft_change, d.days_changed)
        for d in (*r.gains, *r.losses)
    ]
    trend = [(p.score_date, p.current_score, p.max_score, p.percent) for p in r.trend]
    return "\n".join(
        (
            _csv([["# summary"], ["key", "value"], *summary]),
            _csv([["# controls"], list(CONTROL_HEADER), *controls]),
            _csv([["# next actions"], list(NEXT_ACTION_HEADER), *map(_next_action_cells, r.next_actions)]),
            _csv([["# state updates"], list(STATE_UPDATE_HEADER), *map(_state_update_cells, r.state_updates)]),
            _csv(
                [
                    ["# categories"],
                    ["score_date", "control_category", "score", "max_score", "percent"],
                    *(
                        (c.score_date, c.control_category, figure(c.score), figure(c.max_score), c.percent)
                        for c in r.categories
                    ),
                ]
            ),
            _csv([["# trend"], ["score_date", "current_score", "max_score", "percent"], *trend]),
        )
    )


CONTROL_HEADER = ("control_name", "title", "control_category", "change", "microsoft_change", "days_changed")
NEXT_ACTION_HEADER = (
    "control_name",
    "title",
    "control_category",
    "score",
    "max_score",
    "points_available",
    "user_impact",
    "implementation_cost",
    "tier",
    "state",
    "action_url",
    "remediation",
)
STATE_UPDATE_HEADER = ("updated_at", "control_name", "title", "state", "updated_by", "assigned_to", "comment")
ACTION_HEADER = tuple(f.name for f in dataclasses.fields(ImprovementAction))


def _next_action_cells(a: NextAction) -> list[Any]:
    return [*(getattr(a, name) for name in NEXT_ACTION_HEADER[:-1]), remediation_text(a.remediation)]


def _state_update_cells(u: StateUpdate) -> list[Any]:
    return [u.updated_at.isoformat(), *(getattr(u, name) for name in STATE_UPDATE_HEADER[1:])]


def actions_csv(r: ActionsReport) -> str:
    """One row per action, biggest total gain first."""
    return _csv([list(ACTION_HEADER), *([getattr(a, name) for name in ACTION_HEADER] for a in r.actions)])


# ------------------------------------------------------------------------------------------ Markdown


def md(text: str) -> str:
    """A string as literal Markdown text: punctuation that means something is backslash-escaped."""
    text = printable(" ".join(text.split()))
    return "".join(f"\\{c}" if c in "\\`*_[]<>|#!&" else c for c in text)


def _md_warning(report: Report) -> list[str]:
    """Under a report's title: a failed partner discovery, as a quoted paragraph (none when none failed)."""
    return [] if report.discovery is None else [f"> **Warning:** {md(report.discovery.sentence())}", ""]


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> list[str]:
    marks = {"l": "---", "r": "---:"}
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _portfolio_cells(r: TenantRow) -> list[str]:
    s = r.score
    return [
        day(s.score_date),
        percent(s.percent),
        number(s.current_score),
        number(s.max_score),
        signed(s.change_7d_points),
        signed(s.change_7d_percent, 1),
        signed(s.change_30d_points),
        signed(r.vs_all_tenants, 1),
    ]


PORTFOLIO_HEADER = ("newest day", "percent", "score", "max", "7d points", "7d % pts", "30d points", "vs all tenants")


def portfolio_markdown(p: Portfolio) -> str:
    lines = [f"# Secure Score portfolio, {p.generated_at:%Y-%m-%d %H:%M} UTC", "", *_md_warning(p)]
    rows = ([md(r.name) or NONE, md(r.tenant_id), *_portfolio_cells(r), marks_text(r)] for r in p.rows)
    lines += _md_table(("tenant", "tenant id", *PORTFOLIO_HEADER, "status"), rows, "lll" + "r" * 7 + "l")
    lines += ["", f"**Totals:** {totals_sentence(p.totals)}. Stale: newest day older than {hours(p.max_age):g} h.", ""]
    lines += [*(f"- {md(line)}" for line in no_data_lines(p.rows)), ""] if no_data_lines(p.rows) else []
    return "\n".join(lines)


def _delta_rows(deltas: Sequence[ControlDelta]) -> list[list[str]]:
    return [
        [md(d.title or d.control_name), md(d.control_category or ""), signed(d.change), cause(d), str(d.days_changed)]
        for d in deltas
    ]


def cause(d: ControlDelta) -> str:
    """Who moved a control's points: Microsoft (added, removed, re-scaled it), the tenant, or both."""
    if abs(d.microsoft_change) <= NET_ZERO:
        return "tenant"
    return "Microsoft" if abs(d.tenant_change) <= NET_ZERO else "both"


DELTA_HEADER = ("control", "category", "points", "cause", "days changed")
NEXT_HEADER = ("control", "category", "points available", "score", "user impact", "cost", "tier", "remediation")
UPDATE_HEADER = ("when (UTC)", "control", "state", "by", "comment")


def _next_rows(actions: Sequence[NextAction]) -> list[list[str]]:
    return [
        [
            a.title,
            a.control_category or "",
            number(a.points_available),
            f"{number(a.score)} of {number(a.max_score)}",
            a.user_impact or NONE,
            a.implementation_cost or NONE,
            a.tier or NONE,
            remediation_text(a.remediation),
        ]
        for a in actions
    ]


def _update_rows(updates: Sequence[StateUpdate]) -> list[list[str]]:
    return [
        [f"{u.updated_at:%Y-%m-%d %H:%M}", u.title, u.state, u.updated_by or NONE, u.comment or ""] for u in updates
    ]


def _category_rows(r: TenantReport) -> list[list[str]]:
    """Each category on the window's first and last day."""
    rows = []
    for category, points in r.category_trends().items():
        first, last = points[0], points[-1]
        rows.append([category, percent(first.percent), percent(last.percent), signed(_minus(last, first), 1)])
    return rows


def _minus(last: ScorePoint, first: ScorePoint) -> float | None:
    return None if last.percent is None or first.percent is None else last.percent - first.percent


CATEGORY_HEADER = ("category", "first day", "last day", "change (% pts)")


def _standing_lines(r: TenantReport) -> list[tuple[str, str]]:
    t, s = r.tenant, r.tenant.score
    seats = f" ({s.total_seats_lower}–{s.total_seats_upper} seats)" if s.total_seats_lower is not None else ""
    return [
        ("score", f"{number(s.current_score)} of {number(s.max_score)} ({percent(s.percent)}) on {day(s.score_date)}"),
        (
            "all tenants average",
            f"{percent(s.all_tenants_average)} ({signed(t.vs_all_tenants, 1)} pts), from {day(s.all_tenants_date)}",
        ),
        (
            "similar size average",
            f"{percent(s.total_seats_average)}{seats} ({signed(t.vs_total_seats, 1)} pts), "
            f"from {day(s.total_seats_date)}",
        ),
        ("rank", f"{r.rank} weakest of {r.ranked_of}" if r.rank else NONE),
        ("7 days", f"{signed(s.change_7d_points)} points, {signed(s.change_7d_percent, 1)} % pts"),
        ("30 days", f"{signed(s.change_30d_points)} points, {signed(s.change_30d_percent, 1)} % pts"),
    ]


def _window_sentence(r: TenantReport) -> str:
    newest = r.tenant.score.score_date
    if not r.trend and newest is not None and r.since is not None and r.since > newest:
        return f"No stored day since {day(r.since)}: the newest is {day(newest)}."
    if not r.trend:
        return "No stored days in the window."
    return (
        f"From {day(r.first_day)} to {day(r.last_day)} ({len(r.trend)} stored days): "
        f"{signed(r.window_change_points)} points ({signed(r.window_change_percent, 1)} % pts); "
        f"the controls' changes sum to {signed(r.controls_change)} points."
    )


def tenant_markdown(r: TenantReport) -> str:
    t = r.tenant
    lines = [f"# {md(t.name) or md(t.tenant_id)}", "", *_md_warning(r), f"Tenant `{t.tenant_id}` — {marks_text(t)}", ""]
    lines += ["## Standing", "", *_md_table(("", ""), ([k, v] for k, v in _standing_lines(r)), "ll"), ""]
    lines += ["## Window", "", _window_sentence(r), "", cause_sentence(r), ""]
    for title, deltas in (("Gained most", r.gains), ("Lost most", r.losses)):
        lines += [f"## {title}", ""]
        lines += _md_table(DELTA_HEADER, _delta_rows(deltas), "llrlr") if deltas else ["None."]
        lines.append("")
    lines += _md_section("Next best actions", NEXT_HEADER, _next_rows(r.next_actions), "llrrllll")
    lines += _md_section("State updates", UPDATE_HEADER, _update_rows(r.state_updates), "lllll")
    lines += _md_section("By category", CATEGORY_HEADER, _category_rows(r), "lrrr")
    lines += ["## Trend", ""]
    lines += _md_table(("day", "score", "max", "percent"), _trend_rows(r.trend), "lrrr") if r.trend else ["None."]
    lines.append("")
    return "\n".join(lines)


def _md_section(title: str, header: Sequence[str], rows: list[list[str]], align: str) -> list[str]:
    body = _md_table(header, ([md(cell) for cell in row] for row in rows), align) if rows else ["None."]
    return [f"## {title}", "", *body, ""]


def actions_markdown(r: ActionsReport) -> str:
    scope = f"{md(r.tenant_name or '')} `{r.tenant_id}`" if r.tenant_id else "all tenants"
    lines = [f"# Improvement actions, {scope}, {r.generated_at:%Y-%m-%d %H:%M} UTC", "", *_md_warning(r)]
    lines += _md_table(ACTIONS_TABLE_HEADER, ([md(c) for c in actions_cells(a)] for a in r.actions), "lllrrrrrr")
    lines += ["", f"**Total points available:** {number(r.points_available_total)}.", ""]
    return "\n".join(lines)


ACTIONS_TABLE_HEADER = (
    "control",
    "category",
    "impact / cost",
    "tenants",
    "points total",
    "points avg",
    "% pts avg",
    "ignored",
    "3rd party",
)


def actions_cells(a: ImprovementAction) -> list[str]:
    return [
        a.title or a.control_name,
        a.control_category or "",
        f"{a.user_impact or NONE}/{a.implementation_cost or NONE}",
        f"{a.tenants_with_points}/{a.tenants}",
        number(a.points_available_total),
        number(a.points_available_average),
        number(a.percent_gain_average, 1),
        str(a.tenants_ignored),
        str(a.tenants_third_party),
    ]


def _trend_rows(trend: Sequence[ScorePoint]) -> list[list[str]]:
    return [[day(p.score_date), number(p.current_score), number(p.max_score), percent(p.percent)] for p in trend]


# --------------------------------------------------------------------------------------- rich tables


def _plain(text: str) -> Text:
    """Text from the configuration or Graph as a table cell: never markup, never a terminal control."""
    return Text(printable(text))


def _change_text(value: float | None, digits: int = 2) -> Text:
    style = "" if value is None or value == 0 else "green" if value > 0 else "red"
    return Text(signed(value, digits), style=style)


def _marks_cell(row: TenantRow) -> Text:
    return Text(marks_text(row), style="yellow" if row.marks else "green")


# Dropped on a narrow terminal highest number first; the name, the newest day, percent and status stay.
_PORTFOLIO_DROP = {
    "max": 8,
    "score": 7,
    "30d points": 6,
    "vs all tenants": 5,
    "7d % pts": 4,
    "newest day": 3,  # a stale one is marked in the status column
    "7d points": 2,
}


def portfolio_table(p: Portfolio, width: int | None = None) -> RenderableType:
    """The portfolio, a row per tenant. `width`: the terminal's; None off a terminal (every column, full values,
    one line per tenant). On a narrow terminal the name and id stack and the least useful figures drop out."""
    t = p.totals
    footers = {
        "tenant": f"{t.tenants} tenants",
        "percent": f"avg {percent(t.average_percent)}",
        "7d points": f"▲{t.improved} ▼{t.slipped}",
    }
    columns = [
        Column("tenant", wrap=True, min_width=20, footer=footers["tenant"]),
        Column("tenant id"),
        *(
            Column(
                header,
                "left" if header == "newest day" else "right",
                drop=_PORTFOLIO_DROP.get(header, 0),
                footer=footers.get(header, ""),
            )
            for header in PORTFOLIO_HEADER
        ),
        Column("status", wrap=True, min_width=10),
    ]
    rows = [
        [
            _plain(r.name or NONE),
            _plain(r.tenant_id),
            Text(day(r.score.score_date)),
            Text(percent(r.score.percent)),
            Text(number(r.score.current_score)),
            Text(number(r.score.max_score)),
            _change_text(r.score.change_7d_points),
            _change_text(r.score.change_7d_percent, 1),
            _change_text(r.score.change_30d_points),
            _change_text(r.vs_all_tenants, 1),
            _marks_cell(r),
        ]
        for r in p.rows
    ]
    title = (
        f"Secure Score portfolio ({t.tenants} tenants), weakest first"
        if p.sort == "percent"
        else f"Secure Score portfolio ({t.tenants} tenants), by {p.sort}"
    )
    return fitted_table(
        columns,
        rows,
        width,
        pair=(0, 1),
        title=title,
        title_justify="left",
        show_footer=True,
        caption=f"{totals_sentence(t)}. Stale: newest day older than {hours(p.max_age):g} h.",
        caption_justify="left",
    )


def _simple_table(title: str, header: Sequence[str], rows: Iterable[Sequence[str | Text]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=any(header))
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def tenant_renderable(r: TenantReport) -> RenderableType:
    t = r.tenant
    parts: list[RenderableType] = [
        Text.assemble((printable(t.name or t.tenant_id), "bold"), f"  {printable(t.tenant_id)}  ", _marks_cell(t)),
        _simple_table("Standing", ("", ""), ([k, Text(v)] for k, v in _standing_lines(r))),
        Text(_window_sentence(r)),
    ]
    for title, deltas in (("Gained most", r.gains), ("Lost most", r.losses)):
        parts.append(
            _simple_table(
                title,
                DELTA_HEADER,
                (
                    [
                        _plain(d.title or d.control_name),
                        _plain(d.control_category or ""),
                        _change_text(d.change),
                        cause(d),
                        str(d.days_changed),
                    ]
                    for d in deltas
                ),
            )
        )
    parts.append(Text(cause_sentence(r)))
    for title, header, rows in (
        ("Next best actions", NEXT_HEADER, _next_rows(r.next_actions)),
        ("State updates", UPDATE_HEADER, _update_rows(r.state_updates)),
        ("By category", CATEGORY_HEADER, _category_rows(r)),
    ):
        parts.append(_simple_table(title, header, ([Text(cell) for cell in row] for row in rows)))
    parts.append(_simple_table("Trend", ("day", "score", "max", "percent"), _trend_rows(r.trend)))
    return Group(*parts)


def cause_sentence(r: TenantReport) -> str:
    return (
        f"Of the controls' {signed(r.controls_change)} points, Microsoft's changes (controls added, removed or "
        f"re-scaled) made {signed(r.microsoft_change)} and the tenant's {signed(r.tenant_change)}."
    )


def actions_table(r: ActionsReport) -> Table:
    scope = f"{r.tenant_name or r.tenant_id}" if r.tenant_id else "all tenants"
    table = Table(
        title=f"Improvement actions, {scope}, biggest total gain first",
        title_justify="left",
        caption=f"Total points available: {number(r.points_available_total)}.",
        caption_justify="left",
    )
    for index, header in enumerate(ACTIONS_TABLE_HEADER):
        if index < 3:
            table.add_column(header, overflow="fold", min_width=24 if index == 0 else None)
        else:
            table.add_column(header, justify="right", no_wrap=True)
    for a in r.actions:
        table.add_row(*(Text(cell) for cell in actions_cells(a)))
    return table


def renderable(report: Report, width: int | None = None) -> RenderableType:
    """The report for a console; `width`: the terminal's, None off a terminal (see fetcher.tables), under the
    line of a failed partner discovery."""
    warning = discovery_warning(report)
    shown = _renderable(report, width)
    return shown if warning is None else Group(Text(printable(warning), style="bold yellow"), shown)


def _renderable(report: Report, width: int | None) -> RenderableType:
    if isinstance(report, ActionsReport):
        return actions_table(report)
    if isinstance(report, Portfolio):  # under the table, why each tenant without data has none (never cut)
        return Group(portfolio_table(report, width), *(_plain(line) for line in no_data_lines(report.rows)))
    return tenant_renderable(report)


def _by_kind(
    report: Report,
    portfolio: Callable[[Portfolio], str],
    tenant: Callable[[TenantReport], str],
    actions: Callable[[ActionsReport], str],
) -> str:
    if isinstance(report, Portfolio):
        return portfolio(report)
    return tenant(report) if isinstance(report, TenantReport) else actions(report)


def to_text(report: Report, fmt: Format, *, width: int | None = None) -> str:
    """The report in `fmt` as a string (a table without colour, at `width` columns; None: as wide as its values,
    one line per tenant, as for a file or a pipe)."""
    if fmt is Format.JSON:
        return to_json(report)
    if fmt is Format.CSV:
        return _by_kind(report, portfolio_csv, tenant_csv, actions_csv)
    if fmt is Format.MARKDOWN:
        return _by_kind(report, portfolio_markdown, tenant_markdown, actions_markdown)
    console = Console(file=io.StringIO(), width=width or UNLIMITED, no_color=True, color_system=None, record=True)
    console.print(renderable(report, width))
    return console.export_text()
