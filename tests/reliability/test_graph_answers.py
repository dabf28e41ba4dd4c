"""Real Graph answers that mislead or block (issue 12), each scripted in the simulator and run through
`fetcher run` as a real process: what the tables, `tenant_runs` and `fetcher status` say afterwards."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from fetcher.simulator import Fault, TokenRefusal, generate_tenants
from fetcher.store.schema import comparative_scores, latest_scores, rejected_payloads, secure_scores, tenant_runs
from tests.e2e import World, world
from tests.test_runner import TODAY, assert_stored_as_simulated, db_count, db_rows


def status(w: World) -> dict[str, dict[str, Any]]:
    done = w.fetcher("status", "--format", "json", "--max-age", "10000")
    return {s["tenant_id"]: s for s in json.loads(done.stdout)}


def ledger(w: World) -> list[tuple[str, str, str | None]]:
    """The `tenant_runs` rows, oldest first."""
    rows = sorted(db_rows(w.database_url, tenant_runs), key=lambda r: (r["started_at"], r["tenant_id"]))
    return [(r["tenant_id"], r["status"], r["error_kind"]) for r in rows]


def test_placeholder_comparatives_are_stored_as_no_value_and_the_view_falls_back(
    tmp_path: Path, database_url: str
) -> None:
    (tenant,) = generate_tenants(1, seed=41)
    with world(tmp_path, database_url, [tenant], seed=41, newest_day=TODAY - timedelta(days=1)) as w:
        assert w.fetcher("run").returncode == 0
        real = {
            r["basis"]: r["average_score"]
            for r in db_rows(database_url, comparative_scores, score_date=TODAY - timedelta(days=1))
        }
        w.sim.newest_day = TODAY
        w.sim.add_fault(tenant.tenant_id, Fault.placeholder_comparatives())

        done = w.fetcher("run")

        assert done.returncode == 0, done.stderr
        today = {r["basis"]: r for r in db_rows(database_url, comparative_scores, score_date=TODAY)}
        placeholder = {"averageScore": -1.0, "seatSizeRangeLowerValue": -1, "seatSizeRangeUpperValue": -1}
        for basis in ("TotalSeats", "IndustryTypes"):
            row = today[basis]
            assert (row["average_score"], row["seat_size_lower"], row["seat_size_upper"]) == (None, None, None)
            assert row["extra"] == {**placeholder, "categoryValue": -1}
        assert today["AllTenants"]["average_score"] is not None
        (view,) = db_rows(database_url, latest_scores)
        assert (view["score_date"], view["total_seats_date"], view["total_seats_average"]) == (
            TODAY,
            TODAY - timedelta(days=1),
            real["TotalSeats"],
        )
        assert ledger(w)[-1] == (tenant.tenant_id, "succeeded", None)


def test_an_answer_that_disagrees_with_itself_stores_one_day_quarantines_the_other_and_never_blocks(
    tmp_path: Path, database_url: str
) -> None:
    """Issue 12: two ids for one day in one answer; after it, every run failed on the unique id."""
    (tenant,) = generate_tenants(1, seed=42)
    with world(tmp_path, database_url, [tenant], seed=42) as w:
        w.sim.add_fault(tenant.tenant_id, Fault.inconsistent_ids(times=1))
        days = [TODAY - timedelta(days=n) for n in range(3)]
        ids = [f"{tenant.tenant_id}_{day}" for day in days]

        first = w.fetcher("backfill", "--days", "3")

        assert first.returncode == 0, first.stderr
        stored = [(r["score_date"], r["id"], r["id_mismatch"]) for r in db_rows(database_url, secure_scores)]
        assert stored == [(TODAY, ids[0], False)]
        reasons = sorted(r["reason"] for r in db_rows(database_url, rejected_payloads))
        assert reasons == [
            f"secureScore {ids[n]} is a second object for {TODAY} in one answer; {ids[0]} was stored for that "
            "day: its id names its tenant and day, this one's does not"
            for n in (2, 1)
        ]
        assert ledger(w) == [(tenant.tenant_id, "partial", None)]

        again = w.fetcher("backfill", "--days", "3")

        assert again.returncode == 0, again.stderr
        stored = {r["score_date"]: (r["id"], r["id_mismatch"]) for r in db_rows(database_url, secure_scores)}
        assert stored == {day: (f"{tenant.tenant_id}_{day}", False) for day in days}
        assert ledger(w)[-1] == (tenant.tenant_id, "succeeded", None)
        assert status(w)[tenant.tenant_id]["rejected_payloads"] == 2


def test_days_whose_ids_name_other_days_are_stored_flagged_and_reported(tmp_path: Path, database_url: str) -> None:
    (tenant,) = generate_tenants(1, seed=45)
    with world(tmp_path, database_url, [tenant], seed=45) as w:
        w.sim.add_fault(tenant.tenant_id, Fault.inconsistent_ids(same_day=False))

        done = w.fetcher("backfill", "--days", "3")

        assert done.returncode == 0, done.stderr
        stored = [(r["score_date"], r["id"], r["id_mismatch"]) for r in db_rows(database_url, secure_scores)]
        assert stored == [
            (TODAY - timedelta(days=n + 1), f"{tenant.tenant_id}_{TODAY - timedelta(days=n)}", True) for n in (2, 1, 0)
        ]
        (row,) = db_rows(database_url, tenant_runs)
        assert (row["status"], row["scores_upserted"], row["rejected"]) == ("partial", 3, 0)
        assert row["error_message"] == (
            f"tenant {tenant.tenant_id} ({tenant.name}): 3 day(s) stored under the date of their createdDateTime "
            "although Graph's id names another day; flagged in secure_scores.id_mismatch"
        )


def test_a_window_too_slow_to_answer_converges_in_narrower_pages(tmp_path: Path, database_url: str) -> None:
    """Issue 12: a `$top=90` answer outlasting `timeout_seconds` failed the tenant every night. Here 90 days take
    5.4 s and 30 take 1.8 s against 1.2 s; 10 take 0.6 s (light days: the waits are the point, not the volume)."""
    slow, healthy = generate_tenants(2, seed=46)
    tenants = [dataclasses.replace(slow, faults=(Fault.slow_window(ms_per_day=60),)), healthy]
    with world(tmp_path, database_url, tenants, seed=46, page_size=100, controls_per_day=40) as w:
        w.write_config(graph={"timeout_seconds": 1.2})

        done = w.fetcher("run")  # a first fetch asks for history_days = 90

        assert done.returncode == 0, done.stderr
        assert_stored_as_simulated(w, slow.tenant_id, 90)
        asked = [r.query.get("$top") for r in w.sim.requests if r.tenant_id == slow.tenant_id and r.endpoint == "list"]
        assert asked == ["90", "30", *["10"] * 9]
        rows = {r["tenant_id"]: r for r in db_rows(database_url, tenant_runs)}
        assert (rows[slow.tenant_id]["status"], rows[slow.tenant_id]["retries"]) == ("succeeded", 2)
        assert status(w)[slow.tenant_id]["newest_score_date"] == str(TODAY)


def test_a_206_without_data_fails_the_tenant_with_the_providers_warning(tmp_path: Path, database_url: str) -> None:
    failing, refusing, healthy = generate_tenants(3, seed=43)
    tenants = [
        dataclasses.replace(failing, faults=(Fault.empty_partial(),)),
        dataclasses.replace(refusing, faults=(Fault.empty_partial(['199 - "Microsoft/SecureScore/403/10"']),)),
        healthy,
    ]
    with world(tmp_path, database_url, tenants, seed=43) as w:
        done = w.fetcher("run")

        assert done.returncode == 1
        rows = {r["tenant_id"]: r for r in db_rows(database_url, tenant_runs)}
        outcome = {t: (r["status"], r["error_kind"], r["requests"], r["retries"]) for t, r in rows.items()}
        # Each tenant's control profiles (two pages) are fetched too, whatever its scores did.
        assert outcome == {
            failing.tenant_id: ("failed", "provider_unavailable", 3 + 2, 2),  # [fetch] max_attempts = 3
            refusing.tenant_id: ("failed", "provider_refused", 1 + 2, 0),
            healthy.tenant_id: ("succeeded", None, 5 + 2, 0),
        }
        assert "Warning: Microsoft/SecureScore/504/10000" in rows[failing.tenant_id]["error_message"]
        assert "Warning: Microsoft/SecureScore/403/10" in rows[refusing.tenant_id]["error_message"]
        assert "denied access to this tenant's Secure Score" in rows[refusing.tenant_id]["error_message"]
        assert db_count(database_url, secure_scores, tenant_id=failing.tenant_id) == 0
        states = status(w)
        for tenant in (failing, refusing):
            state = states[tenant.tenant_id]
            assert (state["last_success_at"], state["newest_score_date"]) == (None, None)
            assert state["last_error_message"] == rows[tenant.tenant_id]["error_message"]


def test_a_tenant_of_another_cloud_is_told_which_setting_to_change(tmp_path: Path, database_url: str) -> None:
    on_graph, on_entra, unconsented = generate_tenants(3, seed=44)
    tenants = [
        dataclasses.replace(on_graph, faults=(Fault.other_cloud(),)),
        dataclasses.replace(on_entra, faults=(Fault.token_refusal(TokenRefusal.OTHER_CLOUD),)),
        dataclasses.replace(unconsented, faults=(Fault.token_refusal(TokenRefusal.MISSING_SERVICE_PRINCIPAL),)),
    ]
    with world(tmp_path, database_url, tenants, seed=44) as w:
        done = w.fetcher("run")

        assert done.returncode == 4  # all three tenants failed
        messages = {r["tenant_id"]: r["error_message"] for r in db_rows(database_url, tenant_runs)}
        endpoints = f"(Graph {w.running.graph_base_url}, Entra ID {w.running.authority_host})"
        for tenant in (on_graph, on_entra):
            assert f'[graph] cloud = "global" {endpoints}' in messages[tenant.tenant_id]
            assert '"usgov" for GCC High' in messages[tenant.tenant_id]
            assert "Conditional Access" not in messages[tenant.tenant_id]
        consent = f"{w.running.authority_host}/{unconsented.tenant_id}/adminconsent?client_id={w.sim.client_id}"
        assert consent in messages[unconsented.tenant_id]
        assert {t: s["last_error_message"] for t, s in status(w).items()} == messages
        assert all(kind == "authentication" for _, _, kind in ledger(w))
