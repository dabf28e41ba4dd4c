"""`fetcher report --tenant`: the trend over a window, the controls that moved the score, the standing."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import Config, load_config
from fetcher.report.collect import tenant_report
from fetcher.report.formats import rounded, tenant_markdown
from fetcher.store.schema import control_profiles, control_scores, controls, score_history
from tests.dbutil import rows
from tests.report import reference
from tests.report.conftest import (
    HOSTILE_NAME,
    NEVER_FETCHED,
    Filled,
    days_ago,
    report,
    run,
    score_day,
    store,
    write_report_config,
)
from tests.report.test_profile_views import profile, store_profiles

A = "aaaaaaaa-0000-4000-8000-00000000000a"
SECRETS = {"REPORT_SECRET": "unused-secret"}
NOW = datetime.now(UTC)
MAX_AGE = timedelta(hours=48)


def _json(filled: Filled, tenant_id: str, *args: str) -> dict[str, Any]:
    result = report(filled.config, "--tenant", tenant_id, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def _first_vs_last(filled: Filled, tenant_id: str, first: date, last: date) -> dict[str, float]:
    """Each control's score on `last` minus on `first`, straight from control_scores (missing = 0)."""
    engine = filled.engine()
    tables = await reference.tables(engine)
    await engine.dispose()
    scores: dict[date, dict[str, float]] = defaultdict(dict)
    for r in tables["control_scores"]:
        if r["tenant_id"] == tenant_id:
            scores[r["score_date"]][r["control_name"]] = r["score"] or 0.0
    names = scores[first].keys() | scores[last].keys()
    deltas = {n: scores[last].get(n, 0.0) - scores[first].get(n, 0.0) for n in names}
    return {n: d for n, d in deltas.items() if abs(d) > 1e-9}


async def _history(filled: Filled, tenant_id: str) -> list[dict[str, Any]]:
    engine = filled.engine()
    rows = await reference.view(engine, score_history, tenant_id=tenant_id)
    await engine.dispose()
    return sorted(
        (
            {
                k: v.isoformat() if isinstance(v, date) else v
                for k, v in r.items()
                if k in ("score_date", "current_score", "max_score", "percent")
            }
            for r in rows
        ),
        key=lambda r: r["score_date"],
    )


def test_the_trend_is_the_score_history_of_every_stored_day_in_the_window(filled: Filled) -> None:
    tenant = filled.healthy[0].tenant_id

    data = _json(filled, tenant)

    assert data["trend"] == rounded(run(_history(filled, tenant)))  # percent: computed, rounded to 2 decimals
    assert data["window"]["first_day"] == data["trend"][0]["score_date"]


def test_since_starts_the_window_on_that_date(filled: Filled) -> None:
    tenant = filled.healthy[0].tenant_id
    since = days_ago(10)

    data = _json(filled, tenant, "--since", since.isoformat())

    assert data["trend"] == rounded([p for p in run(_history(filled, tenant)) if p["score_date"] >= since.isoformat()])
    assert data["window"]["first_day"] == since.isoformat()


async def test_control_deltas_are_each_controls_last_minus_first_score(filled: Filled) -> None:
    config = load_config(filled.config, SECRETS)
    tenant = filled.healthy[2].tenant_id
    engine = filled.engine()

    got = await tenant_report(engine, config, tenant, since=days_ago(20), now=NOW, max_age=MAX_AGE)
    await engine.dispose()

    assert got.first_day is not None
    assert got.last_day is not None
    expected = await _first_vs_last(filled, tenant, got.first_day, got.last_day)
    gains = sorted(((n, d) for n, d in expected.items() if d > 0), key=lambda x: (-x[1], x[0]))[:10]
    losses = sorted(((n, d) for n, d in expected.items() if d < 0), key=lambda x: (x[1], x[0]))[:10]
    assert [(d.control_name, d.change) for d in got.gains] == [(n, pytest.approx(d)) for n, d in gains]
    assert [(d.control_name, d.change) for d in got.losses] == [(n, pytest.approx(d)) for n, d in losses]
    assert got.controls_change == pytest.approx(sum(expected.values()))


def test_the_control_deltas_explain_the_window_score_change(filled: Filled) -> None:
    """The simulator's score is its controls' sum (rounded to 0.01), so the deltas add up to the change."""
    for tenant in filled.healthy:
        window = _json(filled, tenant.tenant_id)["window"]

        assert window["controls_change"] == pytest.approx(window["change_points"], abs=0.011)


def test_the_standing_is_the_percentage_against_each_comparative_average(filled: Filled) -> None:
    data = _json(filled, filled.healthy[0].tenant_id)

    t = data["tenant"]
    assert t["vs_all_tenants"] == pytest.approx(t["percent"] - t["all_tenants_average"], abs=0.011)
    assert t["vs_total_seats"] == pytest.approx(t["percent"] - t["total_seats_average"], abs=0.011)
    assert 1 <= data["standing"]["rank"] <= data["standing"]["ranked_of"] == len(filled.healthy) + 2


def test_a_tenant_with_one_day_has_a_one_point_trend_and_no_control_changes(filled: Filled) -> None:
    data = _json(filled, filled.one_day.tenant_id)

    assert len(data["trend"]) == 1
    assert (data["gains"], data["losses"], data["window"]["change_points"]) == ([], [], 0.0)
    assert data["tenant"]["change_7d_points"] is None


@pytest.mark.parametrize("which", ["empty", "never fetched"])
def test_a_tenant_without_data_gets_a_clear_empty_report(filled: Filled, which: str) -> None:
    tenant = filled.empty.tenant_id if which == "empty" else NEVER_FETCHED

    table = report(filled.config, "--tenant", tenant)
    data = _json(filled, tenant)

    assert table.exit_code == 0, table.output
    assert "No stored days in the window." in table.stdout
    assert (data["trend"], data["tenant"]["marks"]) == ([], ["no data"])


def test_an_unknown_tenant_is_a_usage_error(filled: Filled) -> None:
    result = report(filled.config, "--tenant", "00000000-dead-4000-8000-000000000000")

    assert result.exit_code == 2
    assert "neither in the configuration nor in the database" in result.output


def test_a_tenant_no_longer_configured_is_still_reported(filled: Filled) -> None:
    data = _json(filled, filled.dropped.tenant_id)

    assert data["tenant"]["marks"] == ["not configured"]
    assert data["trend"]


# ------------------------------------------------------------------------------------------ scripted


async def _scripted_report(engine: AsyncEngine, tmp_path: Path, since: date | None = None) -> Any:
    path = write_report_config(tmp_path / "f.toml", "sqlite+aiosqlite:///unused.db", [(A, "Scripted")])
    config: Config = load_config(path, SECRETS)
    return await tenant_report(engine, config, A, since=since, now=NOW, max_age=MAX_AGE)


async def test_a_score_drop_is_explained_by_the_controls_that_lost_points(engine: AsyncEngine, tmp_path: Path) -> None:
    await store(
        engine,
        score_day(A, days_ago(3), {"MFA": 10.0, "Audit": 5.0, "Legacy": 2.0}, max_score=40.0),
        score_day(A, days_ago(2), {"MFA": 0.0, "Audit": 5.0, "Legacy": 2.0}, max_score=40.0),
        score_day(A, days_ago(1), {"MFA": 0.0, "Audit": 3.0, "Legacy": 4.0, "New": 1.0}, max_score=40.0),
    )

    got = await _scripted_report(engine, tmp_path)

    assert [(d.control_name, d.change, d.days_changed) for d in got.losses] == [("MFA", -10.0, 1), ("Audit", -2.0, 1)]
    assert [(d.control_name, d.change, d.days_changed) for d in got.gains] == [("Legacy", 2.0, 1), ("New", 1.0, 1)]
    assert (got.window_change_points, got.controls_change) == (-9.0, -9.0)
    assert got.window_change_percent == -22.5


async def test_a_tenant_with_gaps_shows_only_its_stored_days_and_changes_across_them(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await store(
        engine,
        score_day(A, days_ago(20), {"c": 1.0}),
        score_day(A, days_ago(12), {"c": 4.0}),
        score_day(A, days_ago(2), {"c": 3.0}),
    )

    got = await _scripted_report(engine, tmp_path)

    assert [p.score_date for p in got.trend] == [days_ago(20), days_ago(12), days_ago(2)]
    assert [(d.control_name, d.change, d.days_changed) for d in got.gains] == [("c", 2.0, 2)]


async def test_changes_before_the_window_are_left_out(engine: AsyncEngine, tmp_path: Path) -> None:
    await store(
        engine,
        score_day(A, days_ago(5), {"c": 1.0}),
        score_day(A, days_ago(4), {"c": 9.0}),
        score_day(A, days_ago(3), {"c": 9.0}),
        score_day(A, days_ago(2), {"c": 7.0}),
    )

    got = await _scripted_report(engine, tmp_path, since=days_ago(4))

    assert [(d.control_name, d.change) for d in got.losses] == [("c", -2.0)]
    assert got.gains == ()


async def test_a_window_after_the_newest_day_still_gives_the_next_best_actions(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """`--since` sets the window, nothing else: the next best actions are of the newest day, wherever it falls."""
    await store(
        engine,
        score_day(A, days_ago(4), {"mfa": 1.0, "legacy": 5.0}, max_score=18.0),
        score_day(A, days_ago(3), {"mfa": 2.0, "legacy": 5.0}, max_score=18.0),
    )
    await store_profiles(engine, profile(A, "mfa"), profile(A, "legacy"))

    whole = await _scripted_report(engine, tmp_path)
    after = await _scripted_report(engine, tmp_path, since=days_ago(1))

    assert (after.trend, after.since) == ((), days_ago(1))
    assert whole.next_actions
    assert after.next_actions == whole.next_actions
    assert f"No stored day since {days_ago(1)}: the newest is {days_ago(3)}." in tenant_markdown(after).splitlines()


def test_since_in_the_future_is_refused_in_one_line(filled: Filled) -> None:
    """As `backfill --since`: a window that cannot hold a day is a usage error, said before the database is read."""
    future = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()

    result = report(filled.config, "--tenant", filled.healthy[0].tenant_id, "--since", future)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: report --since {future}: that is in the future\n"


# ------------------------------------------------------------------------------------------- formats


def test_the_table_names_the_tenant_and_its_sections(filled: Filled) -> None:
    result = report(filled.config, "--tenant", filled.healthy[1].tenant_id)

    assert result.exit_code == 0, result.output
    for heading in (HOSTILE_NAME, "Standing", "Gained most", "Lost most", "Trend", "all tenants average"):
        assert heading in result.stdout


def test_csv_has_a_block_per_section(filled: Filled, tmp_path: Path) -> None:
    out = tmp_path / "tenant.csv"
    tenant = filled.healthy[1].tenant_id

    result = report(filled.config, "--tenant", tenant, "--format", "csv", "--output", str(out))

    assert result.exit_code == 0, result.output
    blocks = out.read_text(encoding="utf-8").split("\n\n")
    parsed = [list(csv.reader(io.StringIO(b))) for b in blocks]
    assert [b[0] for b in parsed] == [
        ["# summary"],
        ["# controls"],
        ["# next actions"],
        ["# state updates"],
        ["# categories"],
        ["# trend"],
    ]
    summary = dict(parsed[0][2:])
    assert (summary["tenant_id"], summary["name"]) == (tenant, HOSTILE_NAME)
    assert parsed[-1][1] == ["score_date", "current_score", "max_score", "percent"]
    assert len(parsed[-1]) - 2 == len(_json(filled, tenant)["trend"])


async def _category_sums(filled: Filled, tenant_id: str) -> dict[tuple[str, str | None], tuple[float, float | None]]:
    """category_scores' score and max_score of each (day, category) of the tenant, summed exactly in Python
    from the stored rows (so the same on either database) and rounded to 2 decimals."""
    engine = filled.engine()
    scores, profiles, known = [await rows(engine, t) for t in (control_scores, control_profiles, controls)]
    await engine.dispose()
    profile = {r["control_name"]: r for r in profiles if r["tenant_id"] == tenant_id}
    category = {r["control_name"]: r["control_category"] for r in known}
    groups: dict[tuple[str, str | None], list[tuple[float, float | None]]] = defaultdict(list)
    for r in (r for r in scores if r["tenant_id"] == tenant_id):
        p = profile.get(r["control_name"], {})
        key = (r["score_date"].isoformat(), p.get("control_category") or category.get(r["control_name"]))
        groups[key].append((r["score"] or 0.0, p.get("max_score")))
    return {
        key: (
            round(math.fsum(s for s, _ in g), 2),
            round(math.fsum(m for _, m in g if m is not None), 2) if any(m is not None for _, m in g) else None,
        )
        for key, g in groups.items()
    }


def test_category_scores_are_rounded_alike_on_every_database_in_csv_and_json(filled: Filled, tmp_path: Path) -> None:
    """A category's score and max_score (sums by the view, whose float noise differs by database: SQLite
    364.3799999999999, PostgreSQL 364.38000000000017) are the exact sums rounded to 2 decimals, in JSON and
    CSV alike."""
    tenant = filled.healthy[0].tenant_id
    out = tmp_path / "tenant.csv"
    result = report(filled.config, "--tenant", tenant, "--format", "csv", "--output", str(out))
    assert result.exit_code == 0, result.output

    from_json = {
        (c["score_date"], c["control_category"]): (c["score"], c["max_score"])
        for c in _json(filled, tenant)["categories"]
    }
    block = next(b for b in out.read_text(encoding="utf-8").split("\n\n") if b.startswith("# categories"))
    from_csv = {
        (r["score_date"], r["control_category"] or None): (
            float(r["score"]),
            float(r["max_score"]) if r["max_score"] else None,
        )
        for r in csv.DictReader(io.StringIO(block.split("\n", 1)[1]))
    }
    expected = run(_category_sums(filled, tenant))
    assert from_json
    assert from_json == {key: expected[key] for key in from_json}
    assert from_csv == from_json


def test_markdown_has_the_sections_with_the_name_escaped(filled: Filled) -> None:
    result = report(filled.config, "--tenant", filled.healthy[1].tenant_id, "--format", "markdown")

    assert result.exit_code == 0, result.output
    for heading in ("## Standing", "## Window", "## Gained most", "## Lost most", "## Trend"):
        assert heading in result.stdout
    assert result.stdout.startswith("# Evil \\<script\\>")
