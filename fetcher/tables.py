"""Tables that stay readable anywhere: full values in pipes and cron mail, whole figures on a narrow terminal.

Off a terminal (`width=None`) a table takes the width its values need, one line per row, except that a
column with a `cap` (a long message) wraps at it, so a cron log is not padded to one message's width. On a terminal,
columns are dropped (least useful first, by `Column.drop`) until the rest fit; only text columns (names,
messages) may wrap, so a number or a date is never cut. Every table the CLI prints is built here.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

Cell = str | Text
UNLIMITED = 100_000  # a console width that never squeezes: the table takes its natural width

# A rich table with the default box: one border column, and per column a separator and two spaces of padding.
BORDER, PER_COLUMN = 1, 3


@dataclass(frozen=True)
class Column:
    """One column. `wrap`: text that may wrap down to `min_width` (never a number or date). `drop`: 0 = always
    shown, else dropped on a narrow terminal, the highest number first. `cap`: off a terminal, the width a text
    column wraps at (a message of 1,000 characters padded every row of a cron log to its width)."""

    header: str
    justify: Literal["left", "right"] = "left"
    wrap: bool = False
    min_width: int = 12
    drop: int = 0
    footer: str = ""
    cap: int | None = None


def plain(cell: Cell) -> str:
    """A cell's text without its style (markup in a str does not count)."""
    return cell.plain if isinstance(cell, Text) else Text.from_markup(cell).plain


def cell_width(cell: Cell) -> int:
    """The widest line of a cell."""
    return max((Text(line).cell_len for line in plain(cell).split("\n")), default=0)


def needed(column: Column, cells: Sequence[Cell]) -> int:
    """The narrowest a column can be: its widest value, or for text columns at most `min_width`."""
    widest = max([cell_width(c) for c in cells] + [len(column.header), len(column.footer)])
    return min(widest, max(column.min_width, len(column.header))) if column.wrap else widest


def fit(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int | None) -> list[int]:
    """The indexes of the columns shown at `width` (None: all of them)."""
    kept = list(range(len(columns)))
    if width is None:
        return kept
    widths = [needed(c, [row[i] for row in rows]) for i, c in enumerate(columns)]

    def total() -> int:
        return BORDER + sum(widths[i] + PER_COLUMN for i in kept)

    for index in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop):
        if total() <= width:
            break
        kept.remove(index)
    return kept


def fits(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int | None) -> bool:
    """Whether every column can be shown at `width` without cutting a value."""
    if width is None:
        return True
    widths = [needed(c, [row[i] for row in rows]) for i, c in enumerate(columns)]
    return BORDER + sum(w + PER_COLUMN for w in widths) <= width


def _stacked(upper: Cell, lower: Cell) -> Cell:
    """Two cells as one: the upper one, and under it the lower one dimmed (a name and its id)."""
    if not plain(upper):
        return lower
    if isinstance(upper, str) and isinstance(lower, str):
        return f"{upper}\n[dim]{lower}[/dim]"
    first = upper if isinstance(upper, Text) else Text.from_markup(upper)
    second = lower if isinstance(lower, Text) else Text.from_markup(lower)
    return Text.assemble(first, "\n", Text(second.plain, style="dim"))


def stack(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], pair: tuple[int, int], width: int | None
) -> tuple[Sequence[Column], Sequence[Sequence[Cell]]]:
    """The columns side by side where they all fit (and always off a terminal), else the `pair` of columns
    stacked into the first one's place, as `fetcher status` shows a tenant's name over its id."""
    if fits(columns, rows, width):
        return columns, rows
    upper, lower = pair
    merged = [c for i, c in enumerate(columns) if i != lower]
    # Wide enough for the lower values (ids) to stay whole; the upper ones (names) may wrap.
    ids = min(max((cell_width(row[lower]) for row in rows), default=0), 40)
    merged[upper] = dataclasses.replace(columns[upper], wrap=True, min_width=max(columns[upper].min_width, ids))
    stacked = [
        [_stacked(row[upper], row[lower]) if i == upper else cell for i, cell in enumerate(row) if i != lower]
        for row in rows
    ]
    kept = fit(merged, stacked, width)
    if not fits([merged[i] for i in kept], [[row[i] for i in kept] for row in stacked], width):
        merged[upper] = dataclasses.replace(merged[upper], min_width=columns[upper].min_width)  # ids fold too
    return merged, stacked


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    width: int | None,
    *,
    pair: tuple[int, int] | None = None,
    **options: Any,
) -> RenderableType:
    """A rich table of the columns that fit at `width` (None: not a terminal, all at full width); `pair`:
    two columns (a name and an id) that stack into one when not all columns fit. Off a terminal the title and
    caption are lines of their own above and below, not padded with spaces to the table's width."""
    if width is None and ("title" in options or "caption" in options):
        title, caption = options.pop("title", None), options.pop("caption", None)
        options.pop("title_justify", None), options.pop("caption_justify", None)
        table = fitted_table(columns, rows, None, pair=pair, **options)
        lines = [_line(title), table, _line(caption)]
        return Group(*(line for line in lines if line is not None))
    if pair is not None:
        columns, rows = stack(columns, rows, pair, width)
    kept = fit(columns, rows, width)
    widths = _widths([columns[i] for i in kept], [[row[i] for i in kept] for row in rows], width)
    table = Table(**options)
    for i, w in zip(kept, widths, strict=True):
        c = columns[i]
        table.add_column(c.header, footer=c.footer, justify=c.justify, no_wrap=not c.wrap, overflow="fold", width=w)
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def _line(text: str | Text | None) -> Text | None:
    """A title or caption (rich markup in a str) as a line of its own."""
    if text is None:
        return None
    return text if isinstance(text, Text) else Text.from_markup(text)


def natural(column: Column, cells: Sequence[Cell]) -> int:
    """A column's width with every value on one line."""
    return max([cell_width(c) for c in cells] + [len(column.header), len(column.footer)])


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int | None) -> list[int | None]:
    """Each column's width at `width` (None: each its natural width, for rich to measure): figures at their
    natural width, text columns from their minimum up to their natural width as the space allows, left to
    right (a name and id before a long message), so rich never squeezes a figure."""
    if width is None:
        return [_capped(c, [row[i] for row in rows]) for i, c in enumerate(columns)]
    full = [natural(c, [row[i] for row in rows]) for i, c in enumerate(columns)]
    sizes = [needed(c, [row[i] for row in rows]) if c.wrap else full[i] for i, c in enumerate(columns)]
    spare = width - BORDER - PER_COLUMN * len(columns) - sum(sizes)
    for i in (i for i, c in enumerate(columns) if c.wrap):  # left to right: names and ids before messages
        grow = max(0, min(full[i] - sizes[i], spare))
        sizes[i] += grow
        spare -= grow
    return list(sizes)


def _capped(column: Column, cells: Sequence[Cell]) -> int | None:
    """Off a terminal: a capped text column's width when its values are wider, else None (its natural width)."""
    if not (column.wrap and column.cap) or natural(column, cells) <= column.cap:
        return None
    return column.cap


def terminal_width(console: Console) -> int | None:
    """The width to fit a table to: the terminal's, or None when the output is not a terminal."""
    return console.width if console.is_terminal else None


def console_for(file: IO[str] | None = None, *, stderr: bool = False) -> Console:
    """A console that, off a terminal, never wraps or squeezes to a guessed width (COLUMNS or 80)."""
    stream = file or (sys.stderr if stderr else sys.stdout)
    probe = Console(file=stream)
    if probe.is_terminal:
        return probe
    return Console(file=file, stderr=stderr, width=UNLIMITED, soft_wrap=False)
