"""The one table every benchmark writes its rows into: name, measured, yardstick, ratio, target, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
        return [self.name, self.measured, self.yardstick, ratio, self.target, self.verdict]


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
