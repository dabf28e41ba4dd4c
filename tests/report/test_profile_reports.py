"""Reports with control profiles: titles, next best actions, state changes, categories, `--actions`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from fetcher.report.formats import rounded
from fetcher.store.engine import transaction
from fetcher.store.reports import actions_from_status
from fetcher.store.schema import control_status, improvement_actions
from tests.report import reference
from tests.report.conftest import Filled, report, run

NOW = datetime.now(UTC)


def _view(filled: Filled, table: Any, **where: Any) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = filled.engine()
        try:
            return await reference.view(engine, table, **where)
        finally:
            await engine.dispose()

    return run(read())


def _from_status(filled: Filled) -> list[Any]:
    async def read() -> list[Any]:
        engine = filled.engine()
        try:
            async with transaction(engine, write=False) as conn:
                return await actions_from_status(conn, None)
        finally:
            await engine.dispose()

    return run(read())


def _json(filled: Filled, *args: str) -> dict[str, Any]:
    result = report(filled.config, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_the_tenant_report_names_controls_by_title(filled: Filled) -> None:
    tenant = filled.healthy[0].tenant_id
    titles = {p["id"]: p["title"] for p in filled.sim.expected_profiles(tenant)}

    data = _json(filled, "--tenant", tenant)
    table = report(filled.config, "--tenant", tenant).stdout

    deltas = [*data["gains"], *data["losses"]]
    assert deltas
    assert [d["title"] for d in deltas] == [titles[d["control_name"]] for d in deltas]
    assert all(d["title"][:20] in table for d in deltas[:3])


def test_next_best_actions_are_the_controls_with_most_points_available(filled: Filled) -> None:
    tenant = filled.healthy[0].tenant_id
    status = _view(filled, control_status, tenant_id=tenant)

    data = _json(filled, "--tenant", tenant)

    open_ = [
        r
        for r in status
        if r["points_available"] and not r["deprecated"] and r["state"] not in ("Ignored", "ThirdParty")
    ]
    expected = sorted(open_, key=lambda r: (-r["points_available"], r["rank"], r["control_name"]))[:10]
    got = data["next_actions"]
    assert [(a["control_name"], a["points_available"]) for a in got] == [
        (r["control_name"], r["points_available"]) for r in expected
    ]
    assert all(a["user_impact"] and a["implementation_cost"] for a in got)
    assert all("<" not in a["remediation"] and a["remediation"].startswith("To address") for a in got)


def test_state_updates_in_the_window_are_listed_oldest_first(filled: Filled) -> None:
    tenant = filled.healthy[0].tenant_id
    data = _json(filled, "--tenant", tenant)
    first, last = data["window"]["first_day"], data["window"]["last_day"]

    expected = sorted(
        (u["updatedDateTime"][:10], p["id"], u["state"], u["updatedBy"])
        for p in filled.sim.expected_profiles(tenant)
        for u in p["controlStateUpdates"]
        if first <= u["updatedDateTime"][:10] <= last
    )
    got = [(u["updated_at"][:10], u["control_name"], u["state"], u["updated_by"]) for u in data["state_updates"]]
    assert expected
    assert sorted(got) == expected
    assert [u["updated_at"] for u in data["state_updates"]] == sorted(u["updated_at"] for u in data["state_updates"])


def test_the_category_history_covers_every_day_of_the_window(filled: Filled) -> None:
    data = _json(filled, "--tenant", filled.healthy[0].tenant_id)

    days = {p["score_date"] for p in data["trend"]}
    by_category: dict[str, set[str]] = {}
    for c in data["categories"]:
        by_category.setdefault(c["control_category"], set()).add(c["score_date"])
    assert set(by_category) >= {"Identity", "Data", "Device", "Apps"}
    assert all(found == days for found in by_category.values())


def test_microsoft_and_tenant_changes_add_up_to_the_controls_change(filled: Filled) -> None:
    window = _json(filled, "--tenant", filled.healthy[0].tenant_id)["window"]

    assert window["microsoft_change"] + window["tenant_change"] == pytest.approx(window["controls_change"], abs=0.011)


def test_actions_are_the_improvement_actions_view_biggest_total_gain_first(filled: Filled) -> None:
    rows = _view(filled, improvement_actions)

    data = _json(filled, "--actions")

    expected = sorted(rows, key=lambda r: (-r["points_available_total"], r["control_name"]))
    assert data["actions"] == json.loads(json.dumps(rounded(expected)))  # computed figures: 2 decimals
    assert data["tenant_id"] is None
    assert len(data["actions"]) > 100


def test_one_tenants_actions_apply_the_views_definition_to_that_tenant(filled: Filled) -> None:
    tenant = filled.healthy[1].tenant_id
    status = _view(filled, control_status, tenant_id=tenant)
    everyone = _from_status(filled)
    portfolio = _view(filled, improvement_actions)

    data = _json(filled, "--actions", "--tenant", tenant)

    with_points = {r["control_name"]: r for r in status if r["points_available"] and not r["deprecated"]}
    assert {a["control_name"] for a in data["actions"]} == set(with_points)
    assert all(a["tenants_with_points"] == a["tenants"] == 1 for a in data["actions"])
    assert all(
        a["points_available_total"] == round(with_points[a["control_name"]]["points_available"], 2)
        for a in data["actions"]
    )
    assert sorted((a.control_name, a.tenants, a.tenants_with_points, a.tenants_ignored) for a in everyone) == sorted(
        (r["control_name"], r["tenants"], r["tenants_with_points"], r["tenants_ignored"]) for r in portfolio
    )
    by_name = {r["control_name"]: r for r in portfolio}
    for a in everyone:
        assert a.points_available_total == pytest.approx(by_name[a.control_name]["points_available_total"])
        assert a.percent_gain_average == pytest.approx(by_name[a.control_name]["percent_gain_average"])


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_actions_come_in_every_text_format(filled: Filled, fmt: str) -> None:
    top = _json(filled, "--actions")["actions"][0]

    result = report(filled.config, "--actions", "--format", fmt)

    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert rows[0]["control_name"] == top["control_name"]
        assert float(rows[0]["points_available_total"]) == top["points_available_total"]
    else:
        assert top["title"][:30] in result.stdout
        assert "Improvement actions" in result.stdout


def test_actions_html_is_one_page_with_a_row_per_action(filled: Filled, tmp_path: Any) -> None:
    page = tmp_path / "actions.html"

    result = report(filled.config, "--actions", "--html", str(page))

    text = page.read_text(encoding="utf-8")
    assert result.exit_code == 0, result.output
    assert text.count("<tr>") == len(_json(filled, "--actions")["actions"]) + 1
    assert "Content-Security-Policy" in text


def test_actions_for_an_unknown_tenant_is_a_usage_error(filled: Filled) -> None:
    result = report(filled.config, "--actions", "--tenant", "12345678-1234-4234-8234-123456789012")

    assert result.exit_code != 0
    assert "neither in the configuration nor in the database" in result.output
