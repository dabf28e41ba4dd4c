"""Entra ID's delegated sign-in, sans I/O: the device authorization grant (RFC 8628) as Entra ID runs it at
`/{tenant}/oauth2/v2.0/devicecode` and the `device_code` grant of its token endpoint, refresh tokens, and the
simulated users who sign in.

A flow is started by a client (`DeviceFlows.start`), completed by a person on the sign-in page
(`approve` / `decline`, which tests reach over HTTP at `/devicelogin`), and polled by the client
(`poll`): `authorization_pending` until then, `slow_down` when scripted, `expired_token` after its
lifetime or when a test expires it, `authorization_declined`, or the user's grant.

Thread-safe: the server's loop writes, tests in another thread may read and change flows.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_TOKEN_GRANT = "refresh_token"
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
DEFAULT_USERNAME = "secadmin@simulator.example"
_USER_CODE_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class SimUser:
    """A person who can sign in to any simulated tenant."""

    username: str  # user principal name
    security_reader: bool = True  # holds Security Reader (or higher) in the tenants it signs in to
    tenants: frozenset[str] | None = None  # the tenants the user belongs to (lower case); None: every one

    def member_of(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id.lower() in self.tenants


class FlowState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"


@dataclass
class DeviceFlow:
    """One device-code sign-in in progress."""

    tenant_id: str
    client_id: str
    scopes: tuple[str, ...]  # as requested, resource-qualified ("https://host/SecurityEvents.Read.All")
    device_code: str
    user_code: str
    expires_at: float
    state: FlowState = FlowState.PENDING
    username: str | None = None
    slow_downs: int = 0  # polls still to be answered `slow_down`
    polls: int = 0


class PollResult(StrEnum):
    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    EXPIRED = "expired_token"
    DECLINED = "authorization_declined"
    BAD_CODE = "bad_verification_code"
    GRANTED = "granted"


# OAuth error -> (AADSTS code, message), as Entra ID words them.
POLL_ERRORS: dict[PollResult, tuple[int, str]] = {
    PollResult.PENDING: (70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling."),
    PollResult.SLOW_DOWN: (70016, "OAuth 2.0 device flow error. Polling too frequently: slow down."),
    PollResult.EXPIRED: (
        70020,
        "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
    ),
    PollResult.DECLINED: (70000, "The user has denied access to the scope requested by the client application."),
    PollResult.BAD_CODE: (70019, "Verification code expired or is not valid."),
}


@dataclass(frozen=True)
class RefreshGrant:
    tenant_id: str
    client_id: str
    username: str
    scopes: tuple[str, ...]


@dataclass
class DeviceFlows:
    """Every flow the simulator has started, and the refresh tokens it has issued."""

    lifetime_seconds: int = 900
    interval_seconds: int = 5
    users: dict[str, SimUser] = field(default_factory=dict)
    _flows: dict[str, DeviceFlow] = field(default_factory=dict)
    _refresh: dict[str, RefreshGrant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, tenant_id: str, client_id: str, scopes: tuple[str, ...]) -> DeviceFlow:
        code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        flow = DeviceFlow(
            tenant_id=tenant_id,
            client_id=client_id,
            scopes=scopes,
            device_code=secrets.token_urlsafe(48),
            user_code=code,
            expires_at=time.time() + self.lifetime_seconds,
        )
        with self._lock:
            self._flows[flow.device_code] = flow
        return flow

    def find(self, user_code: str) -> DeviceFlow | None:
        with self._lock:
            return next((f for f in self._flows.values() if f.user_code == user_code.strip().upper()), None)

    @property
    def flows(self) -> list[DeviceFlow]:
        """Every flow started so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._flows.values())

    def decide(self, user_code: str, action: str, username: str | None = None) -> DeviceFlow | None:
        """What the person on the sign-in page did: "approve" (as `username`), "decline", "expire", or
        "slow_down" (the next poll is told to slow down). None when no pending flow has that code."""
        with self._lock:
            flow = next((f for f in self._flows.values() if f.user_code == user_code.strip().upper()), None)
            if flow is None or flow.state is not FlowState.PENDING:
                return None
            if action == "approve":
                flow.username = username or DEFAULT_USERNAME
                flow.state = FlowState.APPROVED
            elif action == "decline":
                flow.state = FlowState.DECLINED
            elif action == "expire":
                flow.state = FlowState.EXPIRED
            elif action == "slow_down":
                flow.slow_downs += 1
            else:
                return None
            return flow

    def poll(self, device_code: str, client_id: str, now: float) -> tuple[PollResult, DeviceFlow | None]:
        """The client asks whether its flow is done; a granted flow is answered once, then forgotten."""
        with self._lock:
            flow = self._flows.get(device_code)
            if flow is None or flow.client_id.lower() != client_id.lower():
                return PollResult.BAD_CODE, None
            flow.polls += 1
            if flow.state is FlowState.PENDING and now >= flow.expires_at:
                flow.state = FlowState.EXPIRED
            if flow.state is FlowState.EXPIRED:
                return PollResult.EXPIRED, flow
            if flow.state is FlowState.DECLINED:
                return PollResult.DECLINED, flow
            if flow.slow_downs > 0:
                flow.slow_downs -= 1
                return PollResult.SLOW_DOWN, flow
            if flow.state is FlowState.PENDING:
                return PollResult.PENDING, flow
            del self._flows[device_code]
            return PollResult.GRANTED, flow

    def issue_refresh_token(self, grant: RefreshGrant) -> str:
        token = secrets.token_urlsafe(64)
        with self._lock:
            self._refresh[token] = grant
        return token

    def redeem_refresh_token(self, token: str, client_id: str) -> RefreshGrant | None:
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None or grant.client_id.lower() != client_id.lower():
            return None
        return grant

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token stops working, as after an admin revokes the users' sessions."""
        with self._lock:
            self._refresh.clear()

    def user(self, username: str) -> SimUser:
        return self.users.get(username.lower(), SimUser(username))


def poll_error_body(result: PollResult, stamp: str) -> dict[str, object]:
    """The JSON body of a 400 answer to a device-code poll that has no token yet."""
    code, message = POLL_ERRORS[result]
    return {
        "error": str(result),
        "error_description": f"AADSTS{code}: {message}\r\nTimestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def resource_scopes(requested: str, origins: frozenset[str]) -> tuple[tuple[str, ...], str | None] | None:
    """The resource-qualified scopes of a request and the resource they name, or None when a scope names
    a resource this server does not serve. Reserved OpenID scopes are left out."""
    chosen: list[str] = []
    resource: str | None = None
    for scope in requested.split():
        if scope in RESERVED_SCOPES:
            continue
        origin, _, name = scope.rpartition("/")
        if origin not in origins or not name:
            return None
        resource = origin
        chosen.append(scope)
    return tuple(chosen), resource
