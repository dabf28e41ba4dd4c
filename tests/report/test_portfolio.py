"""`fetcher report`: a row per tenant, weakest first, marked, with totals; every figure as SQL computes it."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fetcher.config import DatabaseConfig
from fetcher.report.formats import COMPUTED, figure
from fetcher.store.engine import create_engine
from fetcher.store.schema import latest_scores
from tests.report import reference
from tests.report.conftest import (
    HOSTILE_NAME,
    NEVER_FETCHED,
    TODAY,
    Filled,
    days_ago,
    migrate,
    report,
    run,
    score_day,
    store,
    write_report_config,
)

VIEW_FIELDS = [c.name for c in latest_scores.columns if c.name != "tenant_name"]


def _portfolio_json(filled: Filled, *args: str) -> dict[str, Any]:
    result = report(filled.config, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


async def _reference_rows(filled: Filled) -> dict[str, dict[str, Any]]:
    engine = filled.engine()
    tables = await reference.tables(engine)
    await engine.dispose()
    return reference.latest_scores(tables, TODAY)


async def _sql_totals(filled: Filled) -> tuple[Any, ...]:
    engine = filled.engine()
    v = latest_scores.c
    query = sa.select(
        sa.func.avg(v.percent),
        sa.func.sum(sa.case((v.change_7d_points > 0, 1), else_=0)),
        sa.func.sum(sa.case((v.change_7d_points < 0, 1), else_=0)),
        sa.func.sum(sa.case((v.change_7d_points == 0, 1), else_=0)),
        sa.func.count(v.score_date),
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one()
    await engine.dispose()
    return tuple(row)


def test_every_figure_of_every_row_is_the_one_computed_from_the_tables(filled: Filled) -> None:
    data = _portfolio_json(filled)

    expected = run(_reference_rows(filled))
    got = {t["tenant_id"]: t for t in data["tenants"]}
    for tenant_id, row in expected.items():
        want = {k: figure(row[k]) if k in COMPUTED else _iso(row[k]) for k in VIEW_FIELDS}
        assert {k: got[tenant_id][k] for k in VIEW_FIELDS} == want, tenant_id
        if row["percent"] is not None and row["all_tenants_average"] is not None:
            assert got[tenant_id]["vs_all_tenants"] == round(row["percent"] - row["all_tenants_average"], 2)


def test_computed_figures_are_rounded_to_2_decimals_and_stored_ones_kept_as_stored(filled: Filled) -> None:
    """No float noise (3.8799999999999955) in JSON or CSV; a stored score is printed as stored."""
    data = _portfolio_json(filled)
    rows = list(csv.DictReader(io.StringIO(report(filled.config, "--format", "csv").stdout)))

    expected = run(_reference_rows(filled))
    for tenant in data["tenants"]:
        for key in ("percent", "change_7d_points", "change_30d_percent", "vs_all_tenants"):
            value = tenant[key]
            assert value is None or value == round(value, 2), (key, value)
        if tenant["tenant_id"] in expected:
            assert tenant["current_score"] == expected[tenant["tenant_id"]]["current_score"]
    noisy = [row["percent"] for row in rows if len(row["percent"].partition(".")[2]) > 2]
    assert noisy == []


def test_the_totals_are_the_ones_sql_computes(filled: Filled) -> None:
    totals = _portfolio_json(filled)["totals"]

    average, improved, slipped, unchanged, with_data = run(_sql_totals(filled))
    assert totals["average_percent"] == round(average, 2)  # a computed figure: rounded to 2 decimals
    assert (totals["improved"], totals["slipped"], totals["unchanged"], totals["with_data"]) == (
        improved,
        slipped,
        unchanged,
        with_data,
    )
    assert totals["tenants"] == len(filled.configured) + 2  # the dropped tenant and the never-fetched one


def test_rows_run_from_the_weakest_percent_to_the_strongest_then_tenants_without_data(filled: Filled) -> None:
    rows = _portfolio_json(filled)["tenants"]

    percents = [r["percent"] for r in rows]
    with_data = [p for p in percents if p is not None]
    assert with_data == sorted(with_data)
    assert percents == [*with_data, *([None] * (len(percents) - len(with_data)))]


def test_configured_tenants_without_data_and_tenants_no_longer_configured_are_marked(filled: Filled) -> None:
    marks = {r["tenant_id"]: (r["name"], r["marks"]) for r in _portfolio_json(filled)["tenants"]}

    assert marks[filled.empty.tenant_id] == (filled.empty.name, ["no data"])
    assert marks[NEVER_FETCHED] == ("Never Fetched Ltd", ["no data"])
    assert marks[filled.dropped.tenant_id] == (filled.dropped.name, ["not configured"])
    assert marks[filled.healthy[0].tenant_id] == (filled.healthy[0].name, [])


def test_a_short_max_age_marks_every_tenant_with_data_stale(filled: Filled) -> None:
    data = _portfolio_json(filled, "--max-age", "1e-6")  # 3.6 ms: above 0, as --max-age must be

    assert all("stale" in r["marks"] for r in data["tenants"] if r["score_date"])
    assert data["totals"]["stale"] == len(filled.healthy) + 2  # with the one-day and the dropped tenant


@pytest.mark.parametrize(("sort", "key"), [("name", "name"), ("change", "change_7d_points")])
def test_sort_orders_by_name_or_by_the_7_day_change(filled: Filled, sort: str, key: str) -> None:
    rows = _portfolio_json(filled, "--sort", sort)["tenants"]

    values = [r[key] for r in rows if r[key] is not None]
    assert values == sorted(values, key=lambda v: v.casefold() if isinstance(v, str) else v)


def test_the_table_shows_every_tenant_and_the_totals_with_names_as_plain_text(filled: Filled) -> None:
    result = report(filled.config)

    assert result.exit_code == 0, result.output
    assert HOSTILE_NAME in result.stdout  # rich markup in a name is shown, not applied
    for tenant in (*filled.configured, filled.dropped):
        assert tenant.tenant_id in result.stdout
    assert f"{len(filled.configured) + 2} tenants" in result.stdout
    assert "without data" in result.stdout


def test_csv_is_one_row_per_tenant_under_a_header(filled: Filled, tmp_path: Path) -> None:
    out = tmp_path / "portfolio.csv"

    result = report(filled.config, "--format", "csv", "--output", str(out))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == len(filled.configured) + 2
    by_id = {r["tenant_id"]: r for r in rows}
    assert by_id[filled.healthy[1].tenant_id]["name"] == HOSTILE_NAME
    json_rows = {r["tenant_id"]: r for r in _portfolio_json(filled)["tenants"]}
    for tenant_id, row in by_id.items():
        figure = json_rows[tenant_id]["percent"]
        assert row["percent"] == ("" if figure is None else str(figure))


def test_markdown_is_a_table_with_escaped_names_and_the_totals(filled: Filled) -> None:
    result = report(filled.config, "--format", "markdown")

    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(filled.configured) + 2
    assert all(line.count("|") - line.count("\\|") == table[0].count("|") for line in table)
    assert "\\<script\\>" in result.stdout
    assert "<script>" not in result.stdout
    assert "**Totals:**" in result.stdout


def test_an_empty_database_lists_the_configured_tenants_as_without_data(tmp_path: Path) -> None:
    config = write_report_config(
        tmp_path / "fetcher.toml",
        f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        [(NEVER_FETCHED, "Never Fetched Ltd")],
    )
    migrate(config)

    table = report(config)
    data = json.loads(report(config, "--format", "json").stdout)

    assert table.exit_code == 0, table.output
    assert "1 tenants (0 with data), average —" in table.stdout
    assert [(r["tenant_id"], r["marks"]) for r in data["tenants"]] == [(NEVER_FETCHED, ["no data"])]
    assert data["totals"]["average_percent"] is None


def test_a_missing_database_file_is_refused_not_created(tmp_path: Path) -> None:
    """`report` reads: where the SQLite file is gone it says so, and leaves no empty database behind."""
    database = tmp_path / "gone.db"
    config = write_report_config(tmp_path / "fetcher.toml", f"sqlite+aiosqlite:///{database}", [])

    result = report(config)

    assert result.exit_code == 3
    assert f"no database at {database}" in result.output
    assert not database.exists()


def test_placeholder_comparatives_fall_back_to_the_newest_real_average(tmp_path: Path) -> None:
    """Issue 12: TotalSeats answered -1 made the tenant +54.52 points above similar tenants (53.52 - (-1));
    the placeholder is no value, so the previous day's real 70.0 is the comparison: -16.48."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'quirks.db'}"
    config = write_report_config(tmp_path / "fetcher.toml", url, [(NEVER_FETCHED, "Placeholder Ltd")])
    today, yesterday = days_ago(0), days_ago(1)
    newest = score_day(NEVER_FETCHED, today, {"A": 53.52}, comparatives=[("AllTenants", 52.0)])
    newest["averageComparativeScores"].append(
        {"basis": "TotalSeats", "averageScore": -1.0, "seatSizeRangeLowerValue": -1, "seatSizeRangeUpperValue": -1}
    )
    older = score_day(NEVER_FETCHED, yesterday, {"A": 50.0}, comparatives=[("TotalSeats", 70.0)])
    engine = create_engine(DatabaseConfig(url=url))
    run(store(engine, newest, older))
    run(engine.dispose())

    row = json.loads(report(config, "--format", "json").stdout)["tenants"][0]

    assert (row["total_seats_average"], row["total_seats_date"]) == (70.0, yesterday.isoformat())
    assert round(row["vs_total_seats"], 2) == -16.48


def test_an_empty_database_without_tenants_reports_zero_tenants(tmp_path: Path) -> None:
    config = write_report_config(tmp_path / "fetcher.toml", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", [])
    migrate(config)

    result = report(config, "--format", "markdown")

    assert result.exit_code == 0, result.output
    assert "0 tenants (0 with data)" in result.stdout


def test_an_output_file_that_cannot_be_written_is_one_line_and_exit_3(filled: Filled, tmp_path: Path) -> None:
    """A missing or unwritable folder is this machine's state (exit 3, as for the database), not usage (2)."""
    result = report(filled.config, "--format", "csv", "--output", str(tmp_path / "missing" / "p.csv"))

    assert result.exit_code == 3
    assert "cannot write" in result.output


@pytest.mark.parametrize("option", ["--output", "--html"])
def test_an_output_file_that_is_a_folder_is_one_line_and_exit_3(filled: Filled, tmp_path: Path, option: str) -> None:
    """Not click's usage text and exit 2: the same line as for a missing folder."""
    result = report(filled.config, "--format", "csv", option, str(tmp_path))

    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [f"error: cannot write {tmp_path}: Is a directory"]


def _report_on_a_full_disk(config: Path, folder: Path, *args: str) -> list[str]:
    """In a mount namespace of its own, a 4 KiB tmpfs at `folder` holding yesterday's `report.out` (its one page):
    `fetcher report ARGS` into that file, then its exit status and what the file holds."""
    script = (
        'mount -t tmpfs -o size=4k tmpfs "$0" || exit 99; printf "yesterday\\n" > "$0/report.out"; '
        '"$@" 2>/dev/null; echo "exit $?"; cat "$0/report.out"; ls -A "$0"'
    )
    fetcher = [sys.executable, "-m", "fetcher", "--config", str(config), "report", *args]
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(folder)]
    env = {**os.environ, "COLUMNS": "240", "REPORT_SECRET": "unused-secret"}
    done = subprocess.run([*command, *fetcher], check=False, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode == 99 or "unshare" in done.stderr:
        pytest.skip(f"no tmpfs mount in a namespace here: {done.stderr.strip()}")
    return done.stdout.splitlines()


@pytest.mark.parametrize(("option", "fmt"), [("--output", "json"), ("--html", "csv")])
def test_a_full_disk_keeps_the_previous_report_file(filled: Filled, tmp_path: Path, option: str, fmt: str) -> None:
    """Yesterday's report is replaced whole or not at all (it was truncated, then left half written)."""
    lines = _report_on_a_full_disk(filled.config, tmp_path, "--format", fmt, option, str(tmp_path / "report.out"))

    assert lines == ["exit 3", "yesterday", "report.out"]
