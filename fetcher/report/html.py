"""Reports as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched from anywhere.

Every string that came from the database or the configuration passes `html.escape` before it is
written, except Graph's `remediation` HTML, which passes the nh3 sanitizer (`fetcher.report.sanitize`);
a Content-Security-Policy forbids scripts and every fetch besides, in case anything slipped through.
Element ids are made from positions, never from tenant ids. The page prints sensibly: the
table's header repeats on each page, the charts start on a new page and never split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

from fetcher import __version__
from fetcher.report.charts import averages_of, trend_svg
from fetcher.report.formats import (
    ACTIONS_TABLE_HEADER,
    NONE,
    Report,
    actions_cells,
    cause,
    cause_sentence,
    day,
    discovery_warning,
    hours,
    number,
    percent,
    signed,
    totals_sentence,
    why_no_data,
)
from fetcher.report.model import ActionsReport, Portfolio, TenantReport, TenantRow, chart_window
from fetcher.report.sanitize import remediation_html
from fetcher.store.reports import ControlDelta, NextAction, ScorePoint, StateUpdate

# Nothing but inline styles: no script runs, nothing is fetched (images only as data: URIs, which we never use).
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
:root { color-scheme: light; --ink: #111827; --muted: #4b5563; --line: #e5e7eb; --up: #047857; --down: #b91c1c;
        --warn: #92400e; --warn-bg: #fef3c7; --accent: #1d4ed8; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1240px; padding: 24px; color: var(--ink); background: #fff;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 10px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.totals { display: flex; flex-wrap: wrap; gap: 12px; margin: 0; padding: 0; }
.totals div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.totals dt { color: var(--muted); font-size: 12px; } .totals dd { margin: 0; font-size: 20px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #f9fafb; }
td.day { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { white-space: normal; } td { overflow-wrap: break-word; }
td:first-child, .id { overflow-wrap: anywhere; } /* a long control name or remediation wraps, not the page */
tfoot td { font-weight: 600; border-top: 2px solid var(--ink); border-bottom: none; }
.id { color: var(--muted); font-size: 11px; font-family: ui-monospace, Menlo, Consolas, monospace; }
.up { color: var(--up); } .down { color: var(--down); }
.why { color: var(--muted); font-size: 11px; max-width: 32em; }
.bar { display: inline-block; width: 60px; height: 8px; background: var(--line); border-radius: 4px;
       margin-right: 6px; vertical-align: middle; overflow: hidden; }
.bar > span { display: block; height: 100%; background: var(--accent); }
.mark { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; margin: 1px 2px 1px 0;
        background: var(--warn-bg); color: var(--warn); white-space: nowrap; }
.ok { color: var(--up); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
figcaption { margin-bottom: 4px; } figcaption .figures { color: var(--muted); font-size: 12px; margin-left: 6px; }
svg.chart { display: block; width: 100%; height: auto; }
.warning { background: var(--warn-bg); color: var(--warn); border-radius: 6px; padding: 8px 12px; margin: 0 0 16px; }
.nodata { color: var(--muted); font-style: italic; margin: 24px 0; }
.standing { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
.standing dt { color: var(--muted); } .standing dd { margin: 0; }
.remediation { font-size: 12px; color: var(--muted); max-width: 560px; }
.remediation p, .remediation ol, .remediation ul { margin: 2px 0; }
.remediation ol, .remediation ul { padding-left: 18px; }
.cause-microsoft { color: var(--accent); font-size: 12px; } .cause-tenant, .cause-both { font-size: 12px; }
.categories { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; }
  thead { display: table-header-group; } tfoot { display: table-row-group; }
  tr, figure, .totals, .standing { break-inside: avoid; }
  section.trends { break-before: page; }
  .charts { grid-template-columns: 1fr 1fr; gap: 8px; }
  .bar { display: none; } .id { font-size: 6.5pt; white-space: nowrap; } th, td { padding: 3px 4px; }
  a { color: inherit; text-decoration: none; }
}
"""


def _page(title: str, body: Sequence[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            *body,
            f"<footer>securescore-fetcher {escape(__version__)}</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _warning(report: Report) -> list[str]:
    """In a page's header: a failed partner discovery and the customer list the page covers (none when none failed)."""
    line = discovery_warning(report)
    return [] if line is None else [f'<p class="warning" role="alert">{escape(line)}</p>']


def _change(value: float | None, digits: int = 2) -> str:
    css = "" if value is None or value == 0 else "up" if value > 0 else "down"
    return f'<td class="num {css}">{escape(signed(value, digits))}</td>'


def _marks(row: TenantRow) -> str:
    if not row.marks:
        return '<span class="ok">ok</span>'
    return "".join(f'<span class="mark mark-{m.name.lower()}">{escape(m)}</span>' for m in row.marks)


def _why(row: TenantRow) -> str:
    """Why a tenant without data has none (its latest run's error), under its mark."""
    why = why_no_data(row)
    return f'<div class="why">{escape(why)}</div>' if why else ""


def _percent_cell(value: float | None) -> str:
    if value is None:
        return f'<td class="num">{NONE}</td>'
    width = min(100.0, max(0.0, value))
    return f'<td class="num"><span class="bar"><span style="width:{width:.1f}%"></span></span>{percent(value)}</td>'


def _totals(p: Portfolio) -> str:
    t = p.totals
    cards = [
        ("Tenants", str(t.tenants)),
        ("Average", percent(t.average_percent)),
        ("Improved (7 d)", str(t.improved)),
        ("Slipped (7 d)", str(t.slipped)),
        ("Stale", str(t.stale)),
        ("No data", str(t.no_data)),
        ("Failing", str(t.failing)),
    ]
    inner = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in cards)
    return f'<dl class="totals">{inner}</dl>'


def _units(zoom: bool) -> str:
    axis = "Each chart's axis is fitted to its own values." if zoom else "Charts share one 0-100 % axis."
    return (
        "points: Secure Score points; % pts: percentage points of the maximum score (the charts' unit). "
        f"{axis} Dashed lines are the averages Graph stored each day; a ringed day came in a 206 Partial "
        "Content answer."
    )


PORTFOLIO_HEAD = (
    "#",
    "Tenant",
    "Newest day",
    "Percent",
    "Score",
    "Max",
    "7 d points",
    "7 d % pts",
    "30 d points",
    "vs all tenants",
    "Status",
)


def _portfolio_row(index: int, row: TenantRow) -> str:
    s = row.score
    name = escape(row.name) if row.name else NONE
    link = f'<a href="#t-{index}">{name}</a>' if row.has_data else name
    cells = [
        f'<td class="num">{index}</td>',
        f'<td>{link}<div class="id">{escape(row.tenant_id)}</div></td>',
        f'<td class="day">{day(s.score_date)}</td>',
        _percent_cell(s.percent),
        f'<td class="num">{number(s.current_score)}</td>',
        f'<td class="num">{number(s.max_score)}</td>',
        _change(s.change_7d_points),
        _change(s.change_7d_percent, 1),
        _change(s.change_30d_points),
        _change(row.vs_all_tenants, 1),
        f"<td>{_marks(row)}{_why(row)}</td>",
    ]
    classes = " ".join(["tenant", *(f"mark-{m.name.lower()}" for m in row.marks)])
    return f'<tr class="{classes}">' + "".join(cells) + "</tr>"


def portfolio_table(p: Portfolio) -> str:
    head = "".join(
        f'<th class="{"num" if h not in ("Tenant", "Newest day", "Status") else ""}">{h}</th>' for h in PORTFOLIO_HEAD
    )
    rows = "\n".join(_portfolio_row(i, r) for i, r in enumerate(p.rows, 1))
    foot = f'<tr><td colspan="{len(PORTFOLIO_HEAD)}">{escape(totals_sentence(p.totals))}</td></tr>'
    return (
        f'<table class="portfolio"><thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>'
        f"<tfoot>{foot}</tfoot></table>"
    )


def _chart(
    row: TenantRow,
    points: Sequence[ScorePoint],
    first: date,
    last: date,
    *,
    zoom: bool = False,
    width: int = 640,
    height: int = 220,
) -> str:
    title = f"{row.name or row.tenant_id}: score percentage from {first} to {last}"
    averages = averages_of(points)
    return trend_svg(
        points, first=first, last=last, title=title, averages=averages, zoom=zoom, width=width, height=height
    )


def _figures(row: TenantRow) -> str:
    """The caption's figures, in the table's words: `points` are Secure Score points, `% pts` percentage points."""
    s = row.score
    change = f"7 d {signed(s.change_7d_points)} points ({signed(s.change_7d_percent, 1)} % pts)"
    return f"{percent(s.percent)} · {change} · newest {day(s.score_date)}"


def _figure(
    index: int, row: TenantRow, points: Sequence[ScorePoint], first: date, last: date, *, zoom: bool = False
) -> str:
    caption = (
        f"<figcaption><strong>{escape(row.name or row.tenant_id)}</strong>"
        f'<span class="figures">{escape(_figures(row))}</span> {_marks(row) if row.marks else ""}</figcaption>'
    )
    chart = (
        _chart(row, points, first, last, zoom=zoom)
        if points
        else f'<p class="nodata">No stored day between {first} and {last}.</p>'
    )
    return f'<figure class="tenant-chart" id="t-{index}">{caption}{chart}</figure>'


def _no_data_figure(index: int, row: TenantRow, why: str) -> str:
    """A tenant without any stored day: no chart, and why (from the ledger)."""
    caption = f"<figcaption><strong>{escape(row.name or row.tenant_id)}</strong> {_marks(row)}</figcaption>"
    return (
        f'<figure class="tenant-chart no-data" id="t-{index}">{caption}'
        f'<p class="nodata why">No data: {escape(why)}</p></figure>'
    )


def _shared_axis(
    span: tuple[date, date], histories: Mapping[str, Sequence[ScorePoint]], since: date | None
) -> tuple[date, date]:
    """One x axis for every chart: from `since`, else from the earliest day any tenant has in the span
    (a portfolio with a month of history gets a month wide axis, not a 90-day one mostly empty)."""
    first, last = span
    if since is None:
        stored = [p.score_date for points in histories.values() for p in points if first <= p.score_date]
        first = min(stored, default=first)
    return first, last


def portfolio_page(
    p: Portfolio,
    histories: Mapping[str, Sequence[ScorePoint]],
    *,
    since: date | None = None,
    zoom: bool = False,
    why: Mapping[str, str] | None = None,
) -> str:
    """The portfolio table, then a chart per tenant with data over one shared window and axis (`zoom`: each
    axis fitted to its chart), and for each tenant without data why (`why`, by tenant id)."""
    span = chart_window(p, since)
    order = "weakest first" if p.sort == "percent" else f"by {p.sort}"
    body = [
        "<header>",
        "<h1>Secure Score portfolio</h1>",
        f'<p class="meta">Generated {p.generated_at:%Y-%m-%d %H:%M} UTC · {order} · stale = newest day older '
        f"than {hours(p.max_age):g} h</p>",
        *_warning(p),
        _totals(p),
        "</header>",
        "<main>",
        '<section class="portfolio"><h2>Tenants</h2>',
        portfolio_table(p),
        f'<p class="meta">{escape(_units(zoom))}</p>',
        "</section>",
    ]
    if span is not None:
        first, last = _shared_axis(span, histories, since)
        body.append(f'<section class="trends"><h2>Trends, {first} to {last}</h2><div class="charts">')
        body += [
            _figure(i, r, histories.get(r.tenant_id, ()), first, last, zoom=zoom)
            if r.has_data
            else _no_data_figure(i, r, (why or {}).get(r.tenant_id, "no stored day"))
            for i, r in enumerate(p.rows, 1)
        ]
        body.append("</div></section>")
    else:
        body.append('<p class="nodata">No tenant has any stored day yet.</p>')
        body += [
            f'<p class="nodata why">{escape(r.name or r.tenant_id)}: {escape((why or {}).get(r.tenant_id, ""))}</p>'
            for r in p.rows
            if why and r.tenant_id in why
        ]
    body.append("</main>")
    return _page(f"Secure Score portfolio {p.generated_at:%Y-%m-%d}", body)


# ----------------------------------------------------------------------------------------- one tenant


def _control_cell(title: str, name: str) -> str:
    """A control by its title, its id underneath (the title falls back to the id: then shown once)."""
    below = f'<div class="id">{escape(name)}</div>' if title and title != name else ""
    return f"<td>{escape(title or name)}{below}</td>"


def _delta_table(title: str, deltas: Sequence[ControlDelta]) -> str:
    if not deltas:
        return f'<h2>{escape(title)}</h2><p class="nodata">None.</p>'
    rows = "".join(
        f"<tr>{_control_cell(d.title, d.control_name)}<td>{escape(d.control_category or '')}</td>"
        f'{_change(d.change)}<td><span class="cause-{cause(d).lower()}">{escape(cause(d))}</span></td>'
        f'<td class="num">{d.days_changed}</td></tr>'
        for d in deltas
    )
    return (
        f'<h2>{escape(title)}</h2><table class="controls"><thead><tr><th>Control</th><th>Category</th>'
        f'<th class="num">Points</th><th>Cause</th><th class="num">Days changed</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _link(url: str | None, text: str) -> str:
    """A link to Microsoft's portal when the URL is https; otherwise the text alone."""
    if url and url.lower().startswith("https://"):
        return f'<a href="{escape(url)}" rel="noopener noreferrer nofollow">{escape(text)}</a>'
    return escape(text)


def _next_actions(actions: Sequence[NextAction]) -> str:
    if not actions:
        return '<h2>Next best actions</h2><p class="nodata">None: no control with points available.</p>'
    rows = "".join(
        f'<tr><td>{_link(a.action_url, a.title)}<div class="id">{escape(a.control_name)}</div>'
        f'<div class="remediation">{remediation_html(a.remediation or "")}</div></td>'
        f"<td>{escape(a.control_category or '')}</td>"
        f'<td class="num">{number(a.points_available)}</td>'
        f'<td class="num">{number(a.score)} of {number(a.max_score)}</td>'
        f"<td>{escape(a.user_impact or NONE)}</td><td>{escape(a.implementation_cost or NONE)}</td>"
        f"<td>{escape(a.tier or NONE)}</td></tr>"
        for a in actions
    )
    return (
        '<h2>Next best actions</h2><table class="next-actions"><thead><tr><th>Control and remediation</th>'
        '<th>Category</th><th class="num">Points available</th><th class="num">Score</th><th>User impact</th>'
        f"<th>Cost</th><th>Tier</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _state_updates(updates: Sequence[StateUpdate]) -> str:
    if not updates:
        return '<h2>State changes</h2><p class="nodata">No state change in the window.</p>'
    rows = "".join(
        f'<tr><td class="day">{u.updated_at:%Y-%m-%d %H:%M}</td>{_control_cell(u.title, u.control_name)}'
        f"<td>{escape(u.state)}</td><td>{escape(u.updated_by or NONE)}</td><td>{escape(u.comment or '')}</td></tr>"
        for u in updates
    )
    return (
        '<h2>State changes</h2><table class="state-updates"><thead><tr><th>When (UTC)</th><th>Control</th>'
        f"<th>State</th><th>By</th><th>Comment</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _categories(r: TenantReport, first: date, last: date, *, zoom: bool = False) -> str:
    trends = r.category_trends()
    if not trends:
        return ""
    figures = "".join(
        f'<figure class="category-chart"><figcaption><strong>{escape(category)}</strong>'
        f'<span class="figures">{escape(percent(points[-1].percent))} on {points[-1].score_date}</span></figcaption>'
        + trend_svg(
            points,
            first=first,
            last=last,
            title=f"{category}: percent of its maximum",
            line_label="category",
            zoom=zoom,
            width=420,
            height=170,
        )
        + "</figure>"
        for category, points in trends.items()
    )
    return f'<h2>Score by category</h2><div class="categories">{figures}</div>'


def actions_page(r: ActionsReport) -> str:
    """`--actions`: the improvement actions as one table."""
    scope = f"{r.tenant_name or r.tenant_id}" if r.tenant_id else "all tenants"
    head = "".join(
        f'<th class="{"num" if i >= 3 else ""}">{escape(h)}</th>' for i, h in enumerate(ACTIONS_TABLE_HEADER)
    )
    rows = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(c)}</td>' if i >= 3 else f"<td>{escape(c)}</td>"
            for i, c in enumerate(actions_cells(a))
        )
        + "</tr>"
        for a in r.actions
    )
    body = [
        "<header>",
        f"<h1>Improvement actions, {escape(scope)}</h1>",
        f'<p class="meta">Generated {r.generated_at:%Y-%m-%d %H:%M} UTC · biggest total gain first · '
        f"{number(r.points_available_total)} points available in total</p>",
        *_warning(r),
        "</header>",
        f'<main><table class="actions"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></main>',
    ]
    return _page(f"Improvement actions {r.generated_at:%Y-%m-%d}", body)


def _standing(r: TenantReport) -> str:
    t, s = r.tenant, r.tenant.score
    items = [
        ("Score", f"{number(s.current_score)} of {number(s.max_score)} ({percent(s.percent)}) on {day(s.score_date)}"),
        ("All tenants average", f"{percent(s.all_tenants_average)} ({signed(t.vs_all_tenants, 1)} % pts)"),
        ("Similar size average", f"{percent(s.total_seats_average)} ({signed(t.vs_total_seats, 1)} % pts)"),
        ("Rank", f"{r.rank} weakest of {r.ranked_of}" if r.rank else NONE),
        ("7 days", f"{signed(s.change_7d_points)} points ({signed(s.change_7d_percent, 1)} % pts)"),
        ("30 days", f"{signed(s.change_30d_points)} points ({signed(s.change_30d_percent, 1)} % pts)"),
        (
            "Window",
            f"{day(r.first_day)} to {day(r.last_day)}: {signed(r.window_change_points)} points, "
            f"controls {signed(r.controls_change)}",
        ),
    ]
    return '<dl class="standing">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>"


def tenant_page(r: TenantReport, *, zoom: bool = False) -> str:
    t = r.tenant
    name = t.name or t.tenant_id
    body = [
        "<header>",
        f"<h1>{escape(name)}</h1>",
        f'<p class="meta"><span class="id">{escape(t.tenant_id)}</span> · {_marks(t)} · generated '
        f"{r.generated_at:%Y-%m-%d %H:%M} UTC</p>",
        *_warning(r),
        "</header>",
        "<main>",
        _standing(r),
    ]
    if r.trend and r.first_day and r.last_day:
        first = min(r.since or r.first_day, r.first_day)
        body.append(
            f'<figure class="tenant-chart" id="t-1">{_chart(t, r.trend, first, r.last_day, zoom=zoom, width=1000)}'
            "</figure>"
        )
    elif r.why_no_data:
        body.append(f'<p class="nodata why">No data: {escape(r.why_no_data)}</p>')
    else:
        body.append('<p class="nodata">No stored day in the window.</p>')
    body += [
        _next_actions(r.next_actions),
        _delta_table("Gained most", r.gains),
        _delta_table("Lost most", r.losses),
        f'<p class="meta">{escape(cause_sentence(r))}</p>',
        _state_updates(r.state_updates),
    ]
    if r.trend and r.first_day and r.last_day:
        body.append(_categories(r, min(r.since or r.first_day, r.first_day), r.last_day, zoom=zoom))
    rows = "".join(
        f'<tr><td>{p.score_date}</td><td class="num">{number(p.current_score)}</td>'
        f'<td class="num">{number(p.max_score)}</td><td class="num">{percent(p.percent)}</td></tr>'
        for p in r.trend
    )
    body.append(
        '<h2>Daily</h2><table class="trend"><thead><tr><th>Day</th><th class="num">Score</th>'
        f'<th class="num">Max</th><th class="num">Percent</th></tr></thead><tbody>{rows}</tbody></table>'
    )
    body.append("</main>")
    return _page(f"Secure Score: {name}", body)
