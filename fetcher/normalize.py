"""secureScore JSON objects to typed rows. Pure: no I/O, no clock, no globals.

Real payloads differ from the documentation and from day to day, so every field is read
defensively: a value of the wrong type or that does not parse leaves its column null and is kept,
as received, in the row's `extra`; properties without a column of their own go to `extra` too.
Nulls carry no information and are left out of `extra`, which lets the store merge a thin fetch
into a fuller one without erasing anything. Only an object without `id`, `azureTenantId` or
`createdDateTime`, or one for another tenant, is refused, with a `PayloadError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from fetcher.errors import MissingField, PayloadError, WrongTenant
from fetcher.models import ComparativeRow, ControlScoreRow, FetchContext, JSONObject, ScoreDay, ScoreRow

T = TypeVar("T")

SCORE_COLUMNS = frozenset({
    "id", "azureTenantId", "createdDateTime", "currentScore", "maxScore", "activeUserCount",
    "licensedUserCount", "enabledServices", "vendorInformation", "averageComparativeScores", "controlScores",
})
VENDOR_COLUMNS = {"vendor": "vendor", "provider": "provider", "providerVersion": "provider_version",
                  "subProvider": "sub_provider"}
COMPARATIVE_COLUMNS = frozenset({"basis", "averageScore", "SeatSizeRangeLowerValue", "SeatSizeRangeUpperValue"})
CONTROL_COLUMNS = frozenset({
    "controlName", "controlCategory", "description", "score", "scoreInPercentage", "implementationStatus",
    "lastSynced", "on", "count", "total",
})


class _Unparsed:
    """Marks a value that did not parse; the caller keeps the original in `extra`."""


UNPARSED = _Unparsed()


# ------------------------------------------------------------------------------------ scalar parsers


def as_float(value: Any) -> float | _Unparsed | None:
    """A finite number; numeric strings are accepted, booleans are not."""
    if value is None:
        return None
    if isinstance(value, bool):
        return UNPARSED
    if isinstance(value, int):
        if abs(value) > 2**1023:
            return UNPARSED
        number = float(value)
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return UNPARSED
    else:
        return UNPARSED
    return number if math.isfinite(number) else UNPARSED


def as_int(value: Any) -> int | _Unparsed | None:
    """A whole number, from an int, an integral float or a numeric string such as "3"."""
    number = as_float(value)
    if number is None or isinstance(number, _Unparsed):
        return number
    if not number.is_integer() or abs(number) >= 2**63:
        return UNPARSED
    return int(number)


def as_str(value: Any) -> str | _Unparsed | None:
    if value is None or isinstance(value, str):
        return value
    return UNPARSED


def as_bool(value: Any) -> bool | _Unparsed | None:
    """Graph sends `on` as the strings "true" and "false"; accept real booleans too."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return UNPARSED


def as_datetime(value: Any) -> datetime | _Unparsed | None:
    """An ISO 8601 time as timezone-aware UTC; a time without an offset is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        return UNPARSED
    try:
        parsed = datetime.fromisoformat(value.strip())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range by its offset
        return UNPARSED


def as_str_list(value: Any) -> list[str] | _Unparsed | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return UNPARSED


class _Reader:
    """Reads typed fields off one JSON object, collecting what did not parse into `extra`."""

    def __init__(self, source: Mapping[str, Any], columns: frozenset[str]) -> None:
        self.source = source
        self.extra: JSONObject = {k: v for k, v in source.items() if k not in columns and v is not None}

    def get(self, key: str, parse: Callable[[Any], T | _Unparsed | None]) -> T | None:
        value = self.source.get(key)
        parsed = parse(value)
        if isinstance(parsed, _Unparsed):
            self.extra[key] = value
            return None
        return parsed


# ----------------------------------------------------------------------------------------- the object


def validate_identity(obj: Any, expected_tenant: str | None) -> tuple[str, str, datetime]:
    """The object's id, tenant and creation time, or a `PayloadError` naming what is wrong."""
    if not isinstance(obj, dict):
        raise PayloadError(f"secureScore is not a JSON object but {type(obj).__name__}",
                           tenant_id=expected_tenant)
    score_id = obj.get("id")
    tenant = obj.get("azureTenantId")
    created = as_datetime(obj.get("createdDateTime"))
    if not isinstance(score_id, str) or not score_id.strip():
        raise MissingField("secureScore has no usable `id`", tenant_id=expected_tenant, field="id")
    if not isinstance(tenant, str) or not tenant.strip():
        raise MissingField(f"secureScore {score_id} has no usable `azureTenantId`",
                           tenant_id=expected_tenant, field="azureTenantId")
    if not isinstance(created, datetime):
        raise MissingField(f"secureScore {score_id} has no usable `createdDateTime`",
                           tenant_id=expected_tenant, field="createdDateTime")
    tenant = tenant.strip().lower()
    if expected_tenant is not None and tenant != expected_tenant.lower():
        raise WrongTenant(f"secureScore {score_id} belongs to tenant {tenant}, not to {expected_tenant}, "
                          "which was asked", tenant_id=expected_tenant, field="azureTenantId")
    return score_id, tenant, created


def normalize_score(obj: Any, context: FetchContext, *, expected_tenant: str | None = None) -> ScoreDay:
    """One secureScore object as the rows of one tenant-day."""
    score_id, tenant, created = validate_identity(obj, expected_tenant)
    day = created.date()
    read = _Reader(obj, SCORE_COLUMNS)
    vendor = _vendor(obj.get("vendorInformation"), read.extra)
    comparatives = _comparatives(obj.get("averageComparativeScores"), tenant, day, read.extra)
    controls = _controls(obj.get("controlScores"), tenant, day, read.extra)
    score = ScoreRow(
        tenant_id=tenant,
        score_date=day,
        id=score_id,
        created_at=created,
        current_score=read.get("currentScore", as_float),
        max_score=read.get("maxScore", as_float),
        active_user_count=read.get("activeUserCount", as_int),
        licensed_user_count=read.get("licensedUserCount", as_int),
        enabled_services=read.get("enabledServices", as_str_list),
        vendor=vendor.get("vendor"),
        provider=vendor.get("provider"),
        provider_version=vendor.get("provider_version"),
        sub_provider=vendor.get("sub_provider"),
        partial=context.partial,
        warning=context.warning_text,
        extra=read.extra,
        fetched_at=context.fetched_at,
        run_id=context.run_id,
    )
    return ScoreDay(score, comparatives, controls)


def _vendor(value: Any, extra: JSONObject) -> dict[str, str | None]:
    """`vendorInformation` into its four columns; anything else in it stays in `extra`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        extra["vendorInformation"] = value
        return {}
    read = _Reader(value, frozenset(VENDOR_COLUMNS))
    columns = {column: read.get(key, as_str) for key, column in VENDOR_COLUMNS.items()}
    if read.extra:
        extra["vendorInformation"] = read.extra
    return columns


def _items(value: Any, key: str, name_key: str, extra: JSONObject) -> list[tuple[str, dict[str, Any]]]:
    """The named objects of a list; items without a usable name, or repeating one, go to `extra`."""
    if value is None:
        return []
    if not isinstance(value, list):
        extra[key] = value
        return []
    named: dict[str, dict[str, Any]] = {}
    unusable: list[Any] = []
    for item in value:
        name = item.get(name_key) if isinstance(item, dict) else None
        if isinstance(name, str) and name.strip() and name.strip() not in named:
            named[name.strip()] = item
        else:
            unusable.append(item)
    if unusable:
        extra[key] = unusable
    return list(named.items())


def _comparatives(value: Any, tenant: str, day: date, extra: JSONObject) -> tuple[ComparativeRow, ...]:
    rows = []
    for basis, item in _items(value, "averageComparativeScores", "basis", extra):
        read = _Reader(item, COMPARATIVE_COLUMNS)
        rows.append(ComparativeRow(
            tenant_id=tenant,
            score_date=day,
            basis=basis,
            average_score=read.get("averageScore", as_float),
            seat_size_lower=read.get("SeatSizeRangeLowerValue", as_int),
            seat_size_upper=read.get("SeatSizeRangeUpperValue", as_int),
            extra=read.extra,
        ))
    return tuple(rows)


def _controls(value: Any, tenant: str, day: date, extra: JSONObject) -> tuple[ControlScoreRow, ...]:
    rows = []
    for name, item in _items(value, "controlScores", "controlName", extra):
        read = _Reader(item, CONTROL_COLUMNS)
        rows.append(ControlScoreRow(
            tenant_id=tenant,
            score_date=day,
            control_name=name,
            score=read.get("score", as_float),
            score_in_percentage=read.get("scoreInPercentage", as_float),
            implementation_status=read.get("implementationStatus", as_str),
            last_synced=read.get("lastSynced", as_datetime),
            is_on=read.get("on", as_bool),
            count=read.get("count", as_int),
            total=read.get("total", as_int),
            extra=read.extra,
            control_category=read.get("controlCategory", as_str),
            description=read.get("description", as_str),
        ))
    return tuple(rows)
