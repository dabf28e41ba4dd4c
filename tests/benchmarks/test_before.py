"""The older-code comparison's arithmetic and report (the runs themselves take minutes: run by hand)."""

from __future__ import annotations

import pytest

from benchmarks.before import Round, arguments, median_range, order, per_tenant_ms, report


def test_cpu_per_tenant_is_the_difference_over_the_difference_in_tenants() -> None:
    assert per_tenant_ms(1.5, 5.0, 250) == pytest.approx(14.0)


def test_the_fetchers_take_turns_going_first() -> None:
    assert [order(index) for index in range(3)] == [("old", "new"), ("new", "old"), ("old", "new")]


def test_the_median_of_an_even_count_is_a_measured_figure() -> None:
    assert median_range([3.0, 1.0, 4.0, 2.0]) == (2.0, 1.0, 4.0)


def test_new_over_old_is_taken_within_each_round_and_summarized_over_rounds() -> None:
    rounds = [
        Round({"old": 14.0, "new": 7.0, "floor": 10.0}, {"old": 1.6, "new": 1.5, "floor": 1.2}),
        Round({"old": 16.0, "new": 12.0, "floor": 10.0}, {"old": 1.7, "new": 1.4, "floor": 1.1}),
        Round({"old": 12.0, "new": 7.2, "floor": 8.0}, {"old": 1.5, "new": 1.45, "floor": 1.3}),
    ]
    assert [r.new_over_old for r in rounds] == [0.5, 0.75, 0.6]
    lines = report(rounds, 50, 300).splitlines()
    assert lines[0] == "CPU per tenant, nightly run (2 days x 230 controls, 50 -> 300 tenants), by round:"
    assert lines[2] == (
        "  2 (new then old): old 16.0 ms, new 12.0 ms, floor 10.0 ms; new / old 0.75; "
        "span / ideal at 32: old 1.70, new 1.40, floor 1.10"
    )
    assert "  old   14.0 (12.0–16.0) ms a tenant, ÷ floor 1.50 (1.40–1.60)" in lines
    assert "  floor 10.0 (8.0–10.0) ms a tenant" in lines
    assert "  new / old 0.60 (0.50–0.75)" in lines
    assert "  span / ideal at concurrency 32, floor 1.20 (1.10–1.30)" in lines


def test_a_report_without_spans_leaves_them_out() -> None:
    text = report([Round({"old": 14.0, "new": 7.0, "floor": 10.0})], 20, 100)
    assert "span" not in text
    assert text.splitlines()[1] == "  1 (old then new): old 14.0 ms, new 7.0 ms, floor 10.0 ms; new / old 0.50"


def test_the_counts_must_rise() -> None:
    with pytest.raises(SystemExit):
        arguments(["../pre17", "--tenants", "300", "50"])
