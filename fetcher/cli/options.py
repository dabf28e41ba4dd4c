"""Options several commands share: --tenant, --shard, --no-alerts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


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
