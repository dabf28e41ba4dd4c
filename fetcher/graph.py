"""Microsoft Graph's secureScores protocol, without I/O.

What to ask (`list_url`, `item_url`), how to read an answer (`Response` → `ScorePage`, or the
`GraphError` its status means), when to follow `@odata.nextLink` (`Pager`), and the headers that
matter: `Warning` on a 206, `Retry-After` on a 429 or 5xx, and the claims challenge of a 401's
`WWW-Authenticate`. `fetcher.http` does the sending; everything here is plain data in, plain data out.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from fetcher.config import DELEGATED_METHODS, GraphConfig
from fetcher.errors import (
    AuthenticationError,
    BadRequest,
    GraphError,
    InvalidResponse,
    NotFound,
    PermissionDenied,
    ProviderRefused,
    ProviderUnavailable,
    ServerError,
    Throttled,
    UnsafeResponse,
)
from fetcher.heap import heap_blocks
from fetcher.models import ProviderWarning, ScorePage, TenantRef
from fetcher.retry import SERVER_ERROR_STATUSES, parse_retry_after
from fetcher.text import one_line

SECURE_SCORES_PATH = "/security/secureScores"
# orjson parses a document of n bytes in its own 8 MiB buffer while 12 n + 256 bytes fit in it, else in a new
# buffer of about 12 n bytes (its `yyjson` deserializer).
ORJSON_OWN_BUFFER = 8 * 1024 * 1024
PERMISSION = "SecurityEvents.Read.All"
DATA_STATUSES = frozenset({200, 206})
# A page that brings no objects but another link makes no progress; a few are tolerated, then it is a loop.
MAX_EMPTY_PAGES = 3
# After a time-out on a window of `$top` days, the same window is asked for in pages this many times smaller.
NARROWING = 3
_TOP = re.compile(r"([?&](?:\$|%24)top=)(\d+)", re.IGNORECASE)

_WARNING = re.compile(r'^(?P<code>\d{3})\s+(?P<agent>\S+)\s+"(?P<text>(?:[^"\\]|\\.)*)"')
_CLAIMS = re.compile(r'\bclaims\s*=\s*"(?P<claims>[^"]*)"', re.IGNORECASE)
# Graph's words for "this token was issued by another national cloud's Entra ID" (a GCC High or DoD
# tenant reached through the global cloud): 401 InvalidAuthenticationToken, message InvalidCloudInstance.
_OTHER_CLOUD = re.compile(r"InvalidCloudInstance|cloud instance", re.IGNORECASE)
# A provider status in a 206's Warning that is the provider's failure to answer, though a 4xx.
_PROVIDER_TIMEOUTS = frozenset({408, 429})
_PROVIDER_REFUSALS = {
    401: "refused the app's access token",
    403: "denied access to this tenant's Secure Score (is the tenant licensed for it, and the app's "
    "SecurityEvents.Read.All consent granted?)",
    404: "has no Secure Score for this tenant",
}


@dataclass(frozen=True, slots=True)
class Setup:
    """What the advice in an error names: the cloud and endpoints in use (`[graph]`) and the app's
    client id (for the admin-consent link). Errors made without it give the advice without them."""

    graph: GraphConfig
    client_id: str | None = None
    method: str = "client_secret"  # the tenant's [auth] method: a person's sign-in gets a person's advice

    @property
    def delegated(self) -> bool:
        return self.method in DELEGATED_METHODS


# ------------------------------------------------------------------------------------------------ URLs


def list_url(base_url: str, top: int | None, *, path: str = SECURE_SCORES_PATH) -> str:
    """`GET /security/secureScores?$top=n`: the newest `top` days first (another collection by `path`;
    without `$top` when `top` is None)."""
    url = f"{base_url.rstrip('/')}{path}"
    return url if top is None else f"{url}?$top={top}"


def query_top(url: str) -> int | None:
    """The `$top` a list URL asks for (a next link's too: Graph repeats it there), or None."""
    match = _TOP.search(url)
    return int(match.group(2)) if match else None


def with_top(url: str, top: int) -> str:
    """The same URL asking for `top` objects, the rest of it (a `$skiptoken` above all) untouched."""
    return _TOP.sub(lambda m: f"{m.group(1)}{top}", url, count=1)


def item_url(base_url: str, item_id: str, *, path: str = SECURE_SCORES_PATH) -> str:
    """`GET /security/secureScores/{id}`, the id quoted whole (ids hold `_` and could hold `/` or `?`)."""
    return f"{base_url.rstrip('/')}{path}/{quote(item_id, safe='')}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def same_origin(url: str, base_url: str) -> bool:
    """Whether `url` has the scheme, host and port of `base_url`, and no user name or password."""
    try:
        parts = urlsplit(url)
        return parts.username is None and parts.password is None and _origin(url) == _origin(base_url)
    except ValueError:  # a port that is not a number, or out of range
        return False


# ------------------------------------------------------------------------------------------- responses


@dataclass(frozen=True, slots=True)
class Response:
    """What the transport hands back: status, headers (lower-case names, every value) and the body."""

    status: int
    body: bytes
    headers: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def header_values(self, name: str) -> Sequence[str]:
        return self.headers.get(name.lower(), ())


def decode_json(body: bytes, *, tenant: TenantRef, status: int, url: str) -> Any:
    """Parse a 2xx body; orjson refuses NaN, numbers beyond a double and nesting deeper than 1024.

    orjson's buffer for a large body (about 12 bytes a byte) comes from malloc's heap: see `fetcher.heap`."""
    try:
        with heap_blocks(orjson_buffer(len(body))):
            return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidResponse(
            f"tenant {tenant.label}: Graph answered {status} with a body that is not valid JSON ({error})",
            tenant_id=tenant.tenant_id,
            status=status,
            url=url,
            body=body,
        ) from None


def orjson_buffer(size: int) -> int:
    """Bytes of the buffer orjson allocates to parse a document of `size` bytes, with room to spare; 0 when
    it uses its own."""
    need = 12 * size + 256
    return 0 if need < ORJSON_OWN_BUFFER else need + (1 << 16)


def read_page(response: Response, *, tenant: TenantRef, url: str, setup: Setup | None = None) -> ScorePage:
    """A list answer as a `ScorePage`, or the error its status means (`setup`: for the advice in it).

    A `206 Partial Content` without data is an error too: see `empty_partial_error`.
    """
    raise_for_status(response, tenant=tenant, url=url, setup=setup)
    document = decode_json(response.body, tenant=tenant, status=response.status, url=url)
    value = document.get("value") if isinstance(document, dict) else None
    link = document.get("@odata.nextLink") if isinstance(document, dict) else None
    if not isinstance(value, list) or not isinstance(link, str | None):
        raise _invalid(tenant, response, url, "is not a secureScores collection ({value: [...]})")
    warnings = parse_warnings(response.header_values("Warning"))
    if response.status == 206 and not value:
        raise empty_partial_error(warnings, tenant=tenant, url=url)
    return ScorePage(value, warnings, link, response.status, url, holds_no_nul(response.body))


def empty_partial_error(
    warnings: Sequence[ProviderWarning], *, tenant: TenantRef, url: str
) -> ProviderRefused | ProviderUnavailable:
    """What a `206 Partial Content` without data means: Secure Score's one provider did not answer.

    Graph answers `206` with `Warning: 199 - "Microsoft/SecureScore/504/10000"` (vendor, provider,
    the provider's status, its latency in ms) and `{"value": []}` when the provider fails (seen in
    real answers; the 206 and its Warning are documented in Graph's security API overview). A 4xx
    status is the provider refusing: not worth retrying. A 5xx, 408, 429, a status that does not parse
    or no Warning at all is the provider failing or timing out: retried like a server error.
    """
    said = ", ".join(w.text for w in warnings) or "no Warning header"
    head = f"tenant {tenant.label}: Graph answered 206 Partial Content without data (Warning: {said})"
    for warning in warnings:
        status = warning.status_code
        if status is not None and 400 <= status < 500 and status not in _PROVIDER_TIMEOUTS:
            what = _PROVIDER_REFUSALS.get(status, f"refused the request ({status})")
            return ProviderRefused(
                f"{head}: provider {warning.provider or 'SecureScore'} {what}; not retried",
                tenant_id=tenant.tenant_id,
                status=206,
                url=url,
            )
    return ProviderUnavailable(
        f"{head}: Secure Score's provider failed or timed out", tenant_id=tenant.tenant_id, status=206, url=url
    )


def read_item(response: Response, *, tenant: TenantRef, url: str, setup: Setup | None = None) -> ScorePage:
    """A single-object answer as a one-object `ScorePage`, or the error its status means."""
    raise_for_status(response, tenant=tenant, url=url, setup=setup)
    document = decode_json(response.body, tenant=tenant, status=response.status, url=url)
    if not isinstance(document, dict):
        raise _invalid(tenant, response, url, "is not a secureScore object")
    # An entity answer carries `@odata.context`; the objects of a list answer carry no annotations.
    score = {key: value for key, value in document.items() if not key.startswith("@odata.")}
    warnings = parse_warnings(response.header_values("Warning"))
    return ScorePage([score], warnings, None, response.status, url, holds_no_nul(response.body))


def holds_no_nul(body: bytes) -> bool:
    """Whether no string parsed from the JSON `body` can hold a NUL: JSON writes one only as the escape
    `\\u0000`, which `body` then contains (an escaped backslash before `u0000` makes a false alarm, never a
    miss). About a seventh of the cost of writing the page's objects back as JSON (instruction counts)."""
    return b"\\u0000" not in body


def _invalid(tenant: TenantRef, response: Response, url: str, what: str) -> InvalidResponse:
    return InvalidResponse(
        f"tenant {tenant.label}: Graph answered {response.status} with JSON that {what}",
        tenant_id=tenant.tenant_id,
        status=response.status,
        url=url,
        body=response.body,
    )


# ------------------------------------------------------------------------------------- status → error


def raise_for_status(response: Response, *, tenant: TenantRef, url: str, setup: Setup | None = None) -> None:
    """Raise the `GraphError` a non-data status means; 200 and 206 pass."""
    if response.status not in DATA_STATUSES:
        raise error_for_status(response, tenant=tenant, url=url, setup=setup)


def consent_url(authority_host: str, tenant_id: str, client_id: str | None) -> str:
    """The admin-consent link an admin of `tenant_id` opens to grant the app its permissions."""
    return f"{authority_host.rstrip('/')}/{tenant_id}/adminconsent?client_id={client_id or '<client id>'}"


def other_cloud_advice(graph: GraphConfig | None) -> str:
    """What to do about a tenant that lives in another national cloud than the one configured."""
    clouds = '"usgov" for GCC High, "dod" for DoD, "global" for commercial and GCC'
    if graph is None:
        return f"set [graph] cloud to the tenant's cloud ({clouds})"
    return (
        f'the tenant lives in another national cloud than [graph] cloud = "{graph.cloud}" (Graph {graph.base_url}, '
        f"Entra ID {graph.authority_host}): set [graph] cloud to its cloud ({clouds}), in a configuration of "
        "its own if the other tenants stay where they are"
    )


def error_for_status(response: Response, *, tenant: TenantRef, url: str, setup: Setup | None = None) -> GraphError:
    """The exception for an answer that carries no data (a 401 here is the second one: see `fetcher.http`).

    `setup` (the endpoints and app in use) makes the advice exact: the cloud, the admin-consent link.
    """
    status = response.status
    code, detail = graph_error(response.body)
    said = f"{status}{f': {detail}' if detail else ''}"
    if status in (401, 403):
        return _refusal(response, tenant, url, setup, code, said)
    return _failure(response, tenant, url, said)


def _refusal(
    response: Response, tenant: TenantRef, url: str, setup: Setup | None, code: str | None, said: str
) -> GraphError:
    """401 and 403: the token or the permission is refused; the advice says which fix applies."""
    status, label, tid = response.status, tenant.label, tenant.tenant_id
    if status == 401 and _OTHER_CLOUD.search(said):
        return AuthenticationError(
            f"tenant {label}: Graph refused the token as issued by another cloud ({said}); "
            f"{other_cloud_advice(setup.graph if setup else None)}",
            tenant_id=tid,
            status=status,
            url=url,
            code=code,
        )
    if status == 401 and setup is not None and setup.delegated:
        again = f"run `az login --tenant {tid}`" if setup.method == "azure_cli" else "sign in again"
        return AuthenticationError(
            f"tenant {label}: Graph refused the signed-in user's freshly issued access token ({said}); the "
            f"session may have been revoked or blocked by a Conditional Access policy: {again} and try again",
            tenant_id=tid,
            status=status,
            url=url,
            code=code,
        )
    if status == 401:
        return AuthenticationError(
            f"tenant {label}: Graph refused a freshly issued access token ({said}); check that the app is "
            f"enabled in tenant {tid} and that no Conditional Access policy blocks it",
            tenant_id=tid,
            status=status,
            url=url,
            code=code,
        )
    if setup is not None and setup.delegated:
        fix = signed_in_user_advice(said, tid, setup)
        return PermissionDenied(
            f"tenant {label}: Graph denied the signed-in user access ({said}): {fix}",
            tenant_id=tid,
            status=status,
            url=url,
        )
    link = f" ({consent_url(setup.graph.authority_host, tid, setup.client_id)})" if setup else ""
    return PermissionDenied(
        f"tenant {label}: Graph denied access ({said}): the app lacks the application permission "
        f"{PERMISSION} with admin consent in tenant {tid}; add it under API permissions and have an "
        f"admin of {tid} grant consent{link}",
        tenant_id=tid,
        status=status,
        url=url,
    )


def signed_in_user_advice(said: str, tid: str, setup: Setup) -> str:
    """What a person signed in with device_code or azure_cli does about Graph's 403."""
    if "scope" in said.lower():
        if setup.method == "azure_cli":
            return (
                f"the Azure CLI's token lacks the delegated permission {PERMISSION}; use [auth] method = "
                '"device_code", which asks for it'
            )
        return (
            f"the sign-in lacks the delegated permission {PERMISSION}: an admin of {tid} grants it to the public "
            f"client {setup.client_id} ({consent_url(setup.graph.authority_host, tid, setup.client_id)})"
        )
    return f"the user needs the Security Reader role (or higher) in tenant {tid}; sign in as a user who has it"


def _failure(response: Response, tenant: TenantRef, url: str, said: str) -> GraphError:
    """Every other status: a bad request, a missing day, throttling, a server error."""
    status, label, tid = response.status, tenant.label, tenant.tenant_id
    retry_after = parse_retry_after(response.header("Retry-After"))
    if status == 400:
        return BadRequest(
            f"tenant {label}: Graph rejected the request ({said}) for {url}; please report this with the URL",
            tenant_id=tid,
            status=status,
            url=url,
        )
    if status == 404:
        return NotFound(
            f"tenant {label}: Graph has no such secureScore ({said}) at {url}", tenant_id=tid, status=status, url=url
        )
    if status == 429:
        wait = f", asked to wait {retry_after:g} s" if retry_after is not None else ""
        return Throttled(
            f"tenant {label}: Graph throttled the request ({said}){wait}",
            tenant_id=tid,
            status=status,
            url=url,
            retry_after=retry_after,
        )
    if status in SERVER_ERROR_STATUSES:
        return ServerError(
            f"tenant {label}: Graph failed ({said})", tenant_id=tid, status=status, url=url, retry_after=retry_after
        )
    return GraphError(
        f"tenant {label}: Graph answered an unexpected {said} for {url}", tenant_id=tid, status=status, url=url
    )


def graph_error(body: bytes) -> tuple[str | None, str]:
    """Graph's `{"error": {"code", "message"}}` as (code, one short line); other bodies as a short excerpt."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, one_line(body.decode("utf-8", "replace"), limit=80)
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return None, ""
    code, message = error.get("code"), error.get("message")
    code = one_line(code, limit=80) if isinstance(code, str) and code.strip() else None
    message = one_line(message) if isinstance(message, str) else ""
    return code, one_line(": ".join(part for part in (code, message) if part))


# --------------------------------------------------------------------------------------------- headers


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header on commas outside double quotes (quotes may hold `\\"` and commas)."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def parse_warnings(values: Iterable[str]) -> tuple[ProviderWarning, ...]:
    """Every entry of every `Warning` header: `199 - "{Vendor}/{Provider}/{StatusCode}/{LatencyInMs}"`."""
    return tuple(parse_warning(entry) for value in values for entry in split_header_list(value))


def parse_warning(entry: str) -> ProviderWarning:
    """One warning entry; anything unparsable is kept whole as the text, with empty vendor and provider."""
    match = _WARNING.match(entry)
    if match is None:
        return ProviderWarning("", "", None, None, one_line(entry))
    text = re.sub(r"\\(.)", r"\1", match.group("text"))
    parts = text.split("/")
    if len(parts) < 4:
        return ProviderWarning(parts[0], "/".join(parts[1:]), None, None, one_line(text))
    return ProviderWarning(parts[0], "/".join(parts[1:-2]), _int(parts[-2]), _int(parts[-1]), one_line(text))


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_claims_challenge(values: Iterable[str]) -> str | None:
    """The claims a 401's `WWW-Authenticate` asks for (base64 JSON in `claims="..."`), decoded; else None."""
    for value in values:
        match = _CLAIMS.search(value)
        if match is None:
            continue
        encoded = match.group("claims").strip()
        try:
            decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
            if isinstance(orjson.loads(decoded), dict):
                return decoded
        except (binascii.Error, ValueError):
            continue
    return None


# --------------------------------------------------------------------------------------------- paging


@dataclass(slots=True)
class Pager:
    """Follows `@odata.nextLink` for one tenant's list until `days` objects have arrived (with `days`
    None, until Graph sends no next link).

    Graph sends a next link even when `$top` was met, so the count decides, not the link. A link to any
    other scheme, host or port than `base_url` is refused before anything (a token above all) is sent there.
    """

    tenant: TenantRef
    base_url: str
    days: int | None
    path: str = SECURE_SCORES_PATH
    received: int = 0
    empty_pages: int = 0
    seen: set[str] = field(default_factory=set)
    page_size: int | None = None  # set by `narrow`: the most objects any later request asks for

    def __post_init__(self) -> None:
        self.seen.add(self.first_url)

    @property
    def first_url(self) -> str:
        return list_url(self.base_url, self.days, path=self.path)

    @property
    def done(self) -> bool:
        return self.days is not None and self.received >= self.days

    def advance(self, page: ScorePage) -> tuple[ScorePage, str | None]:
        """The page trimmed to what is still wanted, and the URL to ask next (None: stop)."""
        wanted = len(page.objects) if self.days is None else self.days - self.received
        if len(page.objects) > wanted:
            page = dataclasses.replace(page, objects=page.objects[:wanted])
        self.received += len(page.objects)
        self.empty_pages = 0 if page.objects else self.empty_pages + 1
        if self.done or page.next_link is None:
            return page, None
        return page, self._check(page.next_link)

    def narrow(self, url: str) -> str | None:
        """`url` asking for a third of its `$top` (at least 1), after it timed out; None when it cannot.

        A `$top=90` answer is several megabytes, and a tenant whose answer outlasts `timeout_seconds` would
        fail on every run if the same window were asked again. A narrower window arrives in more pages
        (Graph's next link continues past `$top`), and every later request of this listing asks for no
        more than the narrower size either: the pages already received are kept, none is asked twice.
        """
        top = query_top(url)
        if top is None or top <= 1:
            return None
        self.page_size = max(1, top // NARROWING)
        return with_top(url, self.page_size)

    def _check(self, link: str) -> str:
        if not same_origin(link, self.base_url):
            origin = "{}://{}:{}".format(*_origin(self.base_url))
            raise self._unsafe(link, f"points outside {origin}; it was not followed and no token was sent")
        if link in self.seen:
            raise self._unsafe(link, "repeats a link already followed")
        if self.empty_pages > MAX_EMPTY_PAGES:
            raise self._unsafe(link, f"follows {self.empty_pages} empty pages in a row")
        self.seen.add(link)
        top = query_top(link)
        if self.page_size is not None and top is not None and top > self.page_size:
            link = with_top(link, self.page_size)
            self.seen.add(link)
        return link

    def _unsafe(self, link: str, why: str) -> UnsafeResponse:
        return UnsafeResponse(
            f"tenant {self.tenant.label}: Graph's @odata.nextLink {one_line(link, limit=120)} {why}",
            tenant_id=self.tenant.tenant_id,
            url=link,
        )
