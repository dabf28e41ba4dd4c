"""Inline SVG trend charts: a tenant's score percentage over time, as plain strings (no I/O, no scripts).

Every chart of a report shares one y axis, 0-100 %, so that tenants compare at a glance and a slip of a
few percentage points looks its real size; `zoom` scales a chart's axis to its own data instead (round
ticks, at least 10 percentage points tall). The x axis is the same window for every tenant of a report.

The line breaks where days are missing, so a gap in the data shows as a gap; a lone day is a dot. The
averages Graph stored with each day (all tenants, similar size) are series of their own over time,
dashed, through every day that has one. Days stored from a 206 Partial Content answer are ringed. Every
label sits in a margin (the legend above the plot, the ticks left of it and below), so none can cover a
line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from fetcher.store.reports import ScorePoint

LINE = "#1d4ed8"
AREA = "#bfdbfe"
GRID = "#e5e7eb"
INK = "#4b5563"
ALL_TENANTS = "#6b7280"
SIMILAR_SIZE = "#c2410c"
PARTIAL = "#b45309"
STEPS = (1.0, 2.0, 5.0, 10.0, 20.0, 25.0)
SHARED_AXIS = (0.0, 100.0, 20.0)  # low, high, step: the default axis of every chart
CHAR_WIDTH = 6.2  # px per character at font-size 11, generous, to lay the legend out without a browser
LEGEND_ROW = 15


@dataclass(frozen=True)
class Average:
    """A stored average as a series over time: its label, style and (day, percent) values, oldest first."""

    label: str
    css: str
    color: str
    dash: str
    values: tuple[tuple[date, float], ...]


def averages_of(points: Sequence[ScorePoint]) -> tuple[Average, ...]:
    """The all-tenants and similar-size averages stored with `points`' days (a series only where it has values)."""
    series = (
        Average("all tenants", "all-tenants", ALL_TENANTS, "5 4", _values(points, lambda p: p.all_tenants_average)),
        Average("similar size", "similar-size", SIMILAR_SIZE, "2 3", _values(points, lambda p: p.total_seats_average)),
    )
    return tuple(s for s in series if s.values)


def _values(points: Sequence[ScorePoint], pick: Callable[[ScorePoint], float | None]) -> tuple[tuple[date, float], ...]:
    return tuple((p.score_date, value) for p in points if (value := pick(p)) is not None)


@dataclass(frozen=True)
class Frame:
    """Where the plot sits in the SVG, and the data ranges it maps."""

    width: int
    height: int
    first: date
    last: date
    low: float
    high: float
    left: int = 46
    right: int = 14
    top: int = 12
    bottom: int = 26

    def x(self, day: date) -> float:
        span = (self.last - self.first).days
        inner = self.width - self.left - self.right
        if span <= 0:
            return self.left + inner / 2
        return self.left + inner * (day - self.first).days / span

    def y(self, value: float) -> float:
        inner = self.height - self.top - self.bottom
        clamped = min(self.high, max(self.low, value))
        return self.top + inner * (self.high - clamped) / (self.high - self.low)

    @property
    def floor(self) -> float:
        return float(self.height - self.bottom)


def y_range(values: Sequence[float]) -> tuple[float, float, float]:
    """Low, high and tick step: round numbers around the values, within 0-100, at least 10 points tall."""
    lo, hi = min(values), max(values)
    middle = (lo + hi) / 2
    span = max(hi - lo, 10.0) * 1.2
    lo, hi = max(0.0, middle - span / 2), min(100.0, middle + span / 2)
    step = next((s for s in STEPS if (hi - lo) / s <= 5), 25.0)
    lo, hi = step * math.floor(lo / step), step * math.ceil(hi / step)
    return max(0.0, lo), min(100.0, hi), step


def segments(points: Sequence[ScorePoint]) -> Iterator[list[ScorePoint]]:
    """Runs of consecutive days with a percentage."""
    by_day = {p.score_date: p for p in points}
    for run in _runs([(p.score_date, p.percent) for p in points]):
        yield [by_day[day] for day, _ in run]


def _runs(values: Sequence[tuple[date, float | None]]) -> Iterator[list[tuple[date, float]]]:
    """Runs of consecutive days with a value."""
    run: list[tuple[date, float]] = []
    for day, value in values:
        if value is None or (run and (day - run[-1][0]).days > 1):
            if run:
                yield run
            run = []
        if value is not None:
            run.append((day, value))
    if run:
        yield run


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _tick_label(value: float) -> str:
    return f"{value:g}%"


# -- the legend: above the plot, laid out in rows that fit the width


@dataclass(frozen=True)
class _Key:
    label: str
    swatch: str  # SVG drawn at (0, 0), 18 px wide, centred on the text's middle


def _line_swatch(color: str, width: float, dash: str = "") -> str:
    dashes = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="0" y1="0" x2="18" y2="0" stroke="{color}" stroke-width="{width}"{dashes}/>'


PARTIAL_SWATCH = f'<circle cx="9" cy="0" r="4" fill="#fff" stroke="{PARTIAL}" stroke-width="2"/>'


def _keys(line_label: str, averages: Sequence[Average], partial: bool) -> list[_Key]:
    keys = [_Key(line_label, _line_swatch(LINE, 2))]
    keys += [_Key(f"{a.label} average", _line_swatch(a.color, 1.5, a.dash)) for a in averages]
    if partial:
        keys.append(_Key("partial day (206)", PARTIAL_SWATCH))
    return keys


def _legend_rows(keys: Sequence[_Key], left: int, right_edge: int) -> list[list[tuple[float, _Key]]]:
    """Each key's x in rows; a key that would pass `right_edge` starts a new row."""
    rows: list[list[tuple[float, _Key]]] = [[]]
    x = float(left)
    for key in keys:
        width = 24 + CHAR_WIDTH * len(key.label)
        if rows[-1] and x + width > right_edge:
            rows.append([])
            x = float(left)
        rows[-1].append((x, key))
        x += width + 14
    return rows


def _legend(rows: Sequence[Sequence[tuple[float, _Key]]]) -> list[str]:
    parts = ['<g class="legend">']
    for index, row in enumerate(rows):
        y = 4 + LEGEND_ROW * index + LEGEND_ROW / 2
        for x, key in row:
            parts.append(
                f'<g transform="translate({_fmt(x)},{_fmt(y)})">{key.swatch}'
                f'<text x="24" y="0" dy="0.32em">{escape(key.label)}</text></g>'
            )
    parts.append("</g>")
    return parts


# -- the plot


def _axes(frame: Frame, step: float) -> list[str]:
    parts = []
    tick = frame.low
    while tick <= frame.high + 1e-9:
        y = _fmt(frame.y(tick))
        parts.append(
            f'<line class="grid" x1="{frame.left}" y1="{y}" x2="{frame.width - frame.right}" y2="{y}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text class="y-label" x="{frame.left - 6}" y="{y}" dy="0.32em" text-anchor="end">'
            f"{_tick_label(tick)}</text>"
        )
        tick += step
    days = sorted(
        {frame.first, frame.last}
        | ({frame.first + (frame.last - frame.first) / 2} if (frame.last - frame.first).days >= 14 else set())
    )
    for index, day in enumerate(days):
        anchor = (
            "start" if index == 0 and len(days) > 1 else "end" if index == len(days) - 1 and len(days) > 1 else "middle"
        )
        parts.append(
            f'<text class="x-label" x="{_fmt(frame.x(day))}" y="{frame.height - 8}" '
            f'text-anchor="{anchor}">{day.isoformat()}</text>'
        )
    return parts


def _series(frame: Frame, points: Sequence[ScorePoint]) -> list[str]:
    parts = []
    for run in _runs([(p.score_date, p.percent) for p in points]):
        coords = [(frame.x(day), frame.y(value)) for day, value in run]
        line = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in coords)
        if len(coords) == 1:
            x, y = coords[0]
            parts.append(f'<polyline class="trend" points="{line}" fill="none" stroke="{LINE}" stroke-width="2"/>')
            parts.append(f'<circle class="dot" cx="{_fmt(x)}" cy="{_fmt(y)}" r="3.5" fill="{LINE}"/>')
            continue
        floor = _fmt(frame.floor)
        area = f"{_fmt(coords[0][0])},{floor} {line} {_fmt(coords[-1][0])},{floor}"
        parts.append(f'<polygon class="area" points="{area}" fill="{AREA}" fill-opacity="0.7" stroke="none"/>')
        parts.append(
            f'<polyline class="trend" points="{line}" fill="none" stroke="{LINE}" stroke-width="2" '
            'stroke-linejoin="round" stroke-linecap="round"/>'
        )
    return parts


def _average(frame: Frame, average: Average) -> list[str]:
    """One average as a dashed line through each day it was stored. Unlike the tenant's own line it runs on
    across days without a value: Graph leaves the average off many days, and a market-wide average does not
    vanish on those; broken at each of them it read as scattered dots. A lone value is a small dot."""
    coords = [(frame.x(day), frame.y(value)) for day, value in average.values]
    line = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in coords)
    parts = [
        f'<g class="average {average.css}"><title>{escape(average.label)} average</title>',
        f'<polyline class="average-line" points="{line}" fill="none" stroke="{average.color}" '
        f'stroke-width="1.5" stroke-dasharray="{average.dash}"/>',
    ]
    if len(coords) == 1:
        parts.append(f'<circle cx="{_fmt(coords[0][0])}" cy="{_fmt(coords[0][1])}" r="2" fill="{average.color}"/>')
    parts.append("</g>")
    return parts


def _partials(frame: Frame, points: Sequence[ScorePoint]) -> list[str]:
    """A ring on each day stored from a 206 answer (on the line, or on the floor when it has no percent)."""
    parts = []
    for p in points:
        if not p.partial:
            continue
        y = frame.y(p.percent) if p.percent is not None else frame.floor
        parts.append(
            f'<circle class="partial" cx="{_fmt(frame.x(p.score_date))}" cy="{_fmt(y)}" r="3.5" fill="#fff" '
            f'fill-opacity="0.6" stroke="{PARTIAL}" stroke-width="1.5"><title>{p.score_date}: stored from a 206 '
            "Partial Content answer</title></circle>"
        )
    return parts


def trend_svg(
    points: Sequence[ScorePoint],
    *,
    first: date,
    last: date,
    title: str,
    averages: Sequence[Average] = (),
    line_label: str = "this tenant",
    zoom: bool = False,
    width: int = 640,
    height: int = 220,
) -> str:
    """The percentage over [first, last] as an SVG element, on the shared 0-100 % axis (or, with `zoom`,
    one fitted to this chart's values and averages); `title` and labels are escaped here."""
    if zoom:
        values = [p.percent for p in points if p.percent is not None] + [v for a in averages for _, v in a.values]
        low, high, step = y_range(values or [0.0, 100.0])
    else:
        low, high, step = SHARED_AXIS
    keys = _keys(line_label, averages, any(p.partial for p in points))
    rows = _legend_rows(keys, Frame.left, width - Frame.right)
    frame = Frame(width, height, first, last, low, high, top=8 + LEGEND_ROW * len(rows) + 6)
    body = [f"<title>{escape(title)}</title>", *_legend(rows), *_axes(frame, step), *_series(frame, points)]
    for average in averages:
        body += _average(frame, average)
    body += _partials(frame, points)
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif" font-size="11" fill="{INK}" '
        f'data-y-range="{low:g} {high:g}">' + "".join(body) + "</svg>"
    )
