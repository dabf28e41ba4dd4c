"""`fetcher rebuild`: derive the normalized tables again from the raw archive.

After a normalization fix or a new column, each tenant's archived days are deleted from the
normalized tables and the archived objects replayed, in the order the fetches last saw them,
through the same normalization and upserts a fetch uses, in one transaction per tenant. Days that
were stored while the archive was off (`keep_raw = false`) have no archive and are left as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetcher.config import AuthConfig, Config, TenantConfig
from fetcher.errors import ConfigError, DatabaseError, PayloadError
from fetcher.models import FetchContext, ProviderWarning, RequestStats, ScoreDay
from fetcher.normalize import normalize_score
from fetcher.runner import Observer, Plan, Planner, Run, TenantOutcome, utcnow
from fetcher.store import ledger
from fetcher.store.archive import RawPayload, archived_days, archived_tenants, iter_raw_payloads
from fetcher.store.engine import transaction
from fetcher.store.scores import delete_days, save_score_days

log = logging.getLogger(__name__)

CHUNK = 30  # objects normalized and saved at a time, so memory does not grow with a tenant's history


def replay_context(raw: RawPayload) -> FetchContext:
    """The fetch context the object was stored with: when, by which run, with which 206 warning."""
    warnings = (ProviderWarning("", "", None, None, raw.warning),) if raw.warning else ()
    return FetchContext(raw.run_id, raw.fetched_at, warnings)


async def rebuild_tenant(engine: AsyncEngine, tenant_id: str) -> tuple[int, int]:
    """Rebuild one tenant in one transaction; returns (days rebuilt, archived objects now refused)."""
    refused = 0
    async with transaction(engine) as conn:
        days = await archived_days(conn, tenant_id)
        await delete_days(conn, tenant_id, days)
        chunk: list[ScoreDay] = []
        async for raw in iter_raw_payloads(conn, tenant_id):
            try:
                chunk.append(normalize_score(raw.payload(), replay_context(raw), expected_tenant=tenant_id))
            except PayloadError as error:
                refused += 1
                log.warning(
                    "tenant %s: an archived object of %s no longer passes validation: %s",
                    tenant_id,
                    raw.score_date,
                    error,
                )
            if len(chunk) >= CHUNK:
                await save_score_days(conn, chunk, raw.fetched_at)
                chunk = []
        if chunk:
            await save_score_days(conn, chunk, chunk[-1].score.fetched_at)
    return len(days), refused


def plan_rebuild(config: Config, wanted: Sequence[str]) -> Planner:
    """Every archived tenant (or the named ones); tenants no longer configured are rebuilt too."""

    async def planner(conn: AsyncConnection) -> list[Plan]:
        archived = await archived_tenants(conn)
        chosen = [t.strip().lower() for t in wanted] if wanted else archived
        missing = sorted(set(chosen) - set(archived))
        if missing:
            raise ConfigError(f"--tenant {missing[0]}: nothing archived for this tenant (raw_payloads is empty for it)")
        return [Plan(config.tenant(t) or TenantConfig(t, "", AuthConfig())) for t in chosen]

    return planner


class RebuildRun(Run):
    """`fetcher rebuild` as a run: the lock, the ledger, progress; tenants one after another."""

    def __init__(
        self, config: Config, planner: Planner, *, observer: Observer | None = None, engine: AsyncEngine | None = None
    ) -> None:
        super().__init__(config, "rebuild", planner, observer=observer, engine=engine)

    async def _ingest(self, engine: AsyncEngine, plans: list[Plan]) -> None:
        self.report.counters.tenants_total = len(plans)
        self.observer.started(self.report)
        for plan in plans:
            if self.stopping:
                break
            outcome = TenantOutcome(plan.tenant, ledger.SUCCEEDED, utcnow(), utcnow(), RequestStats())
            try:
                outcome.scores_upserted, outcome.rejected = await rebuild_tenant(engine, plan.tenant.tenant_id)
            except (DBAPIError, DatabaseError) as error:
                outcome.status, outcome.error_kind = ledger.FAILED, "database"
                outcome.error_message = f"tenant {plan.tenant.label}: rebuild rolled back: {error}"
            if outcome.rejected and not outcome.failed:
                outcome.status = ledger.PARTIAL
            outcome.finished_at = utcnow()
            async with transaction(engine) as conn:
                await ledger.record_tenant_run(conn, outcome.ledger_row(self.report.run_id))
            self.record(outcome)
