"""Delegated sign-in: credentials for a person at a terminal (`[auth] method = "device_code"` or
`"azure_cli"`), the device-code prompt, the persistent token cache, and their refusals in one line.

- `azure_cli`: azure-identity's asyncio `AzureCliCredential`, which runs
  `az account get-access-token --output json --resource R --tenant T` (the tenant from the configuration).
- `device_code`: azure-identity's `DeviceCodeCredential`, which has no asyncio variant; `DeviceCodeSignIn`
  runs it in a worker thread (`asyncio.to_thread`) so the event loop keeps serving the other tenants. It
  asks for the delegated permission `SecurityEvents.Read.All` of the `[graph]` resource, prints the prompt
  (URL and code) through the run's `prompt` callable (standard error), and with `[auth] token_cache` keeps
  the tokens in azure-identity's persistent cache (`TokenCachePersistenceOptions`) and the account's
  `AuthenticationRecord` beside it, so a second command signs in silently. Its HTTP goes through a
  `requests` session trusting the same CAs as the run's aiohttp session (system CAs plus `[graph] ca_bundle`)
  and using the same `[graph] proxy`. A cancelled sign-in (Ctrl-C) makes that transport refuse the next
  poll, so the worker thread ends within one polling interval.

No token is ever logged or put in a message; `AuthenticationRecord`s hold the user name and account ids only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import (
    AuthenticationRecord,
    AuthenticationRequiredError,
    CredentialUnavailableError,
    DeviceCodeCredential,
    TokenCachePersistenceOptions,
)
from azure.identity.aio import AzureCliCredential
from requests.adapters import HTTPAdapter

from fetcher.config import APP_ONLY_METHODS, AuthConfig, Config, GraphConfig, TenantConfig
from fetcher.errors import AuthenticationError, ConfigError, GraphError, UnsafeResponse
from fetcher.graph import PERMISSION
from fetcher.models import TenantRef
from fetcher.text import one_line

log = logging.getLogger("fetcher.auth")

Prompt = Callable[[str], None]
AZ_PROCESS_TIMEOUT_SECONDS = 30
TOKEN_RESPONSE_MAX_BYTES = 1024 * 1024  # as fetcher.auth caps the asyncio credentials' token answers
TOKEN_MARGIN_SECONDS = 300  # a token this close to its expiry is not used for a new request
KNOWN_AUTHORITY_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn", "login.microsoft.com"}
)
CACHE_DIRECTORY = Path("~/.IdentityService")  # where azure-identity keeps its persistent caches on Linux and macOS
INSTALL_AZ = "https://learn.microsoft.com/cli/azure/install-azure-cli"
_NO_AZ = '[auth] method = "azure_cli" needs the Azure CLI, and `az` is not on PATH: install it'
_CANCELLED = "the sign-in was cancelled"
_CLAIMS_LOGIN = re.compile(r"az login --claims-challenge [A-Za-z0-9+/=_-]+")
_UNSAFE = re.compile(r"Entra ID's answer \([^)]*\) exceeds the cap of \d+ bytes; refused")


def print_prompt(text: str) -> None:
    """The default prompt: one line on standard error."""
    print(text, file=sys.stderr, flush=True)


def delegated_scope(graph: GraphConfig) -> str:
    """The delegated permission a person's sign-in asks for: `SecurityEvents.Read.All` of `[graph]`'s resource."""
    return f"{graph.scope.removesuffix('/.default')}/{PERMISSION}"


def app_only_advice() -> str:
    return f"for unattended runs use an app-only [auth] method ({', '.join(APP_ONLY_METHODS)})"


# ---------------------------------------------------------------------------------------------- Azure CLI


class AzureCliSignIn:
    """The Azure CLI's signed-in user, asked for a token in the configured tenant.

    azure-identity's `AzureCliCredential` runs `az` (about a second) for every token it is asked for and
    keeps nothing; this keeps the token until `TOKEN_MARGIN_SECONDS` before it expires, or until `forget()`.
    """

    def __init__(self, tenant: TenantRef) -> None:
        self.tenant = tenant
        self._credential = AzureCliCredential(tenant_id=tenant.tenant_id, process_timeout=AZ_PROCESS_TIMEOUT_SECONDS)
        self._token: AccessToken | None = None

    def __repr__(self) -> str:
        return f"AzureCliSignIn(tenant={self.tenant.tenant_id!r})"

    async def get_token(self, *scopes: str, claims: str | None = None, **kwargs: Any) -> AccessToken:
        token = self._token
        if claims is None and token is not None and token.expires_on - TOKEN_MARGIN_SECONDS > time.time():
            return token
        self._token = await self._credential.get_token(*scopes, claims=claims, **kwargs)
        return self._token

    def forget(self) -> None:
        """Graph refused the token: the next one comes from `az` again."""
        self._token = None

    async def close(self) -> None:
        self._token = None
        await self._credential.close()

    async def __aenter__(self) -> AzureCliSignIn:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


# ---------------------------------------------------------------------------------------------- device code


class _BoundedAdapter(HTTPAdapter):
    """A requests adapter for Entra ID as the run's aiohttp side has it: the run's SSL context (system CAs
    plus [graph] ca_bundle, TLS 1.2+), each answer read whole within `timeout_seconds` and refused past
    `max_bytes` (after decompression) before MSAL parses it."""

    def __init__(self, ssl_context: Any, *, timeout_seconds: float, max_bytes: int) -> None:
        self._ssl_context = ssl_context
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,  # noqa: ARG002 (always read here, whole)
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        started = time.monotonic()
        response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise ServiceResponseError(self._too_large(f"Content-Length {declared}"))
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > self.max_bytes:
                    raise ServiceResponseError(self._too_large(f"{size} bytes read so far, after decompression"))
                if time.monotonic() - started > self.timeout_seconds:
                    raise ServiceResponseTimeoutError(
                        f"no complete answer within [graph] timeout_seconds = {self.timeout_seconds:g} s"
                    )
                chunks.append(chunk)
        except BaseException:
            response.close()
            raise
        response._content = b"".join(chunks)  # what requests' own read would have set
        response._content_consumed = True
        return response

    def _too_large(self, what: str) -> str:
        return f"Entra ID's answer ({what}) exceeds the cap of {self.max_bytes} bytes; refused"


class _CancellableTransport(RequestsTransport):  # type: ignore[misc]  # azure-core's transports are untyped here
    """azure-core's requests transport that refuses to send once the sign-in was cancelled."""

    def __init__(self, cancelled: threading.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cancelled = cancelled

    def send(self, request: Any, **kwargs: Any) -> Any:
        if self._cancelled.is_set():
            raise ServiceRequestError(_CANCELLED)
        return super().send(request, **kwargs)


def sync_transport(graph: GraphConfig, cancelled: threading.Event, max_bytes: int) -> RequestsTransport:
    """The transport a synchronous credential sends through: the run's trust, proxy and time-outs."""
    from fetcher.http import ssl_context

    session = requests.Session()
    adapter = _BoundedAdapter(ssl_context(graph.ca_bundle), timeout_seconds=graph.timeout_seconds, max_bytes=max_bytes)
    session.mount("https://", adapter)
    if graph.proxy is not None and graph.proxy.reveal():
        session.proxies = {"https": graph.proxy.reveal(), "http": graph.proxy.reveal()}
    return _CancellableTransport(
        cancelled,
        session=session,
        session_owner=True,
        connection_timeout=graph.timeout_seconds,
        read_timeout=graph.timeout_seconds,
    )


class AccountRecords:
    """The `AuthenticationRecord` of each (authority, tenant, public client) signed in to, so that a later
    command finds the account in the persistent cache without a prompt. With no `path`, in memory only.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(authority: str, tenant_id: str, client_id: str) -> str:
        return f"{urlparse(authority).netloc or authority}|{tenant_id}|{client_id}".lower()

    def candidates(self, key: str) -> list[AuthenticationRecord]:
        """The record kept under `key`, then those of other tenants with the same authority and client."""
        host, client = key.partition("|")[0], key.rpartition("|")[2]
        with self._lock:
            records = self._read()
        others = sorted(k for k in records if k != key and k.startswith(f"{host}|") and k.endswith(f"|{client}"))
        chosen: list[AuthenticationRecord] = []
        for name in (key, *others):
            with contextlib.suppress(ValueError, KeyError, TypeError):  # an unreadable record costs one prompt
                if name in records:
                    chosen.append(AuthenticationRecord.deserialize(records[name]))
        return chosen

    def save(self, key: str, record: AuthenticationRecord) -> None:
        with self._lock:
            records = self._read()
            records[key] = record.serialize()
            if self.path is None:
                self._memory = records
                return
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp makes it 0600
                json.dump(records, handle, indent=1, sort_keys=True)
            os.replace(temporary, self.path)

    def _read(self) -> dict[str, str]:
        if self.path is None:
            return dict(self._memory)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def account_records(auth: AuthConfig) -> AccountRecords:
    """Where device_code keeps its accounts: beside the persistent cache, or in memory without one."""
    if auth.token_cache is None:
        return AccountRecords(None)
    return AccountRecords(CACHE_DIRECTORY.expanduser() / f"{auth.token_cache}.accounts.json")


class DeviceCodeSignIn:
    """An asyncio credential around azure-identity's synchronous `DeviceCodeCredential` (see the module)."""

    def __init__(
        self, tenant: TenantRef, auth: AuthConfig, graph: GraphConfig, records: AccountRecords, prompt: Prompt
    ) -> None:
        assert auth.client_id is not None  # the configuration gives device_code a default public client
        self.tenant = tenant
        self.client_id = auth.client_id
        self.scope = delegated_scope(graph)
        self._graph = graph
        self._auth = auth
        self._records = records
        self._prompt = prompt
        self._cancelled = threading.Event()
        self._max_bytes = min(TOKEN_RESPONSE_MAX_BYTES, graph.max_response_bytes)
        self._credential: DeviceCodeCredential | None = None
        self._key = AccountRecords.key(graph.authority_host, tenant.tenant_id, auth.client_id)

    def __repr__(self) -> str:
        return f"DeviceCodeSignIn(tenant={self.tenant.tenant_id!r}, client_id={self.client_id!r})"

    async def get_token(self, *scopes: str, claims: str | None = None, **kwargs: Any) -> AccessToken:
        """A delegated token for [graph]'s resource (the scope asked for is replaced by `delegated_scope`)."""
        try:
            return await asyncio.to_thread(self._token, claims)
        except asyncio.CancelledError:
            # The thread cannot be killed: its next request to Entra ID is refused instead.
            self._cancelled.set()
            self._prompt(f"tenant {self.tenant.label}: sign-in cancelled; run the command again to sign in")
            raise

    async def close(self) -> None:
        self._cancelled.set()
        credential, self._credential = self._credential, None
        if credential is not None:
            await asyncio.to_thread(credential.close)

    async def __aenter__(self) -> DeviceCodeSignIn:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()

    def _token(self, claims: str | None) -> AccessToken:
        if self._credential is not None:
            try:
                return self._credential.get_token(self.scope, claims=claims)
            except AuthenticationRequiredError:  # the refresh token ran out during the run: sign in again
                self._credential.close()
                self._credential = None
        # This tenant's account first, then those signed in to other tenants through the same authority and
        # public client: Entra ID redeems a user's refresh token in any tenant the user belongs to (a guest,
        # a GDAP admin), so one sign-in serves them all; where it does not, the person is asked again.
        for record in self._records.candidates(self._key):
            credential = self._make(record)
            try:
                token = credential.get_token(self.scope, claims=claims)
            except AuthenticationRequiredError:
                credential.close()
                continue
            log.info("tenant %s: signed in without a prompt as %s", self.tenant.label, record.username)
            self._records.save(self._key, record)
            self._credential = credential
            return token
        credential = self._make(None)
        record = credential.authenticate(scopes=[self.scope], claims=claims)
        self._records.save(self._key, record)
        self._credential = credential
        return credential.get_token(self.scope)

    def _make(self, record: AuthenticationRecord | None) -> DeviceCodeCredential:
        options: dict[str, Any] = {
            "tenant_id": self.tenant.tenant_id,
            "prompt_callback": self._show_prompt,
            "transport": sync_transport(self._graph, self._cancelled, self._max_bytes),
            "retry_total": 0,
            # A host that is not one of Entra ID's (a gateway, the simulator) cannot be validated against
            # login.microsoftonline.com's instance discovery; it was configured on purpose.
            "disable_instance_discovery": urlparse(self._graph.authority_host).hostname not in KNOWN_AUTHORITY_HOSTS,
        }
        if self._auth.token_cache is not None:
            options["cache_persistence_options"] = TokenCachePersistenceOptions(
                name=self._auth.token_cache, allow_unencrypted_storage=self._auth.allow_unencrypted_storage
            )
        if record is not None:
            # The record names the client and the authority; disable_automatic_authentication makes a silent
            # failure raise AuthenticationRequiredError instead of prompting inside get_token.
            return DeviceCodeCredential(authentication_record=record, disable_automatic_authentication=True, **options)
        return DeviceCodeCredential(self.client_id, authority=self._graph.authority_host, **options)

    def _show_prompt(self, verification_uri: str, user_code: str, expires_on: datetime) -> None:
        until = expires_on.astimezone(UTC).strftime("%H:%M UTC")
        self._prompt(
            f"tenant {self.tenant.label}: to sign in, open {verification_uri} and enter the code {user_code} "
            f"(valid until {until})"
        )


class SignInGates:
    """Tenants fetched with one person's sign-in (device_code with one public client and cache, or the Azure
    CLI's account) go `size` ([fetch] per_sign_in_concurrency) at a time, default one: one person answers the
    prompts, and Graph's limits for a user apply across that user's tenants. App-only tenants pass freely."""

    def __init__(self, auth: Callable[[TenantRef], AuthConfig], size: int) -> None:
        self._auth = auth
        self._size = size
        self._gates: dict[tuple[str | None, ...], asyncio.Semaphore] = {}

    def gate(self, tenant: TenantRef) -> contextlib.AbstractAsyncContextManager[Any]:
        auth = self._auth(tenant)
        if not auth.delegated:
            return contextlib.nullcontext()
        key = (auth.method, auth.client_id, auth.token_cache) if auth.method == "device_code" else (auth.method,)
        return self._gates.setdefault(key, asyncio.Semaphore(self._size))


# ------------------------------------------------------------------------------------------------ refusals


def signin_refusal(error: BaseException, tenant: TenantRef, auth: AuthConfig) -> GraphError | None:
    """A delegated sign-in's failure as one line with the fix, or None when it is an ordinary Entra ID
    answer (`fetcher.auth.authentication_error` words those)."""
    message = _message(error)
    unsafe = _UNSAFE.search(message)
    if unsafe is not None:
        return UnsafeResponse(f"tenant {tenant.label}: {unsafe.group(0)}", tenant_id=tenant.tenant_id)
    fix = _fix(error, message, tenant, auth)
    if fix is None:
        return None
    return AuthenticationError(f"tenant {tenant.label}: {fix}", tenant_id=tenant.tenant_id)


def _fix(error: BaseException, message: str, tenant: TenantRef, auth: AuthConfig) -> str | None:
    if auth.method == "azure_cli":
        return _azure_cli_fix(error, message, tenant.tenant_id)
    if auth.method == "device_code":
        return _device_code_fix(message, auth)
    return None


def _azure_cli_fix(error: BaseException, message: str, tid: str) -> str | None:
    if "Azure CLI not found" in message:
        return f'{_NO_AZ} ({INSTALL_AZ}) and run `az login --tenant {tid}`, or use method = "device_code"'
    claims = _CLAIMS_LOGIN.search(message)
    if claims is not None:
        return (
            "Graph asks for a fresh sign-in with more claims (Conditional Access, a revoked session): run "
            f"`{claims.group(0)} --tenant {tid}` (Azure CLI 2.76 or later) and try again"
        )
    if "az login" in message and "AADSTS" not in message:
        return f"the Azure CLI is not signed in: run `az login --tenant {tid}` and try again"
    if "Timed out waiting for Azure CLI" in message:
        return f"the Azure CLI did not answer within {AZ_PROCESS_TIMEOUT_SECONDS} s: check `az account show`"
    if isinstance(error, CredentialUnavailableError | ClientAuthenticationError):
        said = one_line(message, limit=200)
        return f"the Azure CLI gave no token for tenant {tid} ({said}): run `az login --tenant {tid}` and try again"
    return None


def _device_code_fix(message: str, auth: AuthConfig) -> str | None:
    lowered = message.lower()
    if "cache encryption is impossible" in lowered:
        return (
            f"[auth] token_cache = {auth.token_cache!r}: this system cannot encrypt the token cache (no usable "
            "libsecret keyring, as on a headless Linux host): set [auth] allow_unencrypted_storage = true to keep it "
            f"in {CACHE_DIRECTORY / str(auth.token_cache)} (readable by you only), or remove token_cache"
        )
    if "expired_token" in lowered or "aadsts70020" in lowered or "timed out waiting for user" in lowered:
        return "the device code expired before the sign-in was completed: run the command again and sign in sooner"
    if "authorization_declined" in lowered or "aadsts70000" in lowered:
        return "the sign-in was declined at the sign-in page: run the command again and approve it"
    if _CANCELLED in message:
        return "sign-in cancelled; run the command again to sign in"
    return None


def _message(error: BaseException) -> str:
    text = getattr(error, "message", None)
    return text if isinstance(text, str) and text else str(error) or type(error).__name__


def no_terminal_refusal(tenant: TenantRef, command: str) -> str:
    """`run` or `backfill` with device_code and nobody at a terminal (cron, a pipe)."""
    return (
        f'tenant {tenant.label}: [auth] method = "device_code" needs a person at a terminal to sign in, and '
        f"`fetcher {command}` has none (standard input or error is not a terminal); {app_only_advice()}"
    )


def has_terminal() -> bool:
    """Whether a person can see the prompt and is there to answer it: stdin and stderr are terminals."""
    with contextlib.suppress(ValueError, OSError):
        return sys.stdin is not None and sys.stdin.isatty() and sys.stderr.isatty()
    return False


def refuse_what_cannot_sign_in(config: Config, tenants: Sequence[TenantConfig] | None, command: str) -> None:
    """Refuse before anything starts (no database opened, nothing asked) a sign-in that cannot happen here:
    device_code under cron (no terminal), azure_cli with no `az` on PATH. Both are ConfigError (exit 2).

    `tenants` None: before discovery, when only the partner's own sign-in is known.
    """
    if tenants is None:
        partner = config.partner
        methods = [(TenantRef(partner.tenant_id), partner.auth.method)] if partner else []
    else:
        methods = [(TenantRef.of(t), t.auth.method) for t in tenants]
    waiting = [tenant for tenant, method in methods if method == "device_code"]
    if waiting and not has_terminal():
        raise ConfigError(no_terminal_refusal(waiting[0], command))
    needing_az = [tenant for tenant, method in methods if method == "azure_cli"]
    if needing_az and shutil.which(AZ) is None:
        raise ConfigError(no_az_refusal(needing_az))


AZ = "az"  # as azure-identity's AzureCliCredential finds it (shutil.which)


def no_az_refusal(tenants: Sequence[TenantRef]) -> str:
    """azure_cli with no `az` on PATH, said once for all the tenants that use it, with a command to paste."""
    if len(tenants) == 1:
        who, login = f"tenant {tenants[0].label}: ", f"`az login --tenant {tenants[0].tenant_id}`"
    else:
        who, login = f"{len(tenants)} tenants: ", "`az login --tenant ID` with each one's tenant id"
    return f'{who}{_NO_AZ} ({INSTALL_AZ}) and run {login}, or use method = "device_code"'
