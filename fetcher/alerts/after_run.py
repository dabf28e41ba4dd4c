"""The [alerts] rules evaluated after a run or backfill: once, not by each shard, never changing its exit code."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fetcher.errors import FetcherError

if TYPE_CHECKING:
    from fetcher.config import Config
    from fetcher.models import Shard
    from fetcher.outcome import RunReport

log = logging.getLogger("fetcher.alerts")


async def evaluate_after_run(config: Config, report: RunReport, shard: Shard | None = None) -> None:
    """The [alerts] rules after a run or backfill, unless it is a shard: the rules see every tenant, so they
    are evaluated once after all shards, by `fetcher alerts`. Whatever happens here, the exit code stands."""
    if not config.alerts.rules or report.stopped_by is not None:
        return
    if shard is not None:
        log.info("shard %s: alerts not evaluated by a shard; run `fetcher alerts` once every shard is done", shard)
        return
    from fetcher.alerts.engine import evaluate_alerts

    try:
        evaluation = await evaluate_alerts(config, config.alerts, now=datetime.now(UTC))
    except FetcherError as error:
        log.warning("alerts not evaluated: %s", error)
        return
    except Exception as error:  # the run's data is stored: a fault in alerting must not change its outcome
        log.error("alerts not evaluated: %s: %s", type(error).__name__, error)
        return
    change = evaluation.change
    log.info(
        "alerts: %d opened, %d resolved, %d message(s) sent, %d failed (kept for the next evaluation)",
        len(change.opened),
        len(change.resolved),
        len(evaluation.sent),
        len(evaluation.failed),
    )
