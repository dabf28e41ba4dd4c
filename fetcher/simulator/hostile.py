"""Bodies that break careless clients, sans I/O: truncated JSON and the named hostile bodies of
`faults.Hostile`, for list pages and single entities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fetcher.simulator.faults import Hostile
from fetcher.simulator.pages import page_body

DEPTH = 100_000
EVIL_ORIGIN = "https://evil.example.invalid"
_NAN, _OVERFLOW = "\u2063sim-raw-NaN\u2063", "\u2063sim-raw-1e309\u2063"


def truncated(body: bytes) -> bytes:
    """The first half of a body: JSON that ends mid-way."""
    return body[: max(1, len(body) // 2)]


def _raw_numbers(data: bytes) -> bytes:
    # orjson refuses to write NaN or out-of-range numbers, so placeholders are swapped in afterwards.
    quoted_nan, quoted_overflow = orjson.dumps(_NAN), orjson.dumps(_OVERFLOW)
    return data.replace(quoted_nan, b"NaN").replace(quoted_overflow, b"1e309")


def _nested() -> bytes:
    return b"[" * DEPTH + b"]" * DEPTH


def _padded(obj: dict[str, Any], megabytes: float) -> dict[str, Any]:
    size = len(orjson.dumps(obj))
    padding = "A" * max(0, int(megabytes * 1024 * 1024) - size)
    controls = obj.get("controlScores")
    if isinstance(controls, list) and controls and isinstance(controls[0], dict):
        controls[0]["description"] = padding  # a runaway description is the most plausible place
    else:
        obj["padding"] = padding
    return obj


def _with_bad_numbers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first = objects[0]
    first["currentScore"], first["maxScore"] = _NAN, _OVERFLOW
    controls = first.get("controlScores")
    if isinstance(controls, list) and controls:
        controls[0]["score"] = "high"
    if len(objects) > 1:
        objects[1]["currentScore"] = "high"
    return objects


def _without_keys(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in ("id", "azureTenantId", "createdDateTime")}


def hostile_page(
    kind: Hostile, *, context: str, objects: Sequence[bytes], next_link: str | None, megabytes: float
) -> bytes:
    """A list answer with the hostile twist `kind`."""
    parsed: list[Any] = [orjson.loads(obj) for obj in objects] or [{}]
    if kind is Hostile.DEEP:
        return b'{"@odata.context":' + orjson.dumps(context) + b',"value":' + _nested() + b"}"
    if kind is Hostile.FOREIGN_NEXT_LINK:
        evil = f"{EVIL_ORIGIN}/v1.0/security/secureScores?$top=20&$skiptoken=stolen"
        return page_body(context, evil, objects)
    if kind is Hostile.HUGE:
        parsed[0] = _padded(parsed[0], megabytes)
    elif kind is Hostile.NAN:
        parsed = _with_bad_numbers(parsed)
    elif kind is Hostile.MISSING_FIELDS:
        parsed[0] = _without_keys(parsed[0])
    elif kind is Hostile.NOT_OBJECT:
        parsed[0] = "unexpected string where an object belongs"
    return _raw_numbers(page_body(context, next_link, [orjson.dumps(item) for item in parsed]))


def hostile_entity(kind: Hostile, *, context: str, obj: bytes, megabytes: float) -> bytes:
    """A single-entity answer with the hostile twist `kind`."""
    parsed: dict[str, Any] = {"@odata.context": context, **orjson.loads(obj)}
    if kind is Hostile.DEEP:
        return b'{"@odata.context":' + orjson.dumps(context) + b',"controlScores":' + _nested() + b"}"
    if kind is Hostile.NOT_OBJECT:
        return orjson.dumps("unexpected string where an object belongs")
    if kind is Hostile.HUGE:
        parsed = _padded(parsed, megabytes)
    elif kind is Hostile.NAN:
        parsed = _with_bad_numbers([parsed])[0]
    elif kind is Hostile.MISSING_FIELDS:
        parsed = _without_keys(parsed)
    elif kind is Hostile.FOREIGN_NEXT_LINK:
        parsed["@odata.nextLink"] = f"{EVIL_ORIGIN}/v1.0/security/secureScores?$skiptoken=stolen"
    return _raw_numbers(orjson.dumps(parsed))
