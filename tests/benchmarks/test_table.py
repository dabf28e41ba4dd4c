"""Repeated runs merged into one row: the median run, the range of the runs, and what broke."""

from __future__ import annotations

from benchmarks.table import Row, merge_runs, skipped, text_table


def _ratio(name: str, ratio: float, limit: float | None = 1.3) -> Row:
    return Row(name, f"{ratio * 10:.1f} s", "ideal 10 s", ratio, limit, "<= 1.3" if limit else "")


def test_one_run_is_shown_as_it_was() -> None:
    row = _ratio("span", 1.2)
    assert merge_runs([[row]]) == [row]
    assert row.cells() == ["span", "12.0 s", "ideal 10 s", "1.20", "<= 1.3", "pass"]


def test_three_runs_show_the_median_run_with_the_range_of_ratios() -> None:
    (merged,) = merge_runs([[_ratio("span", 1.4)], [_ratio("span", 1.1)], [_ratio("span", 1.25)]])
    assert merged.cells() == [
        "span",
        "12.5 s [median run of 3, by ratio]",
        "ideal 10 s",
        "1.25 (1.10–1.40)",
        "<= 1.3",
        "pass",
    ]


def test_an_even_count_shows_the_lower_middle_run_a_figure_that_was_measured() -> None:
    runs = [[_ratio("span", ratio)] for ratio in (1.5, 1.1, 1.4, 1.2)]
    (merged,) = merge_runs(runs)
    assert merged.ratio == 1.2
    assert merged.verdict == "pass"


def test_a_value_target_takes_the_median_value_and_shows_its_range_with_its_unit() -> None:
    def cpu(ms: float, floor_ms: float) -> Row:
        return Row("cpu per tenant", f"{ms:.1f} ms", "floor", ms / floor_ms, value=ms, value_limit=5.0, unit="ms")

    (merged,) = merge_runs([[cpu(12.0, 6.0)], [cpu(9.0, 5.0)], [cpu(10.5, 7.0)]])
    assert merged.value == 10.5
    assert merged.cells()[1] == "10.5 ms [median of 3: 9–12 ms]"
    assert merged.cells()[3] == "1.50 (1.50–2.00)"
    assert merged.verdict == "FAIL"


def test_rows_keep_the_order_they_first_appear_in() -> None:
    runs = [[_ratio("a", 1.0), _ratio("b", 1.0)], [_ratio("b", 1.1), _ratio("a", 1.2), _ratio("c", 1.0)]]
    assert [row.name for row in merge_runs(runs)] == ["a", "b", "c"]


def test_a_row_without_a_figure_keeps_the_first_runs_text() -> None:
    (merged,) = merge_runs([[Row("rss", "120 MB")], [Row("rss", "125 MB")]])
    assert merged.cells()[1] == "120 MB [first of 2 runs]"
    assert merged.verdict == "info"


def test_a_benchmark_broken_in_some_runs_says_in_how_many() -> None:
    broken = skipped("cpu", "BenchmarkError: boom", failed=True)
    merged = merge_runs([[broken], [_ratio("cpu sqlite", 1.2)], [broken]])
    assert [row.cells()[1] for row in merged] == ["BenchmarkError: boom (2 of 2 runs)", "12.0 s"]
    assert merged[0].verdict == "error"


def test_the_text_table_lines_up_merged_rows() -> None:
    merged = merge_runs([[_ratio("span", 1.4)], [_ratio("span", 1.1)], [_ratio("span", 1.25)]])
    header, rule, line = text_table(merged).splitlines()
    assert len(rule.split("  ")) == 6
    assert line.index("1.25 (1.10–1.40)") == header.index("ratio")
