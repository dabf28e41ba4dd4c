"""Graph's paging of `security/secureScores`, sans I/O: `$top`, opaque `$skiptoken`s, which days a page
holds, and the page body around pre-serialized objects.

A skiptoken names the next day to return (sealed with a key and bound to the tenant), not an offset, so a
day that appears between two pages neither repeats nor hides an object.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import orjson

LIST_PATH = "/v1.0/security/secureScores"
PROFILES_PATH = "/v1.0/security/secureScoreControlProfiles"


class BadQuery(ValueError):
    """A query Graph would answer 400 BadRequest."""


@dataclass(frozen=True)
class PageQuery:
    top: int | None
    start: datetime.date | None  # from $skiptoken: the first day this page returns


@dataclass(frozen=True)
class Page:
    days: list[datetime.date]
    next_day: datetime.date | None  # where the next page starts; None: nothing beyond this page


def _query_value(query: Mapping[str, str], name: str) -> str | None:
    # Graph accepts the option with or without its `$`; a doubly encoded `%24` still names it.
    for key in (f"${name}", name, f"%24{name}"):
        if key in query:
            return query[key]
    return None


def _tenant_tag(tenant_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(tenant_id.lower().encode(), digest_size=4).digest(), "big")


def _seal(payload: bytes, key: bytes) -> bytes:
    return hashlib.blake2b(payload, key=key, digest_size=8).digest()


def _mask(data: bytes, mac: bytes, key: bytes) -> bytes:
    # A keystream derived from the seal hides the day and tenant: the token stays opaque, as Graph's are.
    stream = hashlib.blake2b(mac, key=key, digest_size=8, person=b"skiptokn").digest()
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


def encode_position(position: int, tenant_id: str, key: bytes) -> str:
    """An opaque, GUID-shaped token for "continue at `position`", valid for this tenant only."""
    payload = struct.pack(">II", position, _tenant_tag(tenant_id))
    mac = _seal(payload, key)
    return str(uuid.UUID(bytes=mac + _mask(payload, mac, key)))


def decode_position(token: str, tenant_id: str, key: bytes) -> int:
    try:
        raw = uuid.UUID(token).bytes
    except ValueError as error:
        raise BadQuery(f"The skip token '{token}' is not valid.") from error
    mac = raw[:8]
    payload = _mask(raw[8:], mac, key)
    position, tag = struct.unpack(">II", payload)
    if _seal(payload, key) != mac or tag != _tenant_tag(tenant_id):
        raise BadQuery(f"The skip token '{token}' is not valid.")
    return int(position)


def encode_skiptoken(day: datetime.date, tenant_id: str, key: bytes) -> str:
    """A token for "continue at `day`" (secureScores pages by day)."""
    return encode_position(day.toordinal(), tenant_id, key)


def decode_skiptoken(token: str, tenant_id: str, key: bytes) -> datetime.date:
    ordinal = decode_position(token, tenant_id, key)
    try:
        return datetime.date.fromordinal(ordinal)
    except ValueError as error:
        raise BadQuery(f"The skip token '{token}' is not valid.") from error


def parse_top(query: Mapping[str, str]) -> int | None:
    raw_top = _query_value(query, "top")
    if raw_top is None:
        return None
    try:
        top = int(raw_top)
    except ValueError as error:
        raise BadQuery(f"Invalid $top value '{raw_top}'. It must be a non-negative integer.") from error
    if top < 1:
        raise BadQuery(f"Invalid $top value '{raw_top}'. It must be a positive integer.")
    return top


def parse_profiles_query(query: Mapping[str, str], tenant_id: str, key: bytes) -> tuple[int | None, int]:
    """`$top` and the position a `$skiptoken` continues at (0 without one), for the profiles list."""
    raw_token = _query_value(query, "skiptoken")
    return parse_top(query), decode_position(raw_token, tenant_id, key) if raw_token is not None else 0


def profiles_url(origin: str, top: int, skiptoken: str) -> str:
    return f"{origin}{PROFILES_PATH}?$top={top}&$skiptoken={quote(skiptoken)}"


def parse_query(query: Mapping[str, str], tenant_id: str, key: bytes) -> PageQuery:
    raw_token = _query_value(query, "skiptoken")
    start = decode_skiptoken(raw_token, tenant_id, key) if raw_token is not None else None
    return PageQuery(parse_top(query), start)


def select_page(available: Sequence[datetime.date], query: PageQuery, page_size: int) -> Page:
    """The days of one page from `available` (newest first), and where the next page starts.

    As real Graph does, a next page is offered whenever more days exist, even once `$top` is met.
    """
    size = min(query.top, page_size) if query.top is not None else page_size
    remaining = [day for day in available if query.start is None or day <= query.start]
    days = remaining[:size]
    return Page(days, remaining[size] if len(remaining) > size else None)


def list_url(origin: str, top: int, skiptoken: str) -> str:
    return f"{origin}{LIST_PATH}?$top={top}&$skiptoken={quote(skiptoken)}"


def context_url(origin: str, *, entity: bool = False, profiles: bool = False) -> str:
    if profiles:
        return f"{origin}/v1.0/$metadata#security/secureScoreControlProfiles"
    return f"{origin}/v1.0/$metadata#security/secureScores" + ("/$entity" if entity else "")


def page_body(context: str, next_link: str | None, objects: Sequence[bytes]) -> bytes:
    """The list answer, spliced around objects that are already serialized."""
    head = b'{"@odata.context":' + orjson.dumps(context)
    if next_link is not None:
        head += b',"@odata.nextLink":' + orjson.dumps(next_link)
    return b"".join((head, b',"value":[', b",".join(objects), b"]}"))


def entity_body(context: str, obj: bytes) -> bytes:
    """A single-entity answer: the object with `@odata.context` first."""
    return b'{"@odata.context":' + orjson.dumps(context) + b"," + obj[1:]
