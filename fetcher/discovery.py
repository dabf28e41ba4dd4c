"""Tenant discovery, pure: a partner's customers from GDAP relationships or CSP contracts, merged into
the tenants file.

Sources (Microsoft Graph v1.0):
- `GET /tenantRelationships/delegatedAdminRelationships` (application permission
  `DelegatedAdminRelationship.Read.All`): objects with `displayName`, `status` and
  `customer { tenantId, displayName }`. Only `status == "active"` gives access; display names starting
  with `MLT_` are Microsoft-Led Transition placeholders, skipped as the partner tools skip them.
  https://learn.microsoft.com/graph/api/tenantrelationship-list-delegatedadminrelationships
- `GET /contracts` (`Directory.Read.All`): objects with `customerId`, `displayName`, `defaultDomainName`.
  https://learn.microsoft.com/graph/api/contract-list

Everything from Graph is untrusted: a customer whose tenant id is not a GUID is skipped and counted, and
display names are cut to one line.

The merge never deletes a row: a customer no longer found keeps its row with `source_status` set to
`gone since YYYY-MM-DD`; the `enabled` flag in the file is the user's, never overwritten. A rename upstream
is told from the display name the previous discovery found (kept in the database,
`partner_customers.display_name`), never from the name in the file: a first discovery renames nothing, and a
rename is reported by the one discovery that first sees it. A name in the file equal to that previous
display name was discovery's own, so it follows the rename; one that differs is the user's, and is kept.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from fetcher.config import GUID, AuthConfig, TenantConfig, read_tenant_rows
from fetcher.errors import OutputUnwritable
from fetcher.text import csv_cell, one_line

RELATIONSHIPS_PATH = "/tenantRelationships/delegatedAdminRelationships"
CONTRACTS_PATH = "/contracts"
RELATIONSHIPS_PERMISSION = "DelegatedAdminRelationship.Read.All"
CONTRACTS_PERMISSION = "Directory.Read.All"
RELATIONSHIPS_PAGE_SIZE = 300  # Graph's largest $top for delegatedAdminRelationships
MLT_PREFIX = "MLT_"
GONE_PREFIX = "gone since "
FILE_COLUMNS = ("tenant_id", "name", "enabled", "source_status")
NAME_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer tenant found at the partner: its lower-case GUID and display name."""

    tenant_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Found:
    """Customers found (one per tenant id, first name seen wins) and what was skipped, by reason.

    Skip reasons: `mlt` (an `MLT_` placeholder), a relationship status other than `active`
    (`terminated`, `expired`, ...), `invalid` (no GUID tenant id) and `duplicate` (a tenant already found).
    """

    customers: tuple[Customer, ...]
    skipped: Mapping[str, int]


def _customer(tenant_id: Any, name: Any) -> Customer | None:
    if not isinstance(tenant_id, str) or not GUID.match(tenant_id):
        return None
    return Customer(tenant_id.lower(), one_line(name if isinstance(name, str) else "", limit=NAME_LIMIT))


def _relationship(item: Any) -> tuple[Customer | None, str | None]:
    """(customer, None) for an active relationship, or (None, why it is skipped)."""
    if not isinstance(item, Mapping):
        return None, "invalid"
    name = item.get("displayName")
    if isinstance(name, str) and name.startswith(MLT_PREFIX):
        return None, "mlt"
    status = item.get("status")
    if status != "active":
        return None, one_line(status, limit=40) if isinstance(status, str) and status else "no status"
    who = item.get("customer")
    found = _customer(who.get("tenantId"), who.get("displayName")) if isinstance(who, Mapping) else None
    return (found, None) if found else (None, "invalid")


def _contract(item: Any) -> tuple[Customer | None, str | None]:
    if not isinstance(item, Mapping):
        return None, "invalid"
    found = _customer(item.get("customerId"), item.get("displayName"))
    return (found, None) if found else (None, "invalid")


def select_customers(relationships: Iterable[Any] = (), contracts: Iterable[Any] = ()) -> Found:
    """The customers of GDAP relationship objects and contract objects, deduplicated by tenant id."""
    customers: dict[str, Customer] = {}
    skipped: Counter[str] = Counter()
    judged = [*map(_relationship, relationships), *map(_contract, contracts)]
    for customer, reason in judged:
        if customer is None:
            skipped[reason or "invalid"] += 1
        elif customer.tenant_id in customers:
            skipped["duplicate"] += 1
        else:
            customers[customer.tenant_id] = customer
    return Found(tuple(customers.values()), dict(sorted(skipped.items())))


# -- automatic mode (`tenants_source = "partner"`)

# A list is reused while younger than this share of `[partner] refresh_hours`: a nightly cron starts a few
# seconds or minutes earlier or later each night, and with the default 24 hours each night must rediscover.
REFRESH_MARGIN = 0.9


def is_fresh(discovered_at: datetime.datetime, now: datetime.datetime, refresh_hours: float) -> bool:
    """Whether a list discovered at `discovered_at` is reused at `now` (never when `refresh_hours` is 0;
    a time in the future, from a clock that was set back, counts as stale)."""
    age = now - discovered_at
    return datetime.timedelta(0) <= age < datetime.timedelta(hours=refresh_hours * REFRESH_MARGIN)


def customer_tenants(
    customers: Sequence[Customer],
    configured: Sequence[TenantConfig],
    auth: AuthConfig,
    earlier: Mapping[str, str] | None = None,
) -> tuple[TenantConfig, ...]:
    """The tenants to fetch in automatic mode: every discovered customer, in the order found.

    A configured tenant (`[[tenants]]` or `tenants_file`) with the same id gives the customer its name
    (when not empty; one equal to the customer's name before its latest rename upstream, `earlier`, was
    discovery's and follows the rename, as `tenants discover` rewrites it: see `follows`), its
    `[tenants.auth]` and its `enabled` flag; the others use the display name found and `auth`. A configured
    tenant that discovery did not list is not fetched: its relationship ended.
    """
    overrides = {t.tenant_id: t for t in configured}
    before = earlier or {}
    tenants = []
    for customer in customers:
        own = overrides.get(customer.tenant_id)
        if own is None:
            tenants.append(TenantConfig(customer.tenant_id, customer.display_name, auth))
            continue
        followed = follows(own.name, before.get(customer.tenant_id, ""), customer)
        name = customer.display_name if followed else own.name or customer.display_name
        tenants.append(TenantConfig(own.tenant_id, name, own.auth, own.enabled))
    return tuple(tenants)


# -- the tenants file


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One row of the tenants file, as written by discovery."""

    tenant_id: str
    name: str
    enabled: bool = True
    source_status: str = ""


class Change(StrEnum):
    ADDED = "added"
    RENAMED_UPSTREAM = "renamed upstream"
    GONE = "gone"
    RETURNED = "returned"
    UNCHANGED = "unchanged"
    STILL_GONE = "still gone"  # marked gone by an earlier discovery and not found now: not a customer found


@dataclass(frozen=True, slots=True)
class TenantChange:
    """What discovery did to one row: `upstream_name` is the display name found now ("" when not found),
    `previous_name` the one the previous discovery found, for a rename upstream ("" otherwise); `followed`
    when the row's name was that previous name (discovery's, not the user's) and now is the new one."""

    change: Change
    row: TenantRow
    upstream_name: str
    previous_name: str = ""
    followed: bool = False  # the row's name was the previous display name, so it became the new one


@dataclass(frozen=True, slots=True)
class Merged:
    """The merged rows (existing order, new customers appended) and each tenant's change."""

    rows: tuple[TenantRow, ...]
    changes: tuple[TenantChange, ...] = field(default=())

    def count(self, change: Change) -> int:
        return sum(1 for c in self.changes if c.change is change)


def previous_name(previous: Mapping[str, str], customer: Customer) -> str:
    """The display name the previous discovery found for `customer` when it differs from today's, else "".

    A customer the previous discovery did not list (or listed without a name), or one without a name
    today, was not renamed: an empty name from Graph is a missing name, not a new one."""
    before = previous.get(customer.tenant_id, "")
    return before if before and customer.display_name and before != customer.display_name else ""


def renamed_upstream(previous: Mapping[str, str], found: Iterable[Customer]) -> list[tuple[Customer, str]]:
    """The customers of `found` renamed upstream since the previous discovery, with their previous name."""
    return [(customer, before) for customer in found if (before := previous_name(previous, customer))]


def follows(name: str, before: str, customer: Customer) -> bool:
    """Whether a configured `name` follows `customer`'s rename upstream: it is the display name the customer had
    before (`before`), which discovery wrote, so the user chose no other. The one rule of `tenants discover`'s
    file and of the names automatic mode resolves (`customer_tenants`); any other name is the user's and kept."""
    return bool(before) and bool(customer.display_name) and name == before and before != customer.display_name


def _merge_row(
    row: TenantRow,
    customer: Customer | None,
    today: datetime.date,
    previous: Mapping[str, str],
    earlier: Mapping[str, str],
) -> TenantChange:
    if customer is None:
        if row.source_status.startswith(GONE_PREFIX):
            return TenantChange(Change.STILL_GONE, row, "")
        gone = TenantRow(row.tenant_id, row.name, row.enabled, f"{GONE_PREFIX}{today.isoformat()}")
        return TenantChange(Change.GONE, gone, "")
    renamed = previous_name(previous, customer)  # since the previous discovery
    before = renamed or earlier.get(customer.tenant_id, "")  # else the rename a run saw first
    followed = follows(row.name, before, customer)
    kept = TenantRow(row.tenant_id, customer.display_name if followed else row.name, row.enabled, "")
    shown = before if renamed or followed else ""
    if row.source_status.startswith(GONE_PREFIX):
        return TenantChange(Change.RETURNED, kept, customer.display_name, shown, followed)
    if shown:
        return TenantChange(Change.RENAMED_UPSTREAM, kept, customer.display_name, shown, followed)
    return TenantChange(Change.UNCHANGED, kept, customer.display_name)


def merge(
    existing: Sequence[TenantRow],
    found: Sequence[Customer],
    today: datetime.date,
    previous: Mapping[str, str] = {},
    earlier: Mapping[str, str] = {},
) -> Merged:
    """`existing` updated with `found`: new customers added enabled, the user's names and flags kept,
    missing customers marked `gone since <today>` (the first day they were missed), none deleted.

    `previous`: tenant id to the display name the previous discovery found (none at the first); a customer
    found under another name is `renamed upstream` (a returned one stays `returned`, with its previous name);
    its row's name follows when it was that previous name, else (the user's) is kept (`follows`). `earlier`:
    tenant id to a customer's display name before its latest rename, which a run may have seen first (it
    recorded the new name, so `previous` has it): a row still named so follows too, and is reported renamed."""
    by_id = {c.tenant_id: c for c in found}
    rows: list[TenantRow] = []
    changes: list[TenantChange] = []
    for row in existing:
        changed = _merge_row(row, by_id.pop(row.tenant_id, None), today, previous, earlier)
        rows.append(changed.row)
        changes.append(changed)
    for customer in by_id.values():
        added = TenantRow(customer.tenant_id, customer.display_name)
        rows.append(added)
        changes.append(TenantChange(Change.ADDED, added, customer.display_name))
    return Merged(tuple(rows), tuple(changes))


def read_tenants_file(path: Path) -> list[TenantRow]:
    """The rows of an existing tenants file; a missing or empty file has none.

    Raises ConfigError naming the file and line of a malformed row (the same rules as `tenants_file`).
    """
    if not path.exists() or path.stat().st_size == 0:
        return []
    return [TenantRow(*entry) for entry in read_tenant_rows(path)]


def render_tenants_file(rows: Iterable[TenantRow]) -> str:
    """CSV text with the discovery columns; `enabled` as true/false; a name that starts like a formula gets
    a leading `'` (as `report --format csv`), which reading the file takes off again."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FILE_COLUMNS)
    for row in rows:
        writer.writerow((row.tenant_id, csv_cell(row.name), "true" if row.enabled else "false", row.source_status))
    return out.getvalue()


def refuse_unwritable(path: Path) -> None:
    """OutputUnwritable (exit 3) when `path` cannot be the tenants file written: a folder, or in a folder
    that does not exist; said before Graph is asked."""
    if path.is_dir():
        raise OutputUnwritable(f"cannot write {path}: it is a folder")
    if not path.absolute().parent.is_dir():
        raise OutputUnwritable(f"cannot write {path}: its folder does not exist")
