"""Scripted trouble: what a tenant's requests run into, and when.

A `Fault` says what happens (`kind` and its fields) and to which requests: those of its tenant on
`endpoint` ("token", "list", "get", "profiles" for secureScoreControlProfiles, "graph" for secureScores
list and get, not profiles, or "partner" for a partner tenant's GDAP relationships and contracts, where
only status faults apply), letting the first `skip` through and then
applying to the next `times` (None: to all of them), of which it takes the share `rate`, spread evenly
(0.25: every fourth). Build faults with the class methods (`Fault.status(429, retry_after=2, times=3)`);
`FaultBook` counts matching requests at run time. `fetcher simulate --fault KIND[:TENANT[:RATE]]` scripts the
`NAMED_FAULTS` (`parse_fault_option`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from fetcher.simulator.entra import TokenRefusal

ENDPOINTS = frozenset({"token", "list", "get", "profiles", "graph", "partner"})
DEFAULT_WARNING = '199 - "Microsoft/SecureScore/500/1234"'
PROVIDER_TIMEOUT_WARNING = '199 - "Microsoft/SecureScore/504/10000"'
# Graph's 401 for a token of another national cloud (a GCC High or DoD tenant asked through the global one).
OTHER_CLOUD_BODY = (
    b'{"error":{"code":"InvalidAuthenticationToken","message":"InvalidCloudInstance",'
    b'"innerError":{"date":"2026-11-29T00:00:00","request-id":"00000000-0000-0000-0000-000000000000",'
    b'"client-request-id":"00000000-0000-0000-0000-000000000000"}}}'
)


class FaultKind(StrEnum):
    STATUS = "status"  # answer a status, with headers and body
    LATENCY = "latency"  # answer normally, `delay_seconds` later
    TIMEOUT = "timeout"  # hang `delay_seconds` (longer than the client waits), then answer normally
    MALFORMED_JSON = "malformed_json"  # 200 with the body cut in half
    PARTIAL = "partial"  # 206 Partial Content with the data and Warning header(s)
    WRONG_TENANT = "wrong_tenant"  # the data of `other_tenant_id`'s ids instead
    HOSTILE = "hostile"  # a named hostile body
    TOKEN_REFUSAL = "token_refusal"  # the token endpoint refuses as Entra ID does
    # Answers of real Graph that mislead (issue 12):
    PLACEHOLDER_COMPARATIVES = "placeholder_comparatives"  # TotalSeats and IndustryTypes with every number -1
    INCONSISTENT_IDS = "inconsistent_ids"  # ids and createdDateTime disagree (see Fault.inconsistent_ids)
    EMPTY_PARTIAL = "empty_partial"  # 206 Partial Content, `{"value": []}` and the provider's Warning
    SLOW_WINDOW = "slow_window"  # the answer takes `delay_seconds` per day of `$top` asked
    TYPE_CHANGE = "type_change"  # `createdDateTime` a number, `controlScores` an object (quirks.type_changed)


class Hostile(StrEnum):
    """Bodies meant to break careless clients."""

    HUGE = "huge"  # a valid page of `megabytes` MB
    DEEP = "deep"  # JSON nested 100,000 levels
    NAN = "nan"  # raw NaN, 1e309, and strings where numbers belong
    FOREIGN_NEXT_LINK = "foreign_next_link"  # @odata.nextLink to https://evil.example.invalid/...
    MISSING_FIELDS = "missing_fields"  # an object without id, azureTenantId, createdDateTime
    NOT_OBJECT = "not_object"  # `value` holding a string


_DELAYS = frozenset({FaultKind.LATENCY, FaultKind.TIMEOUT, FaultKind.SLOW_WINDOW})
_GRAPH_ONLY = frozenset(
    {
        FaultKind.PARTIAL,
        FaultKind.WRONG_TENANT,
        FaultKind.HOSTILE,
        FaultKind.PLACEHOLDER_COMPARATIVES,
        FaultKind.INCONSISTENT_IDS,
        FaultKind.EMPTY_PARTIAL,
        FaultKind.SLOW_WINDOW,
        FaultKind.TYPE_CHANGE,
    }
)


@dataclass(frozen=True, kw_only=True)
class Fault:
    kind: FaultKind
    endpoint: str = "graph"
    skip: int = 0
    times: int | None = None
    status_code: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # None: the body real Graph / Entra ID sends with this status
    retry_after: float | None = None  # seconds
    retry_after_as_date: bool = False  # send Retry-After as an HTTP-date instead of seconds
    delay_seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    other_tenant_id: str | None = None  # None: a made-up tenant
    hostile_body: Hostile | None = None
    megabytes: float = 5.0
    refusal: TokenRefusal | None = None
    same_day: bool = True  # inconsistent ids: one day for the whole page (else each a day earlier)
    rate: float = 1.0  # the share of the requests in its window it applies to, spread evenly

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {sorted(ENDPOINTS)}, not {self.endpoint!r}")
        if self.skip < 0 or (self.times is not None and self.times < 0):
            raise ValueError("skip and times must not be negative")
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate must be above 0 and at most 1, not {self.rate}")
        if self.kind is FaultKind.STATUS and not 100 <= self.status_code <= 599:
            raise ValueError(f"a status fault needs an HTTP status, not {self.status_code}")
        if (self.kind is FaultKind.TOKEN_REFUSAL) != (self.refusal is not None) or (
            self.refusal is not None and self.endpoint != "token"
        ):
            raise ValueError("a token refusal needs `refusal` and endpoint 'token'")
        if self.kind in _GRAPH_ONLY and self.endpoint == "token":
            raise ValueError(f"a {self.kind} fault applies to Graph endpoints only")
        if self.kind is FaultKind.HOSTILE and self.hostile_body is None:
            raise ValueError("a hostile fault needs `hostile_body`")

    @property
    def delays(self) -> bool:
        """Whether this fault only delays the answer (and combines with one that shapes it)."""
        return self.kind in _DELAYS

    @classmethod
    def status(
        cls,
        status: int,
        *,
        retry_after: float | None = None,
        retry_after_as_date: bool = False,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        endpoint: str = "graph",
        skip: int = 0,
        times: int | None = None,
    ) -> Fault:
        """Answer `status` (e.g. 429 with Retry-After, 5xx, 400, 401, 404) with the service's usual body."""
        return cls(
            kind=FaultKind.STATUS,
            status_code=status,
            retry_after=retry_after,
            retry_after_as_date=retry_after_as_date,
            headers=tuple(headers),
            body=body,
            endpoint=endpoint,
            skip=skip,
            times=times,
        )

    @classmethod
    def latency(cls, ms: float, *, endpoint: str = "graph", skip: int = 0, times: int | None = None) -> Fault:
        return cls(kind=FaultKind.LATENCY, delay_seconds=ms / 1000, endpoint=endpoint, skip=skip, times=times)

    @classmethod
    def timeout(
        cls, seconds: float = 60.0, *, endpoint: str = "graph", skip: int = 0, times: int | None = None
    ) -> Fault:
        return cls(kind=FaultKind.TIMEOUT, delay_seconds=seconds, endpoint=endpoint, skip=skip, times=times)

    @classmethod
    def malformed_json(cls, *, endpoint: str = "graph", skip: int = 0, times: int | None = None) -> Fault:
        return cls(kind=FaultKind.MALFORMED_JSON, endpoint=endpoint, skip=skip, times=times)

    @classmethod
    def partial(
        cls,
        warnings: Sequence[str] = (DEFAULT_WARNING,),
        *,
        endpoint: str = "list",
        skip: int = 0,
        times: int | None = None,
    ) -> Fault:
        """206 Partial Content; several warnings go comma-separated into one Warning header."""
        return cls(kind=FaultKind.PARTIAL, warnings=tuple(warnings), endpoint=endpoint, skip=skip, times=times)

    @classmethod
    def wrong_tenant(
        cls,
        other_tenant_id: str | None = None,
        *,
        endpoint: str = "graph",
        skip: int = 0,
        times: int | None = None,
    ) -> Fault:
        return cls(
            kind=FaultKind.WRONG_TENANT,
            other_tenant_id=other_tenant_id,
            endpoint=endpoint,
            skip=skip,
            times=times,
        )

    @classmethod
    def hostile(
        cls,
        body: Hostile,
        *,
        megabytes: float = 5.0,
        endpoint: str = "list",
        skip: int = 0,
        times: int | None = None,
    ) -> Fault:
        return cls(
            kind=FaultKind.HOSTILE,
            hostile_body=body,
            megabytes=megabytes,
            endpoint=endpoint,
            skip=skip,
            times=times,
        )

    @classmethod
    def token_refusal(cls, refusal: TokenRefusal, *, skip: int = 0, times: int | None = None) -> Fault:
        return cls(kind=FaultKind.TOKEN_REFUSAL, refusal=refusal, endpoint="token", skip=skip, times=times)

    @classmethod
    def placeholder_comparatives(cls, *, endpoint: str = "graph", skip: int = 0, times: int | None = None) -> Fault:
        """TotalSeats and IndustryTypes comparatives with every number -1; AllTenants stays right."""
        return cls(kind=FaultKind.PLACEHOLDER_COMPARATIVES, endpoint=endpoint, skip=skip, times=times)

    @classmethod
    def inconsistent_ids(cls, *, same_day: bool = True, skip: int = 0, times: int | None = None) -> Fault:
        """Answers that disagree with themselves, ids unchanged: every object of a list page after the first
        claims the first's `createdDateTime` (`same_day`), or every object's is a day before its id's."""
        return cls(kind=FaultKind.INCONSISTENT_IDS, same_day=same_day, endpoint="list", skip=skip, times=times)

    @classmethod
    def empty_partial(
        cls,
        warnings: Sequence[str] = (PROVIDER_TIMEOUT_WARNING,),
        *,
        skip: int = 0,
        times: int | None = None,
    ) -> Fault:
        """206 Partial Content with `{"value": []}`: Secure Score's provider failed (status in the Warning)."""
        return cls(kind=FaultKind.EMPTY_PARTIAL, warnings=tuple(warnings), endpoint="list", skip=skip, times=times)

    @classmethod
    def slow_window(cls, ms_per_day: float, *, skip: int = 0, times: int | None = None) -> Fault:
        """An answer that takes `ms_per_day` for each day of the `$top` asked (a big window is several MB)."""
        return cls(kind=FaultKind.SLOW_WINDOW, delay_seconds=ms_per_day / 1000, endpoint="list", skip=skip, times=times)

    @classmethod
    def type_change(cls, *, endpoint: str = "graph", skip: int = 0, times: int | None = None) -> Fault:
        """A 200 whose secureScores changed a property's type: validation fails, the payload is quarantined."""
        return cls(kind=FaultKind.TYPE_CHANGE, endpoint=endpoint, skip=skip, times=times)

    @classmethod
    def other_cloud(cls, *, skip: int = 0, times: int | None = None) -> Fault:
        """Graph's 401 InvalidCloudInstance: the tenant lives in another national cloud than the token's."""
        return cls.status(401, body=OTHER_CLOUD_BODY, skip=skip, times=times)


@dataclass(frozen=True)
class Plan:
    """What the faults that matched one request add up to."""

    delay_seconds: float = 0.0
    answer: Fault | None = None  # the first fault that shapes the answer; None: answer normally
    delay_per_day: float = 0.0  # seconds more for each day of `$top` asked (slow windows)

    def delay(self, top: int | None) -> float:
        """The whole scripted delay of a request that asked for `top` days."""
        return self.delay_seconds + self.delay_per_day * (top or 0)


def _matches(fault: Fault, endpoint: str) -> bool:
    return fault.endpoint == endpoint or (fault.endpoint == "graph" and endpoint in ("list", "get"))


class _Script:
    """A fault and how many matching requests it has seen."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.seen = 0

    def fires(self) -> bool:
        index, self.seen = self.seen, self.seen + 1
        fault = self.fault
        if index < fault.skip or (fault.times is not None and index >= fault.skip + fault.times):
            return False
        n = index - fault.skip  # the n-th request of the window fires when it completes another 1/rate
        return math.floor((n + 1) * fault.rate + 1e-9) > math.floor(n * fault.rate + 1e-9)


class FaultBook:
    """Per-tenant fault scripts, counted as requests arrive (thread-safe: faults may be added from tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[_Script]] = {}

    def add(self, tenant_id: str, fault: Fault) -> None:
        with self._lock:
            self._scripts.setdefault(tenant_id.lower(), []).append(_Script(fault))

    def plan(self, tenant_id: str | None, endpoint: str) -> Plan:
        """Count this request against the tenant's faults and say what happens to it."""
        if tenant_id is None:
            return Plan()
        with self._lock:
            scripts = [s for s in self._scripts.get(tenant_id.lower(), ()) if _matches(s.fault, endpoint)]
            firing = [script.fault for script in scripts if script.fires()]
        delay = sum(fault.delay_seconds for fault in firing if fault.delays and fault.kind is not FaultKind.SLOW_WINDOW)
        per_day = sum(fault.delay_seconds for fault in firing if fault.kind is FaultKind.SLOW_WINDOW)
        answer = next((fault for fault in firing if not fault.delays), None)
        return Plan(delay, answer, per_day)


# -- `fetcher simulate --fault KIND[:TENANT[:RATE]]`

# What each KIND answers (secureScores list and get; "partial" and "empty_partial" the list only).
NAMED_FAULTS: dict[str, Fault] = {
    "throttle": Fault.status(429, retry_after=1),  # 429 Too Many Requests, Retry-After: 1
    "unavailable": Fault.status(503),  # 503 ServiceNotAvailable
    "partial": Fault.partial(),  # 206 Partial Content: the data and the provider's Warning
    "empty_partial": Fault.empty_partial(),  # 206 with no data: the provider timed out (Warning 504)
    "bad_json": Fault.malformed_json(),  # 200 whose body is cut in half
    "type_change": Fault.type_change(),  # 200, `createdDateTime` a number and `controlScores` an object
}
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class FaultOption:
    """One `--fault`: the fault, and its tenant (None: every customer tenant, `*`)."""

    fault: Fault
    tenant_id: str | None = None

    def describe(self) -> str:
        """`throttle on every customer, 25 % of requests`, for the simulator's announcement."""
        kind = next(name for name, fault in NAMED_FAULTS.items() if fault == dataclasses.replace(self.fault, rate=1.0))
        where = "every customer" if self.tenant_id is None else f"tenant {self.tenant_id}"
        return f"{kind} on {where}, {self.fault.rate * 100:g} % of its requests"


def parse_fault_option(text: str) -> FaultOption:
    """`KIND[:TENANT[:RATE]]`: KIND one of `NAMED_FAULTS`, TENANT a customer's id or `*` (every customer, the
    default), RATE the share of its requests (0 to 1, default 1: all). Raises ValueError saying what is wrong."""
    kind, _, rest = text.strip().partition(":")
    tenant, _, rate_text = rest.partition(":")
    if kind not in NAMED_FAULTS:
        raise ValueError(f"{text!r}: KIND must be one of {', '.join(NAMED_FAULTS)}, not {kind!r}")
    tenant = tenant.strip().lower() or "*"
    if tenant != "*" and not _GUID.match(tenant):
        raise ValueError(f"{text!r}: TENANT must be a tenant id (a GUID) or *, not {tenant!r}")
    try:
        rate = float(rate_text) if rate_text else 1.0
    except ValueError:
        raise ValueError(f"{text!r}: RATE must be a number above 0 and at most 1, not {rate_text!r}") from None
    if not 0 < rate <= 1:  # NaN too
        raise ValueError(f"{text!r}: RATE must be above 0 and at most 1, not {rate_text}")
    return FaultOption(dataclasses.replace(NAMED_FAULTS[kind], rate=rate), None if tenant == "*" else tenant)
