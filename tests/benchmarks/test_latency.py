"""The span's arithmetic and rows: the ideal from counted requests, the floor's row beside the fetcher's, and
a floor run refused when its counts disagree with the simulator's."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness import BenchmarkError, Measured, Postgres, RunLedger
from benchmarks.latency import Outcome, check_floor, effective_concurrency, outcome, row
from benchmarks.session import FULL, Session


def _run(wall: float = 3.0, cpu: float = 2.5) -> Measured:
    return Measured(("floor",), wall, cpu, 0, 0, "", "")


def _session(tmp_path: Path) -> Session:
    return Session(FULL, False, tmp_path, Postgres(""), "not used")


def test_the_ideal_spreads_every_requests_latency_over_the_concurrency() -> None:
    found = outcome(2.47, _run(), {"token": 300, "list": 300, "other": 4}, 32, 300, 0.1)
    assert found == Outcome(2.47, 3.0, 2.5, 300, 300, 600 * 0.1 / 32, 32.0)
    assert found.ideal == pytest.approx(1.875)


def test_few_tenants_bound_the_concurrency_by_their_own_limit() -> None:
    assert effective_concurrency(64, 10, 10, 0.1) == 40.0  # 10 tenants x 4 in flight each


def test_many_list_requests_a_tenant_bound_it_by_the_rate() -> None:
    # 10 tenants x 150 a minute / 60 x 0.1 s = 2.5 in flight, once a tenant makes more than its burst of 5
    assert effective_concurrency(16, 10, 60, 0.1) == pytest.approx(2.5)


def test_the_floors_row_shows_its_own_span_against_the_same_ideal(tmp_path: Path) -> None:
    found = outcome(2.25, _run(), {"token": 300, "list": 300}, 32, 300, 0.1)
    cells = row(_session(tmp_path), "overhead: span, concurrency 32, floor", found, limit=None).cells()
    assert cells == [
        "overhead: span, concurrency 32, floor",
        "2.25 s (floor's own clock; process 3.00 s, 2.5 CPU s)",
        "ideal 1.88 s = (300 token + 300 list) x 100 ms / 32",
        "1.20",
        "",
        "info",
    ]


def test_the_fetchers_row_says_when_its_tenants_ran(tmp_path: Path) -> None:
    ledger = RunLedger("succeeded", 2.8, 300, 0, 3000, 300, 0, 0, 3000, 30000, lead_in=0.12, lead_out=0.3)
    found = Outcome(2.8, 3.4, 2.9, 300, 300, 1.875, 32.0, ledger)
    cells = row(_session(tmp_path), "span", found, limit=1.3, target=1.3).cells()
    assert cells[1] == "2.80 s (first tenant at 0.12 s, last 0.30 s before the end; process 3.40 s, 2.9 CPU s)"
    assert cells[3:] == ["1.49", "<= 1.3", "FAIL"]


def test_a_floor_run_that_stored_less_is_refused() -> None:
    report = {"score_days": 2990, "requests": {"token": 300, "list": 300}}
    with pytest.raises(BenchmarkError, match="stored 2990 of 3000"):
        check_floor(report, {"token": 300, "list": 300}, 3000, "floor")


def test_a_floor_run_whose_requests_the_simulator_counted_otherwise_is_refused() -> None:
    report = {"score_days": 3000, "requests": {"token": 300, "list": 300}}
    check_floor(report, {"token": 300, "list": 300}, 3000, "floor")
    with pytest.raises(BenchmarkError, match="300 list requests, the simulator answered 301"):
        check_floor(report, {"token": 300, "list": 301}, 3000, "floor")
