"""`fetcher report --html`: one self-contained page, strings escaped, rendered for real by headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, date, datetime, timedelta
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from fetcher.report import html
from fetcher.report.charts import LINE, segments, trend_svg
from fetcher.report.formats import portfolio_markdown
from fetcher.report.model import DiscoveryNote, Portfolio, Sort, Totals
from fetcher.store.reports import ScorePoint
from tests.report.conftest import HOSTILE_NAME, NEVER_FETCHED, Filled, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def chromium() -> str:
    """Debian's chromium: skipped where it is missing, except under CI=true, where that is a failure."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium); the page is not rendered")
    return CHROMIUM


def _chromium(
    binary: str, page: Path, *modes: str, window: str = "1280,2000"
) -> list[subprocess.CompletedProcess[str]]:
    """Run headless Chromium on `page` once per mode (e.g. --dump-dom, --screenshot=...), all at once."""
    with contextlib.ExitStack() as stack:
        started = []
        for mode in modes:
            profile = stack.enter_context(tempfile.TemporaryDirectory(prefix="chromium-profile-"))
            started.append(
                subprocess.Popen(
                    [
                        binary,
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        f"--user-data-dir={profile}",
                        f"--window-size={window}",
                        mode,
                        page.as_uri(),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        done = []
        for process in started:
            out, err = process.communicate(timeout=90)
            done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
        return done


class DOM(HTMLParser):
    """What the rendered page holds: table rows, charts and their polylines, scripts, text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.svgs = 0
        self.polylines: list[str] = []
        self.scripts = 0
        self.text: list[str] = []
        self._in_portfolio = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "table" and "portfolio" in attributes.get("class", ""):
            self._in_portfolio = True
        elif tag == "tr" and self._in_portfolio and "tenant" in attributes.get("class", "").split():
            self.rows.append(attributes)
        elif tag == "svg":
            self.svgs += 1
        elif tag == "polyline":
            self.polylines.append(attributes.get("points", ""))
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_portfolio = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def portfolio_page(filled: Filled, tmp_path: Path) -> Path:
    page = tmp_path / "portfolio.html"
    result = report(filled.config, "--html", str(page))
    assert result.exit_code == 0, result.output
    return page


def test_html_alone_writes_the_page_and_nothing_to_stdout(filled: Filled, tmp_path: Path) -> None:
    page = tmp_path / "alone.html"

    result = report(filled.config, "--html", str(page))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = page.read_text(encoding="utf-8")

    assert text.startswith("<!DOCTYPE html>")
    assert "@media print" in text


def test_html_with_output_writes_the_page_and_the_text_report(filled: Filled, tmp_path: Path) -> None:
    page, text = tmp_path / "p.html", tmp_path / "p.json"

    result = report(filled.config, "--html", str(page), "--format", "json", "--output", str(text))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert text.read_text(encoding="utf-8").startswith("{")


def test_the_page_loads_nothing_from_anywhere(portfolio_page: Path) -> None:
    text = portfolio_page.read_text(encoding="utf-8")

    assert "<script" not in text.lower()
    assert not re.search(r"""\b(src|href)\s*=\s*(?!["']?#)""", text, re.IGNORECASE)
    assert not re.search(r"url\(|@import|@font-face", text, re.IGNORECASE)
    assert re.findall(r"https?://[^\s\"'<>]+", text) == ["http://www.w3.org/2000/svg"] * text.count("<svg")


def test_every_string_from_the_database_is_escaped(portfolio_page: Path) -> None:
    text = portfolio_page.read_text(encoding="utf-8")

    assert HOSTILE_NAME not in text
    assert "Evil &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; [bold]Sons[/bold] | Ltd" in text


def test_the_chart_breaks_its_line_where_days_are_missing() -> None:
    days = [date(2026, 11, d) for d in (1, 2, 3, 6, 7, 9)]
    points = [ScorePoint(d, 1.0, 2.0, 50.0) for d in days]

    assert [[p.score_date.day for p in run] for run in segments(points)] == [[1, 2, 3], [6, 7], [9]]


def test_a_single_day_is_drawn_as_a_dot_on_a_one_point_line() -> None:
    svg = trend_svg(
        [ScorePoint(date(2026, 11, 1), 1.0, 2.0, 50.0)], first=date(2026, 10, 1), last=date(2026, 11, 1), title="<One>"
    )

    assert '<circle class="dot"' in svg
    assert re.search(r'<polyline class="trend" points="[\d.]+,[\d.]+"', svg)
    assert "<title>&lt;One&gt;</title>" in svg


def test_a_tenant_without_data_shows_why_in_the_charts(portfolio_page: Path, filled: Filled) -> None:
    """The tenant that answered an empty list and the one never fetched each get a figure saying why."""
    text = portfolio_page.read_text(encoding="utf-8")
    figures = re.findall(r'<figure class="tenant-chart no-data"[^>]*>(.*?)</figure>', text, re.S)

    assert len(figures) == 2
    empty = next(f for f in figures if escape(filled.empty.name) in f)
    assert "No data: fetched " in empty
    assert "without error, but Graph had no secureScore for it" in empty
    never = next(f for f in figures if NEVER_FETCHED in f or "never fetched" in f)
    assert "No data: never fetched: no run has reached this tenant yet" in never


def test_the_tenant_page_of_a_tenant_without_data_says_why(filled: Filled, tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    assert report(filled.config, "--tenant", filled.empty.tenant_id, "--html", str(page)).exit_code == 0

    assert re.search(r'<p class="nodata why">No data: fetched [^<]* without error, but Graph had no secureScore',
                     page.read_text(encoding="utf-8"))  # fmt: skip


def test_charts_share_the_0_to_100_axis_unless_zoomed(filled: Filled, portfolio_page: Path, tmp_path: Path) -> None:
    zoomed = tmp_path / "zoomed.html"
    assert report(filled.config, "--html", str(zoomed), "--zoom").exit_code == 0

    shared = re.findall(r'data-y-range="([^"]+)"', portfolio_page.read_text(encoding="utf-8"))
    fitted = re.findall(r'data-y-range="([^"]+)"', zoomed.read_text(encoding="utf-8"))
    assert len(shared) == len(fitted) == len(filled.healthy) + 2
    assert set(shared) == {"0 100"}
    assert "0 100" not in fitted


def test_the_page_says_points_or_percentage_points_as_the_table_does(portfolio_page: Path) -> None:
    text = portfolio_page.read_text(encoding="utf-8")
    captions = re.findall(r'<span class="figures">(.*?)</span>', text)

    assert captions
    assert all(re.search(r"7 d [^ ]+ points \([^ ]+ % pts\)", c) for c in captions if "7 d" in c)
    assert not re.search(r"\d pts", text)  # "pts" alone, the ambiguous form, is gone: "points" or "% pts"
    assert "% pts: percentage points" in text


def test_chromium_renders_the_table_and_a_chart_per_tenant_and_prints_them(
    filled: Filled, portfolio_page: Path, tmp_path: Path, chromium: str
) -> None:
    shot, pdf = tmp_path / "portfolio.png", tmp_path / "portfolio.pdf"
    dumped, taken, printed = _chromium(
        chromium, portfolio_page, "--dump-dom", f"--screenshot={shot}", f"--print-to-pdf={pdf}"
    )

    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = DOM()
    dom.feed(dumped.stdout)
    with_data = len(filled.healthy) + 2  # the one-day and the dropped tenant
    assert len(dom.rows) == len(filled.configured) + 2
    assert dom.svgs == with_data
    assert len(dom.polylines) >= with_data
    assert all(p.strip() for p in dom.polylines)
    assert dom.scripts == 0
    assert HOSTILE_NAME in "".join(dom.text)  # escaped in the file, plain text in the DOM
    assert taken.returncode == 0, taken.stderr[-2000:]
    _assert_drawn(shot)
    assert printed.returncode == 0, printed.stderr[-2000:]
    pages = [int(n) for n in re.findall(rb"/Count (\d+)", pdf.read_bytes())]
    assert max(pages) >= 2, "the charts should start on a page of their own"


def _assert_drawn(png: Path) -> None:
    """Not blank, and the trend line's blue is on the page in quantity."""
    line = tuple(int(LINE[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        total = rgb.width * rgb.height
        colours = rgb.getcolors(maxcolors=total) or []
    near = sum(n for n, c in colours if sum(abs(a - b) for a, b in zip(c, line, strict=True)) < 60)
    ink = sum(n for n, c in colours if sum(c) < 600)
    assert near > 2000, f"only {near} pixels of the chart's line colour"
    assert ink > 0.01 * total, "the page looks blank"


def test_chromium_renders_the_tenant_page_with_its_chart(filled: Filled, tmp_path: Path, chromium: str) -> None:
    """The trend, then a chart per control category; titles, next best actions and state changes."""
    tenant = filled.healthy[1].tenant_id
    page = tmp_path / "tenant.html"
    result = report(filled.config, "--tenant", tenant, "--html", str(page))
    assert result.exit_code == 0, result.output
    data = json.loads(report(filled.config, "--tenant", tenant, "--format", "json").stdout)

    [dumped] = _chromium(chromium, page, "--dump-dom")

    dom = DOM()
    dom.feed(dumped.stdout)
    categories = {c["control_category"] for c in data["categories"]}
    assert dom.svgs == 1 + len(categories)
    assert dom.polylines
    assert all(p.strip() for p in dom.polylines)
    text = "".join(dom.text)
    for expected in (HOSTILE_NAME, "Gained most", "Lost most", "Next best actions", "State changes", *categories):
        assert expected in text
    for item in (*data["gains"][:3], *data["next_actions"][:3], *data["state_updates"][:3]):
        assert item["title"] in text


def test_a_failed_discovery_in_the_header_is_escaped_as_text() -> None:
    """The cause of a failed partner discovery is Graph's or Entra ID's text: it reaches the page and the Markdown
    as text, never as markup."""
    hostile = "<script>alert(1)</script> *bold* [link](http://x)"
    at = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    note = DiscoveryNote("p-1", at, f"server_error: {hostile}", at - timedelta(days=1), 2)
    empty = Portfolio(at, timedelta(hours=48), Sort.PERCENT, (), Totals(0, 0, None, 0, 0, 0, 0, 0, 0), note)

    page = html.portfolio_page(empty, {})
    markdown = portfolio_markdown(empty)

    assert "<script>" not in page
    assert f'<p class="warning" role="alert">{escape("Warning: " + note.sentence())}</p>' in page
    assert r"\<script\>alert(1)\</script\> \*bold\* \[link\](http://x)" in markdown


# Run by the test only, on a copy of the page without its Content-Security-Policy (which forbids scripts): the
# widths layout gave, written into the DOM for --dump-dom.
_MEASURE = (
    "<script>document.body.setAttribute('data-widths', "
    "document.documentElement.scrollWidth + ' ' + document.documentElement.clientWidth);</script>"
)


def test_the_tenant_page_fits_800_pixels_without_scrolling_sideways(
    filled: Filled, tmp_path: Path, chromium: str
) -> None:
    """The next best actions table cut off its Tier column at 800 px and the page scrolled sideways."""
    page = tmp_path / "tenant.html"
    result = report(filled.config, "--tenant", filled.healthy[1].tenant_id, "--html", str(page))
    assert result.exit_code == 0, result.output
    measured = tmp_path / "measured.html"
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text(encoding="utf-8"))
    measured.write_text(text.replace("</body>", f"{_MEASURE}</body>"), encoding="utf-8")

    [dumped] = _chromium(chromium, measured, "--dump-dom", window="800,1000")

    widths = re.search(r'data-widths="(\d+) (\d+)"', dumped.stdout)
    assert widths, dumped.stdout[-2000:]
    scroll, client = map(int, widths.groups())
    assert scroll <= client <= 800
