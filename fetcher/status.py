"""What `fetcher status` reports: a row per tenant (configured, stored, or both) with its `fetcher.health`
marks, read in one read-only transaction. Names and `disabled` / `not configured` come from the
configuration (tenants file included) where it holds the tenant, as in `fetcher report`. `fetcher.output`
shows it; the CLI only maps it to an exit code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.config import Config, TenantConfig
from fetcher.health import LastError, Mark, discovery_problem, out_of_date, tenant_marks
from fetcher.plan import covers
from fetcher.store import ledger
from fetcher.store.engine import reading
from fetcher.store.ledger import TenantState
from fetcher.store.partner import DiscoveryState, discovery_state


@dataclass(frozen=True)
class TenantStatus:
    """One tenant: its stored days and runs (`state`), its marks, and whether it is to be fetched."""

    state: TenantState  # its name: the configuration's, else the stored one
    marks: tuple[Mark, ...]
    enabled: bool  # counted for the exit code: enabled, or asked for with --tenant
    short: bool  # its stored days reach back less far than [fetch] history_days

    @property
    def out_of_date(self) -> bool:
        return out_of_date(self.marks)


@dataclass(frozen=True)
class StatusReport:
    now: datetime
    max_age: timedelta
    history_days: int | None
    rows: tuple[TenantStatus, ...]
    discovery: DiscoveryState | None = None  # tenants_source = "partner": the latest discovery attempt
    undiscovered: str | None = None  # tenants_source = "partner" and no discovery tried yet: the partner's id

    @property
    def discovery_problem(self) -> str | None:
        """One line when the latest partner discovery failed (`fetcher status` exits 4 with no list, else 1), or
        when none was tried yet (exit 1: no tenant was ever fetched, as for configured tenants never fetched)."""
        if self.undiscovered is not None:
            return never_discovered(self.undiscovered)
        return discovery_line(self.discovery, self.now)

    @property
    def discovery_problem_kind(self) -> str | None:
        """The `error_kind` of `discovery_problem`'s record: as `run` stops on it (`no_customer_list` when no
        discovery ever left a list, else `discovery_failed`), or `never_discovered` when none was tried yet."""
        if self.discovery_problem is None:
            return None
        if self.undiscovered is not None:
            return "never_discovered"
        return "no_customer_list" if self.exit_code == 4 else "discovery_failed"

    @property
    def exit_code(self) -> int:
        """4 when discovery never left a customer list (as `run`), 1 when it failed or a tenant is out of date."""
        if self.discovery_problem is not None and self.discovery is not None and self.discovery.discovered_at is None:
            return 4
        return 1 if self.out_of_date or self.discovery_problem is not None else 0

    @property
    def out_of_date(self) -> list[TenantStatus]:
        """The enabled (or asked-for) tenants with no data newer than `max_age`: `fetcher status` exits 1."""
        return [r for r in self.rows if r.enabled and r.out_of_date]

    @property
    def without_data(self) -> list[TenantStatus]:
        """Those of `out_of_date` with no day stored at all."""
        return [r for r in self.out_of_date if Mark.NO_DATA in r.marks]

    @property
    def stale(self) -> list[TenantStatus]:
        """Those of `out_of_date` whose newest day is older than `max_age`."""
        return [r for r in self.out_of_date if Mark.NO_DATA not in r.marks]

    @property
    def short(self) -> list[TenantStatus]:
        return [r for r in self.rows if r.enabled and r.short]


def is_short(state: TenantState, today: date, history_days: int | None) -> bool:
    """Whether a tenant's stored days reach back less far than its configured window (`history_days`):
    a backfill with a shorter window, or one cut short, left older days that Graph will soon drop."""
    if history_days is None or state.oldest_score_date is None:
        return False
    return not covers(state.oldest_score_date, history_days, today)


def build_status(
    states: Sequence[TenantState],
    config: Config,
    chosen: Sequence[TenantConfig] | None,
    *,
    now: datetime,
    max_age: timedelta,
    discovery: DiscoveryState | None = None,
    undiscovered: str | None = None,
) -> StatusReport:
    """Pure: the stored states plus configured tenants never seen, limited to `chosen` when given (None: all,
    the enabled ones counting for the exit code)."""
    by_id = {t.tenant_id: t for t in config.tenants}
    known = {s.tenant_id for s in states}
    unseen = [TenantState(t.tenant_id, t.name, None, None, None, None, None, 0) for t in config.tenants]
    everyone = [*states, *(s for s in unseen if s.tenant_id not in known)]
    wanted = {t.tenant_id for t in chosen} if chosen is not None else None
    counted = wanted if wanted is not None else {t.tenant_id for t in config.enabled_tenants}
    history = config.fetch.history_days
    rows = tuple(
        TenantStatus(
            _named(s, configured),
            tenant_marks(
                s.newest_score_date,
                _error(s),
                now,
                max_age,
                configured=configured is not None,
                enabled=configured is not None and configured.enabled,
            ),
            s.tenant_id in counted,
            is_short(s, now.date(), history),
        )
        for s in everyone
        if wanted is None or s.tenant_id in wanted
        for configured in (by_id.get(s.tenant_id),)
    )
    return StatusReport(now, max_age, history, rows, discovery, undiscovered)


def never_discovered(partner_tenant_id: str) -> str:
    return (
        f"no tenant discovery has been tried at partner tenant {partner_tenant_id} yet, so no tenant was "
        "ever fetched: `fetcher run` (or `backfill`) discovers the customers and fetches them"
    )


def _named(state: TenantState, configured: TenantConfig | None) -> TenantState:
    """The state under the configuration's name for the tenant, where it gives one (as `report` names it)."""
    name = (configured.name if configured else "") or state.name
    return state if name == state.name else replace(state, name=name)


def _error(state: TenantState) -> LastError | None:
    if state.last_error_kind is None and state.last_error_message is None:
        return None
    return LastError(state.last_error_at, state.last_error_kind, state.last_error_message)


async def read_status(
    config: Config, chosen: Sequence[TenantConfig] | None, *, now: datetime, max_age: timedelta
) -> StatusReport:
    """`fetcher status`: read the ledger (read-only) and mark each tenant. Raises `DatabaseError` and its kin."""
    async with reading(config.database) as conn:
        states = await ledger.tenant_states(conn)
        discovery = await partner_discovery(conn, config)
    partner = config.partner if config.tenants_source == "partner" else None
    undiscovered = partner.tenant_id if partner is not None and discovery is None else None
    return build_status(
        states, config, chosen, now=now, max_age=max_age, discovery=discovery, undiscovered=undiscovered
    )


def discovery_line(state: DiscoveryState | None, now: datetime) -> str | None:
    """The line `status` (an error) and `report` (a warning) give when the latest partner discovery failed."""
    if state is None:
        return None
    message = f"{state.error_kind}: {state.error_message}" if state.error_message else state.error_kind
    return discovery_problem(
        state.partner_tenant_id, state.attempted_at, state.discovered_at, state.customers, message, now
    )


async def partner_discovery(conn: AsyncConnection, config: Config) -> DiscoveryState | None:
    """The latest discovery attempt at `[partner]` when the tenants are discovered there, else None."""
    if config.tenants_source != "partner" or config.partner is None:
        return None
    return await discovery_state(conn, config.partner.tenant_id)
