"""Computed figures (percentages, changes, sums) rounded by one rule, whichever database computed them.

The views compute in binary floating point, and SQLite and PostgreSQL may add a sum's terms in another
order: one says 5.02 and 31.375, the other 5.019999999999999 and 31.374999999999996. Python's `round`
and `format` round those apart (31.38 against 31.37). So every figure shown is first cut to NOISE_DIGITS
decimals, which takes off the noise (binary float carries about 16 significant digits, a score at most
5), and then rounded half up (away from zero) at the digits shown: 31.375 is 31.38 on both databases.
The report and the alerts (every channel's text, the webhook's JSON) round and format here, so that one
score never reads differently in an email and in `fetcher report`. Orderings by a figure (biggest gain
first) compare the figure as shown, then a name, so that a tie shown as one is broken the same way
everywhere.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal

FIGURE_DIGITS = 2  # CSV, JSON and the table's figures
PERCENT_DIGITS = 1  # a percentage, or a change of one, as the table and the alert texts show it
NOISE_DIGITS = 9
_CONTEXT = Context(prec=60)  # room for any finite score at NOISE_DIGITS decimals


def decimal_figure(value: float, digits: int = FIGURE_DIGITS) -> Decimal:
    """`value` (finite) rounded half up to `digits` decimals, after its float noise is taken off."""
    exact = Decimal(value).quantize(Decimal(1).scaleb(-NOISE_DIGITS), ROUND_HALF_EVEN, _CONTEXT)
    return exact.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP, _CONTEXT)


def round_figure(value: float, digits: int = FIGURE_DIGITS) -> float:
    """`decimal_figure` as a float (a NaN or an infinity as it is); -0.0 is 0.0."""
    if not math.isfinite(value):
        return value
    return float(decimal_figure(value, digits)) + 0.0


def format_figure(value: float, digits: int = FIGURE_DIGITS, *, sign: bool = False) -> str:
    """`value` as text with `digits` decimals, rounded as `decimal_figure`; a zero is never `-0.00`."""
    if not math.isfinite(value):
        return f"{value:+}" if sign else f"{value}"
    shown = decimal_figure(value, digits)
    if shown.is_zero():
        shown = abs(shown)
    return f"{shown:+f}" if sign else f"{shown:f}"


def figure_key(value: float) -> float:
    """An ordering key: the figure as shown (CSV and JSON), so that ties shown as one compare equal."""
    return round_figure(value)


def format_percent(value: float) -> str:
    """A percentage as shown: `50.1%` (PERCENT_DIGITS decimals, rounded as `decimal_figure`)."""
    return f"{format_figure(value, PERCENT_DIGITS)}%"
