"""What the simulator saw: one `RequestRecord` per request, and the peaks of requests in flight.

Written from the server's event loop (often a background thread) and read from tests, so every change
happens under one lock. A record never holds a token or a secret: only whether a bearer token was sent.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

TOKEN, LIST, GET, PROFILES, OTHER = "token", "list", "get", "profiles", "other"
PARTNER = "partner"  # the partner tenant's delegatedAdminRelationships and contracts
CONSENT = "consent"  # an admin opening the admin-consent link (`/{tenant}/adminconsent?client_id=...`)
DEVICE_CODE = "devicecode"  # Entra ID's device authorization endpoint
OPENID = "openid"  # a tenant's OpenID Connect discovery document
DEVICE_LOGIN = "devicelogin"  # the sign-in page where a person enters a device code
GRAPH_ENDPOINTS = frozenset({LIST, GET, PROFILES})


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator answered it."""

    time: float  # time.monotonic() at arrival
    finished: float
    tenant_id: str | None  # from the URL for token requests, from the access token for Graph requests
    endpoint: str  # "token" | "list" | "get" | "profiles" | "partner" | "consent" | "other"
    method: str
    path: str
    query: dict[str, str]
    status: int  # 499 when the client went away before the answer
    authorization: bool  # whether a bearer token was sent; the token itself is never kept


class Recorder:
    """Records requests and tracks concurrency: Graph requests overall and per tenant, token requests apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[RequestRecord] = []
        self._graph = 0
        self._token = 0
        self._by_tenant: Counter[str] = Counter()
        self.peak_graph = 0
        self.peak_token = 0
        self.peak_by_tenant: dict[str, int] = {}

    def peaks_by_tenant(self) -> dict[str, int]:
        """A copy: the server thread keeps changing the original."""
        with self._lock:
            return dict(self.peak_by_tenant)

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self.records.append(record)

    def clear(self) -> None:
        """Forget records and restart the peaks from what is in flight now."""
        with self._lock:
            self.records.clear()
            self.peak_graph, self.peak_token = self._graph, self._token
            self.peak_by_tenant.clear()
            self.peak_by_tenant.update((tenant, count) for tenant, count in self._by_tenant.items() if count)

    @contextmanager
    def in_flight(self, endpoint: str, tenant_id: str | None) -> Iterator[None]:
        """Count a request as in flight for as long as the block runs."""
        self._enter(endpoint, tenant_id)
        try:
            yield
        finally:
            self._leave(endpoint, tenant_id)

    def _enter(self, endpoint: str, tenant_id: str | None) -> None:
        with self._lock:
            if endpoint == TOKEN:
                self._token += 1
                self.peak_token = max(self.peak_token, self._token)
                return
            self._graph += 1
            self.peak_graph = max(self.peak_graph, self._graph)
            if tenant_id is not None:
                self._by_tenant[tenant_id] += 1
                current = self._by_tenant[tenant_id]
                self.peak_by_tenant[tenant_id] = max(self.peak_by_tenant.get(tenant_id, 0), current)

    def _leave(self, endpoint: str, tenant_id: str | None) -> None:
        with self._lock:
            if endpoint == TOKEN:
                self._token -= 1
                return
            self._graph -= 1
            if tenant_id is not None:
                self._by_tenant[tenant_id] -= 1
