"""Every table the CLI prints (portfolio report, status, run summary, tenants discover) at 80 and 120 columns
and off a terminal: lines fit the terminal, no number or date is ever cut, and off a terminal each tenant is one
whole line."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from rich.console import Console, RenderableType

from fetcher.config import AuthConfig, TenantConfig
from fetcher.discovery import Customer, TenantRow, merge
from fetcher.health import Health, LastError
from fetcher.models import RequestStats, Status, TenantRef
from fetcher.outcome import RunReport, TenantOutcome
from fetcher.output import discovery_table, status_error_lines, status_table, summary_table
from fetcher.report.formats import portfolio_table
from fetcher.report.model import build_portfolio, empty_latest
from fetcher.status import StatusReport, TenantStatus
from fetcher.store.ledger import TenantState
from fetcher.tables import UNLIMITED, Column, fit

NOW = datetime(2026, 11, 30, 6, tzinfo=UTC)
DAY = date(2026, 11, 29)
LONG_NAME = "Northwind Traders International Holdings (Europe, Middle East and Africa) GmbH & Co. KG"
TENANTS = [
    (f"{i:08d}-1111-4111-8111-111111111111", name)
    for i, name in enumerate(["Contoso", LONG_NAME, "Fabrikam Ltd", "A"], 1)
]
WIDTHS = [80, 120, None]


def render(renderable: RenderableType, width: int | None) -> list[str]:
    console = Console(file=io.StringIO(), width=width or UNLIMITED, no_color=True, color_system=None, record=True)
    console.print(renderable)
    return console.export_text().splitlines()


def tokens(lines: list[str]) -> set[str]:
    return {word for line in lines for word in re.split(r"[\s│┃|]+", line) if word}


def assert_fits(lines: list[str], width: int | None) -> None:
    if width is not None:
        assert max(len(line.rstrip()) for line in lines) <= width, "\n".join(lines)


def assert_one_line_each(lines: list[str], *values: str) -> None:
    """Off a terminal: a line that holds every value together."""
    assert any(all(v in line for v in values) for line in lines), (values, "\n".join(lines))


def assert_titles_unpadded(lines: list[str]) -> None:
    """Off a terminal, lines outside the table's borders (title, caption) carry no padding to its width."""
    prose = [line for line in lines if line and line[0] not in "┏┃┡│└╇├━"]
    assert prose, lines
    assert all(line == line.rstrip() for line in prose), [len(line) for line in prose]


@pytest.mark.parametrize("width", WIDTHS, ids=str)
def test_the_portfolio_keeps_every_figure_and_date_whole(width: int | None) -> None:
    latest = [
        dataclasses.replace(
            empty_latest(tid, name),
            score_date=DAY,
            current_score=544.47 + i,
            max_score=1128.0,
            percent=48.27 + i,
            change_7d_points=-9.39 * i,
            change_7d_percent=-1.2,
            change_30d_points=10.18,
            all_tenants_average=51.7,
        )
        for i, (tid, name) in enumerate(TENANTS[:3])
    ]
    configured = [TenantConfig(tid, name, AuthConfig()) for tid, name in TENANTS]
    portfolio = build_portfolio(latest, configured, now=NOW, max_age=timedelta(hours=48))

    lines = render(portfolio_table(portfolio, width), width)

    assert_fits(lines, width)
    words = tokens(lines)
    assert {"48.3%", "49.3%", "50.3%", "-9.39", "-18.78"} <= words  # percent and 7-day change stay at 80
    assert all(tid in words for tid, _ in TENANTS)  # ids are never folded
    if width is None:
        assert_one_line_each(lines, LONG_NAME, TENANTS[1][0], "2026-11-29", "545.47", "1128.00", "+10.18", "-2.4")
        assert_titles_unpadded(lines)
    if width == 120:
        assert "2026-11-29" in words


@pytest.mark.parametrize("width", WIDTHS, ids=str)
def test_status_keeps_dates_whole_and_marks_in_the_shared_words(width: int | None) -> None:
    error = LastError(NOW, "permission", "Graph denied access (403): the app lacks SecurityEvents.Read.All")
    states = [
        TenantState(TENANTS[0][0], TENANTS[0][1], DAY, NOW, None, None, None, 0, DAY, 30),
        TenantState(TENANTS[1][0], TENANTS[1][1], None, None, error.at, error.kind, error.message, 0),
    ]
    status = StatusReport(
        NOW,
        timedelta(hours=48),
        30,
        (
            TenantStatus(states[0], (), True, False),
            TenantStatus(states[1], (Health.NO_DATA, Health.FAILING), True, False),
        ),
    )

    lines = render(status_table(status, width=width), width)

    assert_fits(lines, width)
    words = tokens(lines)
    assert "2026-11-29" in words
    assert "failing" in words
    assert {TENANTS[0][0], TENANTS[1][0]} <= words  # ids whole, even at 80
    if width is None:
        assert_one_line_each(lines, LONG_NAME, TENANTS[1][0], "no data, failing")
        assert max(len(line.rstrip()) for line in lines if "│" in line) < 200  # no row padded to the error
    # the last error whole under the table: one line off a terminal, wrapped as prose on one
    below = " ".join(" ".join(lines[next(i for i, line in enumerate(lines) if line.startswith("└")) + 1 :]).split())
    assert below == (
        f"last error: {LONG_NAME} ({TENANTS[1][0]}), 2026-11-30 06:00 UTC: permission: Graph denied access (403): "
        "the app lacks SecurityEvents.Read.All"
    )
    if width is None:
        assert_one_line_each(lines, "last error:", TENANTS[1][0], "SecurityEvents.Read.All")
    if width is None:
        assert_one_line_each(lines, "Contoso", TENANTS[0][0], "2026-11-29", "2026-11-30 06:00")


def test_status_says_a_tenant_a_stopped_run_did_not_reach_is_interrupted_not_its_last_error() -> None:
    """It said "last error: ... interrupted: the run was stopped before this tenant was fetched", where the
    README, `report` and fetcher.health hold an interrupted run not to be a failure."""
    stopped = "the run was stopped before this tenant was fetched"
    states = [TenantState(TENANTS[1][0], TENANTS[1][1], DAY, NOW, NOW, "interrupted", stopped, 0, DAY, 30)]
    status = StatusReport(NOW, timedelta(hours=48), 30, (TenantStatus(states[0], (), True, False),))

    assert status_error_lines(status) == [
        f"interrupted: {LONG_NAME} ({TENANTS[1][0]}), 2026-11-30 06:00 UTC: {stopped}"
    ]


def _outcome(index: int, status: Status, message: str | None, requests: int = 3) -> TenantOutcome:
    tid, name = TENANTS[index]
    stats = RequestStats()
    stats.requests, stats.retries, stats.throttled = requests, 12345, 67890
    outcome = TenantOutcome(TenantRef(tid, name), status, NOW, NOW, stats, scores_upserted=0)
    outcome.error_kind = "authentication" if message else None
    outcome.error_message = message
    return outcome


@pytest.mark.parametrize("width", WIDTHS, ids=str)
def test_the_run_summary_keeps_the_request_counts_whole(width: int | None) -> None:
    report = RunReport("r", "backfill", NOW)
    report.counters.tenants_total = 4
    report.add(_outcome(1, Status.FAILED, f"tenant {TENANTS[1][0]} ({LONG_NAME}): refused AADSTS7000215"))
    report.add(_outcome(2, Status.INTERRUPTED, "the run was stopped while this tenant was being fetched", 4))
    report.status = Status.PARTIAL

    lines = render(summary_table(report, width=width), width)

    assert_fits(lines, width)
    words = tokens(lines)
    assert {"3", "4", "interrupted", "AADSTS7000215"} <= words
    assert "1 interrupted" in "\n".join(lines)
    if width is None:
        assert_one_line_each(lines, LONG_NAME, TENANTS[1][0], "failed", "12345", "67890", "AADSTS7000215")
        assert_titles_unpadded(lines)


@pytest.mark.parametrize("width", WIDTHS, ids=str)
def test_tenants_discover_shows_each_tenant_on_one_line_off_a_terminal(width: int | None) -> None:
    """Its table stacked each tenant's name over its id on two lines in a pipe too (a rich table of its own)."""
    gone_id, gone_name = TENANTS[0]
    existing = [TenantRow(gone_id, gone_name)]
    merged = merge(existing, [Customer(tid, name) for tid, name in TENANTS[1:]], DAY)

    lines = render(discovery_table(merged, width=width), width)

    assert_fits(lines, width)
    assert all(tid in tokens(lines) for tid, _ in TENANTS)  # ids are never folded
    if width is None:
        assert_one_line_each(lines, LONG_NAME, TENANTS[1][0], "added")
        assert_one_line_each(lines, gone_name, gone_id, "gone", "gone since 2026-11-29")
        assert_titles_unpadded(lines)


@pytest.mark.parametrize("width", WIDTHS, ids=str)
def test_tenants_discover_shows_a_rename_upstream_on_one_line_with_both_names_cut(width: int | None) -> None:
    """Graph's display names may be 256 characters long: the detail cell shows each cut to 60."""
    tenant_id = TENANTS[1][0]
    before, now = "Old " + "o" * 252, "N" * 256
    merged = merge([TenantRow(tenant_id, "Mine")], [Customer(tenant_id, now)], DAY, {tenant_id: before})

    lines = render(discovery_table(merged, width=width), width)

    assert_fits(lines, width)
    assert tenant_id in tokens(lines)
    assert "o" * 60 not in "".join(lines)
    assert "N" * 60 not in "".join(lines)
    if width is None:
        assert_one_line_each(lines, "Mine", tenant_id, "renamed upstream", "was", "now")
        assert max(map(len, lines)) < 220


def test_a_run_with_nothing_to_show_prints_its_counts_and_no_empty_table() -> None:
    report = RunReport("r", "run", NOW)
    report.counters.tenants_total = 1
    report.add(_outcome(0, Status.SUCCEEDED, None))
    report.status = Status.SUCCEEDED

    lines = render(summary_table(report, width=120), 120)

    assert lines == [
        "run succeeded: 1/1 tenants stored (1 with no score-day), 0 score-days, 67890 throttled answers from 1 "
        "tenant, 0 failed"
    ]


def test_the_run_title_says_how_many_stored_tenants_hold_no_score_day() -> None:
    """ "2/3 tenants stored, 30 score-days" read as two tenants with data when one (a new tenant) had none."""
    report = RunReport("r", "backfill", NOW)
    report.counters.tenants_total = 3
    with_days = _outcome(0, Status.SUCCEEDED, None)
    with_days.scores_upserted = 30
    for done in (with_days, _outcome(1, Status.SUCCEEDED, None), _outcome(2, Status.FAILED, "refused")):
        report.add(done)

    title = render(summary_table(report, width=None), None)[0]

    assert title.startswith("backfill running: 2/3 tenants stored (1 with no score-day), 30 score-days, ")


def test_a_rebuild_says_none_of_graph_s_figures() -> None:
    """It replays the archive: "0 throttled answers" and the requests, retries and 429s columns said nothing."""
    report = RunReport("r", "rebuild", NOW)
    report.counters.tenants_total = 2
    report.add(_outcome(0, Status.SUCCEEDED, None, requests=0))
    report.add(_outcome(1, Status.FAILED, "archive_unreadable: the body of 2026-11-29 cannot be read", requests=0))
    report.status = Status.PARTIAL

    lines = render(summary_table(report, width=None), None)

    assert lines[0] == "rebuild partial: 1/2 tenants stored (1 with no score-day), 0 score-days, 1 failed"
    assert not {"requests", "retries", "429s", "12345", "67890"} & tokens(lines)
    assert_one_line_each(lines, LONG_NAME, TENANTS[1][0], "failed", "archive_unreadable:")


def test_columns_are_dropped_highest_number_first_until_the_rest_fit() -> None:
    columns = [Column("a" * 30), Column("b" * 30, drop=1), Column("c" * 30, drop=2), Column("d", drop=3)]
    rows = [["x", "y", "z", "w"]]

    assert fit(columns, rows, None) == [0, 1, 2, 3]
    assert fit(columns, rows, 200) == [0, 1, 2, 3]
    assert fit(columns, rows, 80) == [0, 1]
    assert fit(columns, rows, 40) == [0]


def test_off_a_terminal_a_long_detail_wraps_instead_of_padding_every_row() -> None:
    """The demo's 403 consent text (1,000 characters) padded every row of the run table on stderr to 1,250 columns."""
    report = RunReport("r", "backfill", NOW)
    report.counters.tenants_total = 2
    consent = " ".join(f"word{i:03d}" for i in range(120))
    report.add(_outcome(0, Status.FAILED, consent))
    report.add(_outcome(2, Status.PARTIAL, None))

    lines = render(summary_table(report, width=None), None)

    assert max(len(line.rstrip()) for line in lines) < 250, "\n".join(lines)
    assert {f"word{i:03d}" for i in range(120)} <= tokens(lines)
    assert_one_line_each(lines, TENANTS[2][1], TENANTS[2][0], "partial")
