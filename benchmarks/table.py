"""The one table every benchmark writes its rows into: name, measured, yardstick, ratio, target, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Row:
    """One comparison. `limit` is the largest passing ratio; None makes the row informational. A target set
    in absolute terms (milliseconds, seconds) is `value` against `value_limit` instead: the ratio is then
    shown against its yardstick but does not decide."""

    name: str
    measured: str
    yardstick: str = ""
    ratio: float | None = None
    limit: float | None = None
    target: str = ""
    skipped: str | None = None  # why there is no figure
    failed: bool = False  # no figure because the benchmark broke (its traceback is on stderr)
    value: float | None = None
    value_limit: float | None = None
    unit: str = ""  # of `value`, for its spread
    runs: int = 1  # > 1: the row is the median run of that many (`merge_runs`)
    value_range: tuple[float, float] | None = None  # fastest to slowest of the runs
    ratio_range: tuple[float, float] | None = None

    @property
    def figure(self) -> float | None:
        """What decides the row, and picks the median run: `value` when it has one, else `ratio`."""
        return self.value if self.value is not None else self.ratio

    @property
    def verdict(self) -> str:
        if self.skipped is not None:
            return "error" if self.failed else "skipped"
        if self.value is not None and self.value_limit is not None:
            return "pass" if self.value <= self.value_limit else "FAIL"
        if self.limit is None or self.ratio is None:
            return "info"
        return "pass" if self.ratio <= self.limit else "FAIL"

    def cells(self) -> list[str]:
        if self.skipped is not None:
            return [self.name, self.skipped, "", "", self.target, self.verdict]
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        if self.ratio_range is not None:
            ratio += f" ({spread(self.ratio_range, '.2f')})"
        return [self.name, self.measured + self.runs_note(), self.yardstick, ratio, self.target, self.verdict]

    def runs_note(self) -> str:
        if self.runs == 1:
            return ""
        if self.value_range is not None:
            return f" [median of {self.runs}: {spread(self.value_range, '.3g')}{' ' + self.unit if self.unit else ''}]"
        if self.ratio_range is not None:
            return f" [median run of {self.runs}, by ratio]"
        return f" [first of {self.runs} runs]"


def spread(bounds: tuple[float, float], spec: str) -> str:
    return f"{bounds[0]:{spec}}–{bounds[1]:{spec}}"


def merge_runs(runs: Sequence[Sequence[Row]]) -> list[Row]:
    """The rows of repeated runs of the same benchmarks as one row per name, in the order they first appear:
    the median run (by `figure`; the lower one of an even count, so every figure shown was measured), with
    the range of the ratios and values over the runs. Rows without a figure keep the first run's text; a
    row skipped or broken in every run stays as it is, saying in how many runs it broke."""
    named: dict[str, list[Row]] = {}
    for rows in runs:
        for row in rows:
            named.setdefault(row.name, []).append(row)
    return [_merge(rows) for rows in named.values()]


def _merge(rows: list[Row]) -> Row:
    measured = [row for row in rows if row.skipped is None]
    if not measured:
        broken = sum(row.failed for row in rows)
        note = f" ({broken} of {len(rows)} runs)" if broken and len(rows) > 1 else ""
        return replace(rows[0], skipped=f"{rows[0].skipped}{note}")
    if len(measured) == 1:
        return measured[0]
    with_figure = sorted((row for row in measured if row.figure is not None), key=lambda row: row.figure or 0.0)
    middle = with_figure[(len(with_figure) - 1) // 2] if with_figure else measured[0]
    return replace(
        middle,
        runs=len(measured),
        value_range=_bounds([row.value for row in measured]),
        ratio_range=_bounds([row.ratio for row in measured]),
    )


def _bounds(figures: Sequence[float | None]) -> tuple[float, float] | None:
    known = [figure for figure in figures if figure is not None]
    return (min(known), max(known)) if len(known) == len(figures) else None


def skipped(name: str, why: str, target: str = "", *, failed: bool = False) -> Row:
    return Row(name, "", target=target, skipped=why, failed=failed)


HEADER = ["benchmark", "measured", "yardstick", "ratio", "target", "result"]


def text_table(rows: Sequence[Row]) -> str:
    body = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(HEADER))]
    rule = "  ".join("-" * w for w in widths)
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in body]
    return "\n".join([lines[0], rule, *lines[1:]])


def markdown_table(rows: Sequence[Row]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(HEADER), line(["---"] * len(HEADER)), *(line(row.cells()) for row in rows)])
