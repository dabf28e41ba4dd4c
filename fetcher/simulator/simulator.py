"""The `Simulator`: the state one simulated Entra ID + Graph holds (tenants, the app registration, the
current day, fault scripts, what it has seen) and the truths tests compare against.

HTTP lives in `app.py`; serving it lives in `server.py`.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from fetcher.simulator import data, profiles, tokens
from fetcher.simulator.app import make_app
from fetcher.simulator.cache import ByteCache
from fetcher.simulator.devicecode import DeviceFlows, SimUser
from fetcher.simulator.entra import AppRegistration
from fetcher.simulator.faults import Fault, FaultBook
from fetcher.simulator.partner import SimContract, SimRelationship
from fetcher.simulator.records import Recorder, RequestRecord
from fetcher.simulator.tenants import SimTenant

DEFAULT_CLIENT_ID = "3f5c9a27-6b1e-4d8a-9c2f-7e4b1a0d6c53"
DEFAULT_CLIENT_SECRET = "Sim8Q~securescore.fetcher-simulator-secret_0123456789"
FEDERATED_TOKEN_LIFETIME = 3600
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the Azure CLI's first-party public client


class Simulator:
    """A deterministic Entra ID token endpoint and Graph secureScores API for `tenants`.

    `synced_groups` > 0 makes the newest day's lastSynced values shared by that many groups of controls (a
    few distinct values a tenant-day, moving as groups sync, as real tenants show); 0 keeps one per control."""

    def __init__(
        self,
        tenants: Sequence[SimTenant],
        *,
        seed: int = 0,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        client_certificate_pem: bytes | None = None,
        page_size: int = 20,
        newest_day: datetime.date | None = None,
        controls_per_day: int = 230,
        latency_ms: float = 0.0,
        token_lifetime_seconds: int = 3600,
        cache_megabytes: float = 256.0,
        profile_page_size: int = 200,
        relationships: Sequence[SimRelationship] = (),
        contracts: Sequence[SimContract] = (),
        users: Sequence[SimUser] = (),
        device_code_lifetime_seconds: int = 900,
        device_code_interval_seconds: int = 5,
        synced_groups: int = 0,
    ) -> None:
        if synced_groups < 0:
            raise ValueError("synced_groups must be 0 (each control its own lastSynced) or positive")
        if page_size < 1 or controls_per_day < 1 or token_lifetime_seconds < 1 or profile_page_size < 1:
            raise ValueError(
                "page_size, controls_per_day, token_lifetime_seconds and profile_page_size must be positive"
            )
        self.tenants: dict[str, SimTenant] = {}
        for tenant in tenants:
            if tenant.tenant_id.lower() in self.tenants:
                raise ValueError(f"tenant {tenant.tenant_id} is listed twice")
            self.tenants[tenant.tenant_id.lower()] = tenant
        self.seed = seed
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_size = page_size
        self.profile_page_size = profile_page_size
        self.newest_day = newest_day or datetime.datetime.now(datetime.UTC).date()
        self.controls_per_day = controls_per_day
        self.synced_groups = synced_groups
        self.latency_ms = latency_ms
        self.token_lifetime_seconds = token_lifetime_seconds
        certificate = tokens.registered_certificate(client_certificate_pem) if client_certificate_pem else None
        self.registration = AppRegistration(client_id, client_secret, certificate)
        self.signing_key = tokens.signing_key()
        self.skiptoken_key = data.stable_key("skiptoken", seed).to_bytes(8, "big")
        self.faults = FaultBook()
        for tenant in tenants:
            for fault in tenant.faults:
                self.faults.add(tenant.tenant_id, fault)
        self.recorder = Recorder()
        # The partner tenant's side (a tenant with partner=True reads them); tests may change them live.
        self.relationships: list[SimRelationship] = list(relationships)
        self.contracts: list[SimContract] = list(contracts)
        self._profiles: dict[str, data.Profile] = {}
        self._profiles_lock = threading.Lock()
        self._cache = ByteCache(int(cache_megabytes * 1024 * 1024))
        # Delegated sign-in: who may sign in (anyone not listed is a Security Reader) and the device flows.
        self.device_flows = DeviceFlows(
            lifetime_seconds=device_code_lifetime_seconds,
            interval_seconds=device_code_interval_seconds,
            users={user.username.lower(): user for user in users},
        )

    # -- what tests observe -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far, in arrival order of their answers (the live list)."""
        return self.recorder.records

    @property
    def peak_in_flight(self) -> int:
        """The most Graph requests (list and get) in flight at once."""
        return self.recorder.peak_graph

    @property
    def peak_token_in_flight(self) -> int:
        return self.recorder.peak_token

    @property
    def peak_in_flight_by_tenant(self) -> dict[str, int]:
        """The most Graph requests in flight at once for each tenant (a snapshot)."""
        return self.recorder.peaks_by_tenant()

    def clear_requests(self) -> None:
        """Forget recorded requests and restart the peaks."""
        self.recorder.clear()

    def add_fault(self, tenant_id: str, fault: Fault) -> None:
        """Script trouble for a tenant from now on (its `skip`/`times` count from here)."""
        if self.tenant(tenant_id) is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        self.faults.add(tenant_id, fault)

    def grant_consent(self, tenant_id: str) -> SimTenant:
        """What an admin of the tenant accepting the admin-consent prompt does: the app gets its service
        principal there and its application permission (the tenant's other standing is unchanged)."""
        tenant = dataclasses.replace(self._known(tenant_id), app_installed=True, consent=True)
        self.tenants[tenant.tenant_id.lower()] = tenant
        return tenant

    def make_app(self) -> web.Application:
        """A fresh aiohttp application serving this simulator."""
        return make_app(self)

    # -- data ---------------------------------------------------------------------------------------------

    def tenant(self, tenant_id: str) -> SimTenant | None:
        return self.tenants.get(tenant_id.lower())

    def available_days(self, tenant_id: str, newest_day: datetime.date | None = None) -> list[datetime.date]:
        """The days the list returns for a tenant, newest first."""
        tenant = self._known(tenant_id)
        newest = newest_day or self.newest_day
        if tenant.empty:
            return []
        return [newest - datetime.timedelta(days=offset) for offset in range(tenant.days)]

    def day_bytes(self, tenant_id: str, day: datetime.date, newest_day: datetime.date | None = None) -> bytes:
        """One day's object, serialized; the newest day in full, older days thin."""
        tenant = self._known(tenant_id)
        newest = day == (newest_day or self.newest_day)
        key = (tenant.tenant_id, day.toordinal(), newest)
        profile = self._profile(tenant.tenant_id)
        return self._cache.get_or_make(key, lambda: data.score_bytes(profile, day, newest=newest, seed=self.seed))

    def score_object(self, tenant_id: str, day: datetime.date, *, newest: bool) -> dict[str, Any]:
        """One day's object as a client decodes it, in the newest (full) or older (thin) form."""
        tenant = self._known(tenant_id)
        return data.score_object(self._profile(tenant.tenant_id), day, newest=newest, seed=self.seed)

    def expected_objects(self, tenant_id: str, days: int | None = None) -> list[dict[str, Any]]:
        """Exactly what a full list capped at `days` objects returns now, newest first."""
        newest = self.newest_day
        available = self.available_days(tenant_id, newest)
        chosen = available if days is None else available[:days]
        return [orjson.loads(self.day_bytes(tenant_id, day, newest)) for day in chosen]

    def profile_bytes(self, tenant_id: str) -> list[bytes]:
        """The tenant's secureScoreControlProfiles, serialized, in the order the list returns them.

        Cached as one value per tenant and day: serialized JSON holds no raw newline, so it joins them.
        """
        tenant = self._known(tenant_id)
        newest = self.newest_day
        profile = self._profile(tenant.tenant_id)
        joined = self._cache.get_or_make(
            ("profiles", tenant.tenant_id, newest.toordinal()),
            lambda: b"\n".join(profiles.profiles_bytes(profile, newest)),
        )
        return joined.split(b"\n")

    def expected_profiles(self, tenant_id: str) -> list[dict[str, Any]]:
        """Exactly what following the profiles list to its end returns now."""
        return [orjson.loads(obj) for obj in self.profile_bytes(tenant_id)]

    def issue_federated_token(self, client_id: str, tenant_id: str) -> str:
        """A service-account token the token endpoint accepts as a client assertion (workload identity)."""
        return tokens.issue_federated_token(
            self.signing_key,
            client_id=client_id,
            tenant_id=tenant_id,
            now=int(time.time()),
            lifetime=FEDERATED_TOKEN_LIFETIME,
        )

    def issue_user_token(
        self,
        tenant_id: str,
        username: str,
        *,
        audience: str,
        client_id: str = AZURE_CLI_CLIENT_ID,
        scopes: Sequence[str] = ("SecurityEvents.Read.All", "User.Read"),
    ) -> str:
        """A delegated access token for `username` in a tenant, as the Azure CLI would hold after `az login`."""
        user = self.device_flows.user(username)
        grant = tokens.UserGrant(
            tenant_id=self._known(tenant_id).tenant_id,
            client_id=client_id,
            username=user.username,
            audience=audience,
            scopes=tuple(scopes),
            role_ids=tokens.SECURITY_ROLE_IDS[:1] if user.security_reader else (),
        )
        now, lifetime = int(time.time()), self.token_lifetime_seconds
        return tokens.issue_user_token(self.signing_key, grant, now=now, lifetime=lifetime)

    def _known(self, tenant_id: str) -> SimTenant:
        tenant = self.tenant(tenant_id)
        if tenant is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        return tenant

    def _profile(self, tenant_id: str) -> data.Profile:
        # Profiles are built lazily: a benchmark may declare thousands of tenants and touch a few.
        with self._profiles_lock:
            profile = self._profiles.get(tenant_id)
            if profile is None:
                profile = data.build_profile(
                    self.seed, tenant_id, self.controls_per_day, synced_groups=self.synced_groups
                )
                self._profiles[tenant_id] = profile
            return profile
