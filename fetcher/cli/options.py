"""Options several commands share: --tenant, --shard, --no-alerts; the hours of --max-age (`Hours`), a file to
write (`OutputFile`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


class Hours(click.FloatRange):
    """Hours above 0 and up to a million (about 114 years: a finite timedelta); NaN refused too, which a
    range lets through (it compares false with both bounds). Refused: click's usage error, exit 2."""

    def __init__(self) -> None:
        super().__init__(min=0, max=1_000_000, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        hours = float(super().convert(value, param, ctx))
        if math.isnan(hours):
            self.fail(f"{value!r} is not a number of hours", param, ctx)
        return hours


class OutputFile(click.Path):
    """A file a command writes (`--output`, `--html`): an empty name refused, exit 2 (it was the current folder,
    '.', and `cannot write .: Device or resource busy`)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("an empty file name", param, ctx)
        return super().convert(value, param, ctx)


def tenant_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--tenant", "tenants", multiple=True, metavar="ID", help="Only this tenant (repeat for several)."
    )(fn)


def alerts_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-alerts", is_flag=True, help="Do not evaluate the [alerts] rules after the run.")(fn)


def shard_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--shard",
        metavar="K/N",
        help="Only shard K of N: the tenants whose hashed id falls in slice K (also $FETCHER_SHARD=K/N, or "
        "$JOB_COMPLETION_INDEX with [fetch] shards = N). Shards run side by side on PostgreSQL; alerts are left "
        "to `fetcher alerts`.",
    )(fn)
