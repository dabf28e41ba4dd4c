"""The SVG trend charts: one shared 0-100 % axis, the stored averages as series over time, partial days
marked, and every label in a margin where it cannot cover a line."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from fetcher.report.charts import Frame, averages_of, trend_svg
from fetcher.store.reports import ScorePoint

SVG = "{http://www.w3.org/2000/svg}"
FIRST = date(2026, 11, 1)


def day(n: int) -> date:
    return FIRST + timedelta(days=n)


def points(percents: list[float | None], **fields: list[object]) -> list[ScorePoint]:
    """A point a day from FIRST; `fields` give ScorePoint's other fields, one value a day."""
    return [
        ScorePoint(day(i), p, 100.0, p, **{k: v[i] for k, v in fields.items()})  # type: ignore[arg-type]
        for i, p in enumerate(percents)
    ]


def chart(pts: list[ScorePoint], zoom: bool = False) -> ET.Element:
    """The chart of `pts` with their stored averages, as the HTML page draws it."""
    last = pts[-1].score_date if pts else FIRST
    return ET.fromstring(trend_svg(pts, first=FIRST, last=last, title="t", averages=averages_of(pts), zoom=zoom))


def y_labels(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text") if t.get("class") == "y-label"]


def polyline(svg: ET.Element, css: str) -> list[tuple[float, float]]:
    [line] = [p for g in svg.iter(f"{SVG}g") if css in (g.get("class") or "").split() for p in g.iter(f"{SVG}polyline")]
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in (line.get("points") or "").split())]


def trend_ys(svg: ET.Element) -> list[float]:
    line = next(p for p in svg.iter(f"{SVG}polyline") if p.get("class") == "trend")
    return [float(pair.split(",")[1]) for pair in (line.get("points") or "").split()]


def test_every_chart_shares_one_0_to_100_axis_by_default() -> None:
    """A tenant moving between 45 and 60 and one between 90 and 100 get the same axis, so 50 % sits at the
    same height in both (each chart used to scale its own axis)."""
    low = chart(points([45.0, 50.0, 60.0]))
    high = chart(points([90.0, 50.0, 100.0]))

    assert low.get("data-y-range") == high.get("data-y-range") == "0 100"
    assert y_labels(low) == y_labels(high) == ["0%", "20%", "40%", "60%", "80%", "100%"]
    assert trend_ys(low)[1] == trend_ys(high)[1]


def test_zoom_fits_the_axis_to_the_chart() -> None:
    zoomed = chart(points([45.0, 50.0, 60.0]), zoom=True)

    low, high = map(float, (zoomed.get("data-y-range") or "").split())
    assert 0 < low <= 45
    assert 60 <= high < 100


def test_the_averages_are_series_over_time_from_the_stored_values() -> None:
    """The all-tenants average that moved from 45.2 to 59.3 is drawn through each day's stored value, not flat
    at the newest; the similar-size average too; a day without a stored average is passed over, not zero."""
    every = [45.2, 48.0, None, 55.5, 59.3]
    similar = [61.0, 60.5, 60.0, 59.0, 58.0]
    pts = points([40.0, 41.0, 42.0, 43.0, 44.0], all_tenants_average=every, total_seats_average=similar)
    svg = chart(pts)
    frame = Frame(640, 220, FIRST, day(4), 0.0, 100.0)  # for x, which the legend's height does not move

    drawn = polyline(svg, "all-tenants")
    assert [x for x, _ in drawn] == [frame.x(day(i)) for i in (0, 1, 3, 4)]
    heights = [y for _, y in drawn]
    assert heights == sorted(heights, reverse=True)  # rising, not flat
    per_point = (trend_ys(svg)[0] - trend_ys(svg)[-1]) / 4.0  # the height of one percentage point (40 to 44)
    rises = [(heights[0] - y) / per_point for y in heights]
    assert rises == pytest.approx([0.0, 2.8, 10.3, 14.1], abs=0.1)  # 45.2, 48.0, 55.5, 59.3
    similar_drawn = polyline(svg, "similar-size")
    assert len(similar_drawn) == 5
    assert similar_drawn[0][1] < similar_drawn[-1][1]  # falling


def test_the_averages_are_placed_on_the_same_scale_as_the_line() -> None:
    pts = points([50.0, 50.0], all_tenants_average=[50.0, 50.0])
    svg = chart(pts)

    assert [y for _, y in polyline(svg, "all-tenants")] == trend_ys(svg)


def test_averages_of_leaves_out_a_series_with_no_stored_value() -> None:
    pts = points([50.0, 51.0], all_tenants_average=[55.0, None], total_seats_average=[None, None])

    assert [(a.label, a.values) for a in averages_of(pts)] == [("all tenants", ((day(0), 55.0),))]


def test_partial_days_are_ringed_and_named_in_the_legend() -> None:
    svg = chart(points([50.0, 52.0, None], partial=[False, True, True]))

    rings = [c for c in svg.iter(f"{SVG}circle") if c.get("class") == "partial"]
    assert len(rings) == 2
    assert [ring.findtext(f"{SVG}title") for ring in rings] == [
        f"{day(1)}: stored from a 206 Partial Content answer",
        f"{day(2)}: stored from a 206 Partial Content answer",
    ]
    assert float(rings[0].get("cy") or 0) == trend_ys(svg)[1]
    assert "partial day (206)" in "".join(svg.itertext())
    assert "partial day" not in "".join(chart(points([50.0, 52.0])).itertext())


def _text_boxes(svg: ET.Element) -> list[tuple[str, float, float, str]]:
    """Every text with its absolute x, y (legend entries are translated groups) and anchor."""
    found = []
    for group in svg.iter(f"{SVG}g"):
        moved = re.fullmatch(r"translate\(([\d.]+),([\d.]+)\)", group.get("transform") or "")
        if moved:
            for text in group.iter(f"{SVG}text"):
                x, y = float(moved[1]) + float(text.get("x") or 0), float(moved[2]) + float(text.get("y") or 0)
                found.append((text.text or "", x, y, text.get("text-anchor") or "start"))
    legend = {t for t, *_ in found}
    for text in svg.iter(f"{SVG}text"):
        if (text.text or "") not in legend:
            found.append((text.text or "", float(text.get("x") or 0), float(text.get("y") or 0),
                          text.get("text-anchor") or "start"))  # fmt: skip
    return found


@pytest.mark.parametrize("width", [420, 640, 1000])
@pytest.mark.parametrize("zoom", [False, True])
def test_no_label_lies_inside_the_plot_where_a_line_can_be(width: int, zoom: bool) -> None:
    """Ticks left of the plot, dates under it, the legend above it: nothing on the lines, at any width."""
    pts = points([20.0, 95.0, 50.0], partial=[True, False, False], all_tenants_average=[99.0, 98.0, 97.0],
                 total_seats_average=[1.0, 2.0, 3.0])  # fmt: skip
    svg = ET.fromstring(trend_svg(pts, first=FIRST, last=day(2), title="t", averages=averages_of(pts), zoom=zoom,
                                  width=width, height=200))  # fmt: skip
    lines = [p for p in svg.iter(f"{SVG}polyline")]
    ys = [float(pair.split(",")[1]) for p in lines for pair in (p.get("points") or "").split()]
    top, floor = min(ys), max(ys)
    left = min(float(pair.split(",")[0]) for p in lines for pair in (p.get("points") or "").split())
    for text, x, y, anchor in _text_boxes(svg):
        in_margin = (anchor == "end" and x < left) or y >= floor + 8 or y + 5 < top
        assert in_margin, f"{text!r} at ({x}, {y}) is inside the plot"
    assert len(_text_boxes(svg)) == len(list(svg.iter(f"{SVG}text")))


def test_legend_entries_never_run_into_each_other_or_past_the_edge() -> None:
    pts = points([50.0], partial=[True], all_tenants_average=[55.0], total_seats_average=[56.0])
    svg = ET.fromstring(trend_svg(pts, first=FIRST, last=FIRST, title="t", averages=averages_of(pts), width=300))
    boxes = [(x - 24, y, x + 6.2 * len(t)) for t, x, y, a in _text_boxes(svg) if a == "start" and y < 60]
    for (_x1, y1, end1), (x2, y2, _) in itertools.pairwise(boxes):
        assert y2 > y1 or x2 >= end1
    assert all(end <= 300 for _, _, end in boxes)
