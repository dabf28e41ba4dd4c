"""Inline SVG trend charts: a tenant's score percentage over time, as plain strings (no I/O, no scripts).

The line breaks where days are missing, so a gap in the data shows as a gap; a lone day is a dot.
The y axis spans the data (and the reference average) with round ticks, so that a slip of a few
points is visible; the x axis is the same window for every tenant of a report, so charts compare.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from fetcher.store.reports import ScorePoint

LINE = "#1d4ed8"
AREA = "#bfdbfe"
GRID = "#e5e7eb"
INK = "#4b5563"
REFERENCE = "#9ca3af"
STEPS = (1.0, 2.0, 5.0, 10.0, 20.0, 25.0)


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
        return self.top + inner * (self.high - value) / (self.high - self.low)

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
    run: list[ScorePoint] = []
    for point in points:
        if point.percent is None:
            if run:
                yield run
            run = []
            continue
        if run and (point.score_date - run[-1].score_date).days > 1:
            yield run
            run = []
        run.append(point)
    if run:
        yield run


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _tick_label(value: float) -> str:
    return f"{value:g}%"


def _axes(frame: Frame, step: float) -> list[str]:
    parts = []
    tick = frame.low
    while tick <= frame.high + 1e-9:
        y = _fmt(frame.y(tick))
        parts.append(
            f'<line class="grid" x1="{frame.left}" y1="{y}" x2="{frame.width - frame.right}" y2="{y}" '
            f'stroke="{GRID}" stroke-width="1"/>'
        )
        parts.append(f'<text x="{frame.left - 6}" y="{y}" dy="0.32em" text-anchor="end">{_tick_label(tick)}</text>')
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
    for run in segments(points):
        coords = [(frame.x(p.score_date), frame.y(p.percent or 0.0)) for p in run]
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


def _reference(frame: Frame, value: float, label: str) -> list[str]:
    y = _fmt(frame.y(value))
    return [
        f'<line class="reference" x1="{frame.left}" y1="{y}" x2="{frame.width - frame.right}" y2="{y}" '
        f'stroke="{REFERENCE}" stroke-width="1.2" stroke-dasharray="5 4"/>',
        f'<text class="reference-label" x="{frame.width - frame.right - 2}" y="{y}" dy="-0.35em" '
        'text-anchor="end" stroke="#fff" stroke-width="3" paint-order="stroke">'
        f"{escape(label)} {value:.1f}%</text>",
    ]


def trend_svg(
    points: Sequence[ScorePoint],
    *,
    first: date,
    last: date,
    title: str,
    reference: float | None = None,
    reference_label: str = "all tenants",
    width: int = 640,
    height: int = 220,
) -> str:
    """The percentage over [first, last] as an SVG element; `title` and labels are escaped here."""
    values = [p.percent for p in points if p.percent is not None]
    if reference is not None:
        values.append(reference)
    low, high, step = y_range(values or [0.0, 100.0])
    frame = Frame(width, height, first, last, low, high)
    body = [f"<title>{escape(title)}</title>", *_axes(frame, step), *_series(frame, points)]
    if reference is not None:
        body += _reference(frame, reference, reference_label)
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif" font-size="11" fill="{INK}">' + "".join(body) + "</svg>"
    )
