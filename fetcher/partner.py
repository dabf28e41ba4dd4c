"""Discovery's I/O: the partner tenant's GDAP relationships and contracts read through the run's
`GraphClient` (its paging guards, retries and limits), then `fetcher.discovery` decides; and automatic
mode (`tenants_source = "partner"`): the customer list `run` and `backfill` fetch, reused from the
database for `[partner] refresh_hours`, and the last known list when discovery fails.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import Config, PartnerConfig, TenantConfig
from fetcher.discovery import (
    CONTRACTS_PATH,
    CONTRACTS_PERMISSION,
    RELATIONSHIPS_PAGE_SIZE,
    RELATIONSHIPS_PATH,
    RELATIONSHIPS_PERMISSION,
    Customer,
    Found,
    customer_tenants,
    follows,
    is_fresh,
    renamed_upstream,
    select_customers,
)
from fetcher.errors import (
    ConfigError,
    DatabaseError,
    DiscoveryFailed,
    FetcherError,
    GraphError,
    Interrupted,
    NoCustomerList,
    PermissionDenied,
)
from fetcher.models import RequestStats, TenantRef
from fetcher.store.engine import create_engine, ensure_schema, reading, sqlite_missing, transaction
from fetcher.store.partner import KnownCustomers, known_customers, save_discovery, save_discovery_failure
from fetcher.text import one_line

if TYPE_CHECKING:  # HTTP (aiohttp, azure-identity) loads only when Graph is asked: `fetcher status` reads the database
    from fetcher.http import GraphClient

log = logging.getLogger(__name__)

# Paged to the end: $top asks for Graph's largest page, the pager follows @odata.nextLink (refusing a
# foreign or repeated link) until Graph sends none.
RELATIONSHIPS_QUERY = f"{RELATIONSHIPS_PATH}?$top={RELATIONSHIPS_PAGE_SIZE}"
NAME_SHOWN = 80  # a display name in a log line: Graph's may be up to 256 characters


def partner_ref(partner: PartnerConfig) -> TenantRef:
    return TenantRef(partner.tenant_id, "partner")


@asynccontextmanager
async def open_partner_graph(config: Config, partner: PartnerConfig) -> AsyncIterator[GraphClient]:
    """The run's Graph client, able to get a token for the partner tenant as well as the customers'."""
    from fetcher.http import open_graph

    own = TenantConfig(partner.tenant_id, "partner", partner.auth, enabled=False)
    async with open_graph(dataclasses.replace(config, tenants=(*config.tenants, own))) as client:
        yield client


async def _collect(
    client: GraphClient, tenant: TenantRef, path: str, permission: str, stats: RequestStats
) -> list[Any]:
    """Every object of a collection; a 403 names the partner-side permission it needs."""
    objects: list[Any] = []
    try:
        async for page in client.list_pages(tenant, path, None, stats):
            objects.extend(page.objects)
    except PermissionDenied as denied:
        endpoint = path.partition("?")[0]
        raise PermissionDenied(
            f"partner tenant {tenant.tenant_id}: Graph denied {endpoint} (403): the app lacks the application "
            f"permission {permission} with admin consent in the partner tenant; add it under API permissions "
            f"and grant admin consent in {tenant.tenant_id}",
            tenant_id=tenant.tenant_id,
            status=403,
            url=denied.url,
        ) from None
    return objects


async def discover(client: GraphClient, partner: PartnerConfig, stats: RequestStats | None = None) -> Found:
    """The partner's customers from `[partner] source`; raises the GraphError of a refused request."""
    stats = stats or RequestStats()
    tenant = partner_ref(partner)
    relationships: list[Any] = []
    contracts: list[Any] = []
    if partner.source in ("gdap", "both"):
        relationships = await _collect(client, tenant, RELATIONSHIPS_QUERY, RELATIONSHIPS_PERMISSION, stats)
    if partner.source in ("contracts", "both"):
        contracts = await _collect(client, tenant, CONTRACTS_PATH, CONTRACTS_PERMISSION, stats)
    return select_customers(relationships, contracts)


def refuse_empty(found: Found, partner: PartnerConfig) -> Found:
    """`found`, unless it lists no customer: raises DiscoveryFailed (exit 4), as an empty answer is no list
    to replace the last known one with (it would mark every customer gone) but a source that lists nobody.
    Its message is the cause alone: the line that shows it says whose discovery failed and which list, if any,
    is used instead."""
    if found.customers:
        return found
    raise DiscoveryFailed(_no_customer(found, partner))


def _no_customer(found: Found, partner: PartnerConfig) -> str:
    skipped = ", ".join(f"{count} {why}" for why, count in found.skipped.items())
    return (
        f"found no active customer in [partner] source = {partner.source!r}"
        f"{f' (skipped: {skipped})' if skipped else ''}: check that source (gdap, contracts, both) and the "
        "app's permission to read it (a partner with no customer yet has nothing to fetch)"
    )


async def discover_customers(config: Config, partner: PartnerConfig, discover_fn: DiscoverFn | None = None) -> Found:
    """The customers found now (`tenants discover`, and the checks before a database exists): a refusal or
    failure of Entra ID or Graph, or an answer without customers, raises DiscoveryFailed (exit 4, as `run`)."""
    try:
        found = await (discover_fn or discover_now)(config, partner)
    except GraphError as error:
        raise DiscoveryFailed(str(error)) from None
    if not found.customers:
        raise DiscoveryFailed(f"tenant discovery at partner tenant {partner.tenant_id} {_no_customer(found, partner)}")
    return found


# -- automatic mode: `run` and `backfill` with `tenants_source = "partner"`


@dataclass(frozen=True, slots=True)
class CustomerList:
    """The customers a run fetches and where the list came from: `discovered` now, `cached` (a discovery
    younger than `[partner] refresh_hours`) or `fallback` (discovery failed with `error`: the last known)."""

    customers: tuple[Customer, ...]
    discovered_at: datetime
    origin: str
    error: str | None = None
    earlier: Mapping[str, str] = field(default_factory=dict)  # a customer's name before its latest rename


DiscoverFn = Callable[[Config, PartnerConfig], Awaitable[Found]]


async def discover_now(config: Config, partner: PartnerConfig) -> Found:
    async with open_partner_graph(config, partner) as client:
        return await discover(client, partner)


async def customer_list(
    config: Config, engine: AsyncEngine, now: datetime, discover_fn: DiscoverFn = discover_now
) -> CustomerList:
    """The partner's customers for a run at `now`: the cached list while fresh, else discovered (and
    cached); when discovery fails, the last known list with the error (logged as a warning).

    Raises NoCustomerList when discovery fails and no discovery ever succeeded; DatabaseError as usual.
    """
    partner = config.partner
    assert partner is not None, "tenants_source = 'partner' requires [partner] (checked at load)"
    async with transaction(engine, write=False) as conn:
        known = await known_customers(conn, partner.tenant_id)
    if known and known.source == partner.source and is_fresh(known.discovered_at, now, partner.refresh_hours):
        log.info("using the %d customer(s) discovered at %s", len(known.customers), _when(known.discovered_at))
        return CustomerList(known.customers, known.discovered_at, "cached", earlier=known.earlier)
    try:
        found = refuse_empty(await discover_fn(config, partner), partner)
    except (DatabaseError, Interrupted):
        raise
    except FetcherError as error:
        return await _fall_back(engine, partner, known, error, now)
    renamed = renamed_upstream(previous_names(known, partner.source), found.customers)
    before = {customer.tenant_id: name for customer, name in renamed}
    async with transaction(engine) as conn:
        await save_discovery(conn, partner.tenant_id, partner.source, found.customers, now, before)
    log.info("discovered %d customer(s) at partner tenant %s", len(found.customers), partner.tenant_id)
    # A warning, so that cron's -q and JSON logs keep it: for a name of your own it is the only report of the
    # rename. The name it replaced is kept: a configured name equal to it follows (`follows`), here and at the
    # next `tenants discover`, which rewrites the file.
    configured = {t.tenant_id: t.name for t in config.tenants}
    for customer, name in renamed:
        log.warning(
            "customer %s renamed upstream: %s -> %s (%s)",
            customer.tenant_id,
            _short(name),
            _short(customer.display_name),
            _renamed_name(configured.get(customer.tenant_id, ""), name, customer),
        )
    return CustomerList(found.customers, now, "discovered", earlier={**(known.earlier if known else {}), **before})


def previous_names(known: KnownCustomers | None, source: str) -> dict[str, str]:
    """Tenant id to display name as the last successful discovery found them, when it asked the same
    `source`: a contract and a GDAP relationship may name one customer differently, which is no rename."""
    if known is None or known.source != source:
        return {}
    return {customer.tenant_id: customer.display_name for customer in known.customers}


def _renamed_name(configured: str, before: str, customer: Customer) -> str:
    """What a rename upstream did to the name the customer is fetched under (`customer_tenants`' rule)."""
    if not configured:
        return "no configured name: fetched under the new one"
    if follows(configured, before, customer):
        return "the configured name was the old one and follows"
    return f"the configured name {_short(configured)} is kept"


def _short(name: str) -> str:
    return repr(one_line(name, limit=NAME_SHOWN))


async def _fall_back(
    engine: AsyncEngine, partner: PartnerConfig, known: KnownCustomers | None, error: FetcherError, now: datetime
) -> CustomerList:
    reason = one_line(str(error), limit=500)
    async with transaction(engine) as conn:
        await save_discovery_failure(conn, partner.tenant_id, partner.source, now, error.kind, reason)
    if known is None:
        raise NoCustomerList(
            f"tenant discovery at partner tenant {partner.tenant_id} failed and no earlier discovery left a "
            f"customer list to fall back to: {reason}"
        )
    log.warning(
        "tenant discovery at partner tenant %s failed: %s; fetching the last known list instead: %d customer(s) "
        "discovered at %s",
        partner.tenant_id,
        reason,
        len(known.customers),
        _when(known.discovered_at),
    )
    return CustomerList(known.customers, known.discovered_at, "fallback", reason, known.earlier)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def with_discovered_tenants(
    config: Config, now: datetime, discover_fn: DiscoverFn = discover_now
) -> tuple[Config, CustomerList | None]:
    """`config` with its tenants replaced by the partner's customers when `tenants_source = "partner"`
    (see `fetcher.discovery.customer_tenants`); unchanged otherwise.

    Raises NoCustomerList (exit 4) as `customer_list` does, and ConfigError when the list is empty.
    """
    if config.tenants_source != "partner" or config.partner is None:
        return config, None
    engine = create_engine(config.database)
    try:
        await ensure_schema(engine)
        listing = await customer_list(config, engine, now, discover_fn)
    finally:
        await engine.dispose()
    if not listing.customers:
        where = f"tenant discovery at partner tenant {config.partner.tenant_id} ({config.partner.source})"
        if listing.origin == "fallback":
            raise ConfigError(f"no tenants to fetch: {where} failed ({listing.error}) and the last known list is empty")
        raise ConfigError(f"no tenants to fetch: {where} lists no active customer")
    tenants = customer_tenants(listing.customers, config.tenants, config.partner.auth, listing.earlier)
    return dataclasses.replace(config, tenants=tenants), listing


async def with_customers_now(config: Config, discover_fn: DiscoverFn = discover_now) -> Config:
    """`config` with its tenants replaced by the partner's customers discovered now and kept nowhere (no
    database is asked); unchanged unless `tenants_source = "partner"`. Raises DiscoveryFailed (exit 4)."""
    if config.tenants_source != "partner" or config.partner is None:
        return config
    found = await discover_customers(config, config.partner, discover_fn)
    return dataclasses.replace(config, tenants=customer_tenants(found.customers, config.tenants, config.partner.auth))


async def with_checked_tenants(config: Config, now: datetime, discover_fn: DiscoverFn = discover_now) -> Config:
    """For `tenants check`: the tenants `run` would fetch (`with_discovered_tenants`), but where the SQLite file
    does not exist yet the customers are discovered now and kept nowhere: a check creates no database (only
    `migrate`, `run`, `backfill` and `get` do)."""
    if config.tenants_source == "partner" and sqlite_missing(config.database):
        return await with_customers_now(config, discover_fn)
    checked, _ = await with_discovered_tenants(config, now, discover_fn)
    return checked


async def with_known_tenants(config: Config) -> Config:
    """For the commands that only read (`status`, `report`): `config` with its tenants replaced by the
    partner's last known customers when `tenants_source = "partner"`; no request to Graph, nothing written.
    Unchanged in the other mode, and while no discovery has succeeded."""
    if config.tenants_source != "partner" or config.partner is None:
        return config
    async with reading(config.database) as conn:
        known = await known_customers(conn, config.partner.tenant_id)
    if known is None:
        return config
    tenants = customer_tenants(known.customers, config.tenants, config.partner.auth, known.earlier)
    return dataclasses.replace(config, tenants=tenants)


# -- `fetcher tenants discover`: the names the previous discovery found, and this one recorded


async def last_discovery(config: Config, partner: PartnerConfig) -> KnownCustomers | None:
    """The partner's last successful discovery (by `tenants discover` or a run), read only: None when there
    is none, or no SQLite file yet (`--dry-run` creates none). Raises SchemaOutOfDate and the like as every
    command does."""
    if sqlite_missing(config.database):
        return None
    async with reading(config.database) as conn:
        return await known_customers(conn, partner.tenant_id)


async def record_discovery(
    config: Config, partner: PartnerConfig, found: Found, now: datetime, previous: Mapping[str, str]
) -> None:
    """Keep `found` as the partner's latest discovery (the cache `run` reads in automatic mode too), so that
    the next discovery tells a rename upstream from the display names found now; a customer renamed since
    `previous` (`previous_names`) keeps the name it had."""
    renamed = {customer.tenant_id: before for customer, before in renamed_upstream(previous, found.customers)}
    engine = create_engine(config.database)
    try:
        await ensure_schema(engine)
        async with transaction(engine) as conn:
            await save_discovery(conn, partner.tenant_id, partner.source, found.customers, now, renamed)
    finally:
        await engine.dispose()
