"""The storage benchmark's arithmetic: table groups for either layout, growth, and the daily plan."""

from __future__ import annotations

from datetime import date

from benchmarks.storage import daily_plan, group_sizes, growth, split

OLD_LAYOUT = {"control_scores": 2000, "raw_payloads": 500, "secure_scores": 100, "fetch_runs": 10}
COMPACT_LAYOUT = {
    "control_score_rows": 900,
    "tenant_keys": 10,
    "control_keys": 40,
    "status_texts": 50,
    "raw_payloads": 300,
    "archive_dictionaries": 100,
    "secure_scores": 80,
    "comparative_scores": 20,
    "controls": 30,
    "alembic_version": 5,
}


def test_the_old_layout_groups_by_table() -> None:
    assert group_sizes(OLD_LAYOUT) == {"control scores": 2000, "archive": 500, "scores": 100, "other": 10}


def test_the_compact_layout_counts_its_key_tables_and_dictionary_with_their_group() -> None:
    assert group_sizes(COMPACT_LAYOUT) == {"control scores": 1000, "archive": 400, "scores": 100, "other": 35}


def test_a_group_whose_tables_do_not_exist_counts_nothing() -> None:
    assert group_sizes({"secure_scores": 7}) == {"control scores": 0, "archive": 0, "scores": 7, "other": 0}


def test_growth_is_per_table_and_counts_a_new_table_whole() -> None:
    assert growth({"a": 10, "b": 5}, {"a": 30, "b": 5, "c": 8}) == {"a": 20, "b": 0, "c": 8}


def test_split_shows_kilobytes_per_score_day_and_leaves_out_empty_groups() -> None:
    tables = {"control_scores": 20 * 1024 * 10, "secure_scores": 512 * 10, "fetch_runs": 10}
    assert split(tables, 10) == "control scores 20.0, scores 0.5"


def test_the_daily_plan_ends_today_and_fetches_yesterday_again_after_the_first_day() -> None:
    assert daily_plan(date(2026, 11, 30), 3) == [
        (date(2026, 11, 28), 1),
        (date(2026, 11, 29), 2),
        (date(2026, 11, 30), 2),
    ]
