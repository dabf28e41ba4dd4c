"""Typed records passed between the modules: what Graph answered, and the rows it becomes.

Rows are named tuples that mirror the tables in `fetcher.store.schema` column for column (cheap to
make by the hundred thousand), so no module but the store knows SQL and no module but `normalize`
knows Graph's JSON shapes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

JSONObject = dict[str, Any]


class Status(StrEnum):
    """The status of a run (`fetch_runs.status`) or of one tenant in it (`tenant_runs.status`)."""

    RUNNING = "running"  # a run only: started and not yet finished (or died; the next run marks it)
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # stored, but with days flagged partial (206) or payloads quarantined
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by a signal, or found dead by the next run

    @property
    def failed(self) -> bool:
        """Whether a tenant with this status counts as failed (exit code 1, or 4 when all failed).

        An interrupted tenant is not failed: it was stopped, and is counted as interrupted.
        """
        return self is Status.FAILED

    @property
    def done_well(self) -> bool:
        """Whether a tenant with this status had its data stored (`--resume` skips it)."""
        return self in (Status.SUCCEEDED, Status.PARTIAL)


@dataclass(frozen=True, order=True)
class Shard:
    """Slice `index` (1-based) of `count`: the tenants whose `shard_number` is `index`. Shown as `K/N`."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, tenant_id: str) -> bool:
        return shard_number(tenant_id, self.count) == self.index


def shard_number(tenant_id: str, count: int) -> int:
    """The shard (1..count) a tenant belongs to: BLAKE2b of its lower-cased id, modulo `count`.

    Stable across processes, hosts and Python versions (never `hash()`, which is salted per process), and
    independent of the other tenants: adding one tenant moves no other tenant.
    """
    digest = hashlib.blake2b(tenant_id.strip().lower().encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % count


class HasTenantIdentity(Protocol):
    """Anything that names a tenant: a `TenantConfig`, a `TenantRef`."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class TenantRef:
    """Which tenant: what the Graph, HTTP, retry and auth layers need to name it, and nothing more.

    `tenant_id` is the Entra ID tenant id (a GUID, lower case); `name` is the configured display name
    (may be empty). Messages name a tenant by `label`.
    """

    tenant_id: str
    name: str = ""

    @classmethod
    def of(cls, tenant: HasTenantIdentity) -> TenantRef:
        return cls(tenant.tenant_id, tenant.name)

    @property
    def label(self) -> str:
        return f"{self.tenant_id} ({self.name})" if self.name else self.tenant_id


@dataclass(frozen=True, slots=True)
class ProviderWarning:
    """One entry of a 206 answer's `Warning` header: `199 - "Vendor/Provider/Status/LatencyMs"`."""

    vendor: str
    provider: str
    status_code: int | None
    latency_ms: int | None
    text: str


@dataclass(frozen=True, slots=True)
class FetchContext:
    """Facts about how a day was fetched, stored beside what Graph said about it."""

    run_id: str | None
    fetched_at: datetime
    warnings: tuple[ProviderWarning, ...] = ()
    # The answer's body held no `\u0000` escape, so no string in its objects holds a NUL: admission need
    # not write an object back as JSON to look for one (`fetcher.admit`). Not stored.
    nul_free: bool = False

    @property
    def partial(self) -> bool:
        return bool(self.warnings)

    @property
    def warning_text(self) -> str | None:
        return ", ".join(w.text for w in self.warnings) if self.warnings else None


@dataclass(frozen=True, slots=True)
class ScorePage:
    """One page of `GET /security/secureScores`, parsed but not yet validated."""

    objects: list[Any]
    warnings: tuple[ProviderWarning, ...]
    next_link: str | None
    status: int
    url: str
    nul_free: bool = False  # its body held no `\u0000` escape (see `FetchContext.nul_free`)


class ScoreRow(NamedTuple):
    """A row of `secure_scores`: one tenant, one day."""

    tenant_id: str
    score_date: date
    id: str
    created_at: datetime
    current_score: float | None
    max_score: float | None
    active_user_count: int | None
    licensed_user_count: int | None
    enabled_services: list[str] | None
    vendor: str | None
    provider: str | None
    provider_version: str | None
    sub_provider: str | None
    partial: bool
    warning: str | None
    extra: JSONObject
    fetched_at: datetime
    run_id: str | None
    id_mismatch: bool = False  # `id` does not name this tenant and day (`{tenant}_{yyyy-mm-dd}`)


class ComparativeRow(NamedTuple):
    """A row of `comparative_scores`: one basis (AllTenants, TotalSeats, ...) of one day."""

    tenant_id: str
    score_date: date
    basis: str
    average_score: float | None
    seat_size_lower: int | None
    seat_size_upper: int | None
    extra: JSONObject


class ControlScoreRow(NamedTuple):
    """A row of `control_scores`, plus the control's category and description (the last two fields),
    which go to the `controls` table once rather than on every day's row."""

    tenant_id: str
    score_date: date
    control_name: str
    score: float | None
    score_in_percentage: float | None
    implementation_status: str | None
    last_synced: datetime | None
    is_on: bool | None
    count: int | None  # type: ignore[assignment]  # the column's name; it shadows tuple.count
    total: int | None
    extra: JSONObject
    control_category: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class ScoreDay:
    """Everything one secureScore object says, as rows.

    Empty `comparatives` or `controls` mean the object was thin (Graph often sends `[]` for older
    days): the store then keeps what a fuller fetch of the same day stored.
    """

    score: ScoreRow
    comparatives: tuple[ComparativeRow, ...]
    controls: tuple[ControlScoreRow, ...]

    @property
    def tenant_id(self) -> str:
        return self.score.tenant_id

    @property
    def score_date(self) -> date:
        return self.score.score_date


@dataclass(slots=True)
class RequestStats:
    """What fetching one tenant cost, counted by the HTTP layer for the run ledger."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0


class ControlProfileRow(NamedTuple):
    """A row of `control_profiles`: what Graph says about one control in one tenant."""

    tenant_id: str
    control_name: str
    title: str | None
    max_score: float | None
    rank: int | None
    tier: str | None
    action_type: str | None
    service: str | None
    user_impact: str | None
    implementation_cost: str | None
    threats: list[str] | None
    remediation: str | None
    remediation_impact: str | None
    action_url: str | None
    deprecated: bool | None
    control_category: str | None
    last_modified_at: datetime | None
    extra: JSONObject
    fetched_at: datetime


class StateUpdateRow(NamedTuple):
    """A row of `control_state_updates`: one entry of a profile's `controlStateUpdates`."""

    tenant_id: str
    control_name: str
    updated_at: datetime
    state: str
    assigned_to: str | None
    comment: str | None
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class ControlProfile:
    """Everything one secureScoreControlProfile object says, as rows."""

    profile: ControlProfileRow
    updates: tuple[StateUpdateRow, ...]
