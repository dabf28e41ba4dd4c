"""The partner side of Graph, sans I/O: GDAP relationships and CSP contracts of a partner tenant, and
their pages (`$top` up to 300, an offset `$skiptoken` in `@odata.nextLink`).

Shapes follow Graph v1.0 (`delegatedAdminRelationship`, `contract`); see tests/data/list-gdap-relationships.json.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

RELATIONSHIPS_PATH = "/v1.0/tenantRelationships/delegatedAdminRelationships"
CONTRACTS_PATH = "/v1.0/contracts"
RELATIONSHIPS_ROLE = "DelegatedAdminRelationship.Read.All"
CONTRACTS_ROLE = "Directory.Read.All"
PARTNER_ROLES = (RELATIONSHIPS_ROLE, CONTRACTS_ROLE)
MAX_TOP = 300
MLT_PREFIX = "MLT_"  # Microsoft-Led Transition placeholders
DEFAULT_TOP = 100


class BadPartnerQuery(ValueError):
    """A query Graph would answer 400 BadRequest."""


@dataclass(frozen=True)
class SimRelationship:
    """A GDAP relationship of the partner with one customer."""

    id: str
    display_name: str
    status: str  # active, terminated, expired, ...
    customer_id: str
    customer_name: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "duration": "P730D",
            "status": self.status,
            "customer": {"tenantId": self.customer_id, "displayName": self.customer_name},
        }


@dataclass(frozen=True)
class SimContract:
    """A CSP contract: the partner resells to this customer."""

    customer_id: str
    display_name: str
    default_domain_name: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.customer_id,
            "contractType": "ResellerPartner",
            "customerId": self.customer_id,
            "defaultDomainName": self.default_domain_name,
            "displayName": self.display_name,
        }


def _int_option(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(f"${name}", query.get(name))
    if value is None:
        return None
    if not value.isdigit():
        raise BadPartnerQuery(f"Invalid value '{value}' for query option '${name}'.")
    return int(value)


def page_of(
    items: Sequence[SimRelationship] | Sequence[SimContract], query: Mapping[str, str], *, origin: str, path: str
) -> bytes:
    """One page of `items` as Graph sends it; `$top` above 300 is refused as Graph refuses it."""
    top = _int_option(query, "top")
    if top is not None and not 1 <= top <= MAX_TOP:
        raise BadPartnerQuery(
            f"The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{top}'."
        )
    size = top or DEFAULT_TOP
    start = _int_option(query, "skiptoken") or 0
    chunk = items[start : start + size]
    body: dict[str, Any] = {"@odata.context": f"{origin}/v1.0/$metadata#{path.rsplit('/', 1)[-1]}"}
    if start + size < len(items):
        body["@odata.nextLink"] = f"{origin}{path}?$top={size}&$skiptoken={quote(str(start + size))}"
    body["value"] = [item.to_json() for item in chunk]
    return orjson.dumps(body)


def partner_tenant_id(seed: int) -> str:
    """The simulated partner tenant's GUID (deterministic per seed, never one of `generate_tenants`')."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"securescore-fetcher-simulator-partner-{seed}"))


def relationships_for(customers: Sequence[tuple[str, str]]) -> list[SimRelationship]:
    """An active GDAP relationship with each (tenant_id, name) customer, and the `MLT_` placeholder a
    Microsoft-Led Transition leaves beside the first (discovery skips it)."""
    rows = [
        SimRelationship(f"rel-{index:05d}", f"{name} security operations", "active", tenant_id, name)
        for index, (tenant_id, name) in enumerate(customers)
    ]
    if customers:
        tenant_id, name = customers[0]
        rows.append(SimRelationship("rel-mlt", f"{MLT_PREFIX}{name[:20]}", "active", tenant_id, name))
    return rows
