"""secureScore JSON objects to typed rows. Pure: no I/O, no clock, no globals.

Real payloads differ from the documentation and from day to day, so every field is read
defensively: a value of the wrong type or that does not parse leaves its column null and is kept,
as received, in the row's `extra`; properties without a column of their own go to `extra` too.
Nulls carry no information and are left out of `extra`, which lets the store merge a thin fetch
into a fuller one without erasing anything. A figure that parses but cannot be true (a placeholder
such as a negative average, see `PLACEHOLDER RULES` below) is treated the same way: its column is
null and the value is kept as received in `extra`. Only an object without `id`, `azureTenantId` or
`createdDateTime`, or one for another tenant, is refused, with a `PayloadError`.

secureScoreControlProfile objects follow the same rules (`normalize_profile`): only one without `id` or
`azureTenantId`, or for another tenant, is refused. Their `controlStateUpdates` name people
(`updatedBy`, `assignedTo`); `pseudonymize_people` replaces those with a keyed hash before anything is
stored or archived, when the configuration says so.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, NoReturn

from fetcher.errors import MissingField, PayloadError, WrongTenant
from fetcher.models import (
    ComparativeRow,
    ControlProfile,
    ControlProfileRow,
    ControlScoreRow,
    FetchContext,
    JSONObject,
    ScoreDay,
    ScoreRow,
    StateUpdateRow,
)


class _Unparsed:
    """Marks a value that did not parse; the caller keeps the original in `extra`."""


UNPARSED = _Unparsed()


class _NoExtra(dict[str, Any]):
    """An empty dict that refuses to change: the one `extra` shared by every object that has none."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("NO_EXTRA is shared by many rows and cannot change; copy it with dict()")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _read_only


# Rather than a new dict for each of the ~230 controls of every day: 64 bytes and an allocation a row.
NO_EXTRA: JSONObject = _NoExtra()


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


# Below 2**53 an integer goes through a float unchanged, so `as_int` may take it without one.
_EXACT_IN_FLOAT = 2**53


def as_int(value: Any) -> int | _Unparsed | None:
    """A whole number, from an int, an integral float or a numeric string such as "3"."""
    kind = type(value)
    if kind is str or kind is int:
        # The usual case (Graph sends counts as strings such as "8226"), without the float: the same result
        # where a float is exact; anything else ("3.0", "1e3", a huge number) takes the float's way below.
        try:
            whole = int(value)
        except ValueError:
            pass
        else:
            if -_EXACT_IN_FLOAT < whole < _EXACT_IN_FLOAT:
                return whole
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
    if value == "false":  # as Graph sends it: no need to strip or fold
        return False
    if value == "true":
        return True
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
        if parsed.tzinfo is UTC:  # Graph's "...Z": already what is wanted
            return parsed
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range by its offset
        return UNPARSED


def as_str_list(value: Any) -> list[str] | _Unparsed | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return UNPARSED


Parser = Callable[[Any], Any]
# A field of a JSON object: the position of its column, the type its value usually has (taken as
# it is, without a call), and the parser for anything else.
Field = tuple[int, type | None, Parser]


class Fields(dict[str, Field]):
    """The fields of a JSON object by key; `width` columns, as a key may have aliases."""

    width: int = 0


def _fields(
    *specs: tuple[str, type | None, Parser],
    aliases: Mapping[str, str] | None = None,
    positions: Sequence[int] | None = None,
) -> Fields:
    """`positions`: where each spec's value goes in the list `read_fields` fills (by default, the specs' order)."""
    places = range(len(specs)) if positions is None else positions
    fields = Fields({key: (index, usual, parse) for index, (key, usual, parse) in zip(places, specs, strict=True)})
    fields.width = max(places, default=-1) + 1
    for alias, key in (aliases or {}).items():
        fields[alias] = fields[key]
    return fields


def read_fields(
    source: Mapping[str, Any], fields: Fields, skip: frozenset[str], values: list[Any] | None = None
) -> tuple[list[Any], JSONObject]:
    """One pass over an object: typed values in column order, and its `extra`.

    Keys in `skip` are read by the caller. A value that does not parse is kept in `extra` as received;
    an object with nothing extra gets the shared, read-only `NO_EXTRA`. `values`: the list to fill, at the
    fields' positions (the caller's row, its other places filled already); by default a new one, of nulls.
    The usual case takes no call. A day's ~230 controls are read by the same loop written out in `_controls`.
    """
    if values is None:
        values = [None] * fields.width
    extra: JSONObject | None = None
    known = fields.get
    for key, value in source.items():
        if value is None:  # nulls carry nothing, known or not: no lookup (older days send `description: null`)
            continue
        field = known(key)
        if field is None:
            if key not in skip:
                if extra is None:
                    extra = {}
                extra[key] = value
            continue
        index, usual, parse = field
        # The usual type, taken as it is; a float only if finite (inf - inf and nan - nan are nan).
        if type(value) is usual and (usual is not float or value - value == 0.0):  # type: ignore[operator]
            values[index] = value
            continue
        parsed = parse(value)
        if parsed is UNPARSED:
            if extra is None:
                extra = {}
            extra[key] = value
        else:
            values[index] = parsed
    return values, NO_EXTRA if extra is None else extra


SCORE_FIELDS = _fields(
    ("currentScore", float, as_float),
    ("maxScore", float, as_float),
    ("activeUserCount", None, as_int),
    ("licensedUserCount", None, as_int),
    ("enabledServices", None, as_str_list),
)
SCORE_SKIP = frozenset(
    {"id", "azureTenantId", "createdDateTime", "vendorInformation", "averageComparativeScores", "controlScores"}
)
VENDOR_FIELDS = _fields(
    ("vendor", str, as_str),
    ("provider", str, as_str),
    ("providerVersion", str, as_str),
    ("subProvider", str, as_str),
)
COMPARATIVE_FIELDS = _fields(
    ("averageScore", float, as_float),
    ("SeatSizeRangeLowerValue", None, as_int),
    ("SeatSizeRangeUpperValue", None, as_int),
    # Graph has sent the seat range under both casings (strings as "SeatSize…", numbers as "seatSize…").
    aliases={
        "seatSizeRangeLowerValue": "SeatSizeRangeLowerValue",
        "seatSizeRangeUpperValue": "SeatSizeRangeUpperValue",
    },
)
# A control's values go straight to their places in its `ControlScoreRow` (`_controls`).
_CONTROL_COLUMNS = ControlScoreRow._fields
CONTROL_FIELDS = _fields(
    ("score", float, as_float),
    ("scoreInPercentage", float, as_float),
    ("implementationStatus", str, as_str),
    ("lastSynced", None, as_datetime),
    ("on", None, as_bool),
    ("count", None, as_int),
    ("total", None, as_int),
    ("controlCategory", str, as_str),
    ("description", str, as_str),
    positions=[
        _CONTROL_COLUMNS.index(column)
        for column in (
            "score",
            "score_in_percentage",
            "implementation_status",
            "last_synced",
            "is_on",
            "count",
            "total",
            "control_category",
            "description",
        )
    ],
)
_CONTROL_EXTRA = _CONTROL_COLUMNS.index("extra")
NAME_ONLY = frozenset({"controlName"})

# ------------------------------------------------------------------------------ placeholder rules
# Graph sometimes fills a figure it does not have with a placeholder instead of leaving it out: for
# weeks the TotalSeats and IndustryTypes comparatives came with every number set to -1 (issue 12).
# A placeholder is "no value": its column is null and the value stays, as received, in `extra`, so
# the views fall back to the newest day with a real value and nothing is lost. The rules, one per
# figure that has a column (figures without a column are already kept as received in `extra`):
# - averageScore: a percentage, so outside 0..100 is a placeholder;
# - SeatSizeRangeLowerValue / UpperValue: a negative seat bound is a placeholder;
# - activeUserCount, licensedUserCount: negative is a placeholder (0 is real: unlicensed tenants);
# - currentScore: negative is a placeholder; maxScore: 0 or negative means the day has no score
#   yet (no control applies), so both currentScore and maxScore are placeholders then;
# - control score: negative; scoreInPercentage: outside 0..100; count, total: negative;
#   lastSynced: before 2000 (.NET's DateTime.MinValue, 0001-01-01, stands for "never").
OLDEST_REAL_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def _is_percentage(value: float) -> bool:
    return 0.0 <= value <= 100.0


def _not_negative(value: float) -> bool:
    return value >= 0


def _is_real_time(value: datetime) -> bool:
    return value >= OLDEST_REAL_TIME


# (column position, the JSON keys that fill it, whether a parsed value is real)
Rule = tuple[int, tuple[str, ...], Callable[[Any], bool]]
COMPARATIVE_RULES: tuple[Rule, ...] = (
    (0, ("averageScore",), _is_percentage),
    (1, ("SeatSizeRangeLowerValue", "seatSizeRangeLowerValue"), _not_negative),
    (2, ("SeatSizeRangeUpperValue", "seatSizeRangeUpperValue"), _not_negative),
)
CONTROL_RULES: tuple[Rule, ...] = tuple(
    (CONTROL_FIELDS[key][0], (key,), real)
    for key, real in (
        ("score", _not_negative),
        ("scoreInPercentage", _is_percentage),
        ("lastSynced", _is_real_time),
        ("count", _not_negative),
        ("total", _not_negative),
    )
)  # positions in the control's row
SCORE_RULES: tuple[Rule, ...] = (
    (0, ("currentScore",), _not_negative),
    (2, ("activeUserCount",), _not_negative),
    (3, ("licensedUserCount",), _not_negative),
)


def drop_placeholders(
    source: Mapping[str, Any], values: list[Any], extra: JSONObject, rules: Sequence[Rule]
) -> JSONObject:
    """Null every value a rule calls a placeholder and keep it, as received, in `extra`.

    Returns `extra`, copied first if it is the shared `NO_EXTRA` and something is added to it.
    """
    for index, keys, real in rules:
        value = values[index]
        if value is None or real(value):
            continue
        values[index] = None
        if extra is NO_EXTRA:
            extra = {}
        key = next((k for k in keys if source.get(k) is not None), keys[0])
        extra[key] = source.get(key)
    return extra


BASIS_ONLY = frozenset({"basis"})
NOTHING = frozenset[str]()


# ----------------------------------------------------------------------------------------- the object


def validate_identity(obj: Any, expected_tenant: str | None) -> tuple[str, str, datetime]:
    """The object's id, tenant and creation time, or a `PayloadError` naming what is wrong."""
    if not isinstance(obj, dict):
        raise PayloadError(f"secureScore is not a JSON object but {type(obj).__name__}", tenant_id=expected_tenant)
    score_id = obj.get("id")
    tenant = obj.get("azureTenantId")
    created = as_datetime(obj.get("createdDateTime"))
    if not isinstance(score_id, str) or not score_id.strip():
        raise MissingField("secureScore has no usable `id`", tenant_id=expected_tenant, field="id")
    if not isinstance(tenant, str) or not tenant.strip():
        raise MissingField(
            f"secureScore {score_id} has no usable `azureTenantId`", tenant_id=expected_tenant, field="azureTenantId"
        )
    if not isinstance(created, datetime):
        raise MissingField(
            f"secureScore {score_id} has no usable `createdDateTime`",
            tenant_id=expected_tenant,
            field="createdDateTime",
        )
    tenant = tenant.strip().lower()
    if expected_tenant is not None and tenant != expected_tenant.lower():
        raise WrongTenant(
            f"secureScore {score_id} belongs to tenant {tenant}, not to {expected_tenant}, which was asked",
            tenant_id=expected_tenant,
            field="azureTenantId",
        )
    return score_id, tenant, created


def normalize_score(obj: Any, context: FetchContext, *, expected_tenant: str | None = None) -> ScoreDay:
    """One secureScore object as the rows of one tenant-day."""
    score_id, tenant, created = validate_identity(obj, expected_tenant)
    day = created.date()
    values, read = read_fields(obj, SCORE_FIELDS, SCORE_SKIP)
    extra = dict(read)  # its own: what the lists below cannot use is added to it
    _score_placeholders(obj, values, extra)
    current, maximum, active, licensed, services = values
    vendor, provider, version, sub_provider = _vendor(obj.get("vendorInformation"), extra)
    comparatives = _comparatives(obj.get("averageComparativeScores"), tenant, day, extra)
    controls = _controls(obj.get("controlScores"), tenant, day, extra)
    score = ScoreRow(
        tenant,
        day,
        score_id,
        created,
        current,
        maximum,
        active,
        licensed,
        services,
        vendor,
        provider,
        version,
        sub_provider,
        context.partial,
        context.warning_text,
        extra,
        context.fetched_at,
        context.run_id,
        id_mismatch(score_id, tenant, day),
    )
    return ScoreDay(score, comparatives, controls)


def nesting(value: Any) -> int:
    """How deep a JSON value nests: 0 for a scalar, 1 + its deepest member's for an array or object.
    Without recursion: Graph's answers may nest 1,024 levels (orjson's limit), beyond Python's stack."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            members: Iterable[Any] = item.values()
        elif isinstance(item, list):
            members = item
        else:
            continue
        deepest = max(deepest, level)
        pending.extend((member, level + 1) for member in members)
    return deepest


def score_nesting_bound(day: ScoreDay) -> int:
    """At least how deep the secureScore object `day` was made from nests (`nesting`), from its rows alone.

    `normalize_score` keeps every value of the object either in a column (a scalar, or a list of strings:
    with the object and its list, 3 levels at most) or, as received, in an `extra`: the score's, whose
    members sat in the object as they sit in it, or a comparative's or control's, whose members sat three
    levels in (the object, its list, the item). So the object nests at most as deep as the deepest of
    3, the score's `extra` and 2 + each other `extra`. For `fetcher.admit`, which then need not write the
    object as JSON to know it can be written.
    """
    bound = max(3, nesting(day.score.extra))
    for rows in (day.comparatives, day.controls):
        for row in rows:
            if row.extra is not NO_EXTRA:
                bound = max(bound, 2 + nesting(row.extra))
    return bound


def id_mismatch(score_id: str, tenant: str, day: date) -> bool:
    """Whether Graph's id fails to name its tenant and day: ids are `{azureTenantId}_{yyyy-mm-dd}`.

    Graph has answered an object whose id named another day than its `createdDateTime` (issue 12);
    the day is stored under `createdDateTime`'s date, as every day is, and flagged.
    """
    return score_id.strip().lower() != f"{tenant}_{day.isoformat()}"


def _score_placeholders(obj: Mapping[str, Any], values: list[Any], extra: JSONObject) -> None:
    """The score's placeholder rules; a maximum of 0 or less takes the current score with it."""
    if values[1] is not None and values[1] <= 0:
        for index, key in ((0, "currentScore"), (1, "maxScore")):
            if values[index] is not None:
                values[index] = None
                extra[key] = obj[key]
    drop_placeholders(obj, values, extra, SCORE_RULES)


def _vendor(value: Any, extra: JSONObject) -> list[Any]:
    """`vendorInformation` into its four columns; anything else in it stays in `extra`."""
    if value is None:
        return [None] * len(VENDOR_FIELDS)
    if not isinstance(value, dict):
        extra["vendorInformation"] = value
        return [None] * len(VENDOR_FIELDS)
    values, rest = read_fields(value, VENDOR_FIELDS, NOTHING)
    if rest:
        extra["vendorInformation"] = rest
    return values


def _items(value: Any, key: str, name_key: str, extra: JSONObject) -> dict[str, dict[str, Any]]:
    """The named objects of a list, by name; items without a usable name, or repeating one, go to `extra`."""
    if value is None:
        return {}
    if not isinstance(value, list):
        extra[key] = value
        return {}
    named: dict[str, dict[str, Any]] = {}
    unusable: list[Any] = []
    for item in value:
        name = item.get(name_key) if type(item) is dict else None
        if type(name) is str:
            name = name.strip()  # the usual name, with nothing to strip, comes back as it is (no copy)
            if name and name not in named:
                named[name] = item
                continue
        unusable.append(item)
    if unusable:
        extra[key] = unusable
    return named


def _comparatives(value: Any, tenant: str, day: date, extra: JSONObject) -> tuple[ComparativeRow, ...]:
    rows = []
    for basis, item in _items(value, "averageComparativeScores", "basis", extra).items():
        values, rest = read_fields(item, COMPARATIVE_FIELDS, BASIS_ONLY)
        rest = drop_placeholders(item, values, rest, COMPARATIVE_RULES)
        average, lower, upper = values
        rows.append(ComparativeRow(tenant, day, basis, average, lower, upper, rest))
    return tuple(rows)


def _controls(value: Any, tenant: str, day: date, extra: JSONObject) -> tuple[ControlScoreRow, ...]:
    """The rows of `controlScores`, as `_items` and `read_fields` would read them (`_control_rows`)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        extra["controlScores"] = value
        return ()
    rows, unusable = _control_rows(value, tenant, day)
    if unusable:
        extra["controlScores"] = unusable
    return rows


def _control_rows(value: list[Any], tenant: str, day: date) -> tuple[tuple[ControlScoreRow, ...], list[Any]]:
    """The rows of the named controls, and the items without a usable name or repeating one.

    `_items` and `read_fields` written out in one loop, with the placeholder rules inline (tests/test_normalize.py
    holds the rows to theirs), as this runs ~230 times a day: no call in the usual case, no dict of the items
    by name and no second pass over them. Each control's values are read into its row's list in place, which
    becomes the row (the named tuple made as the tuple it is: its __new__ is a Python function)."""
    rows = []
    taken: set[str] = set()
    unusable: list[Any] = []
    known, new_row, rules, position = CONTROL_FIELDS.get, tuple.__new__, CONTROL_RULES, _CONTROL_EXTRA
    for item in value:
        name = item.get("controlName") if type(item) is dict else None
        # The usual name, with nothing to strip, comes back as it is (no copy).
        if type(name) is not str or not (name := name.strip()) or name in taken:
            unusable.append(item)
            continue
        taken.add(name)
        row: list[Any] = [tenant, day, name, None, None, None, None, None, None, None, None, None, None]
        rest: JSONObject | None = None
        for key, received in item.items():  # as `read_fields`, the control's name skipped
            if received is None:
                continue
            field = known(key)
            if field is not None:
                index, usual, parse = field
                if type(received) is usual and (usual is not float or received - received == 0.0):  # type: ignore[operator]
                    row[index] = received
                    continue
                parsed = parse(received)
                if parsed is not UNPARSED:
                    row[index] = parsed
                    continue
            elif key == "controlName":
                continue
            rest = _kept(rest, key, received)
        kept = NO_EXTRA if rest is None else rest
        # CONTROL_RULES inline first, by the places of score, scoreInPercentage, lastSynced, count and total:
        # almost no control holds a placeholder.
        if (
            (row[3] is not None and row[3] < 0)
            or (row[4] is not None and not 0.0 <= row[4] <= 100.0)
            or (row[6] is not None and row[6] < OLDEST_REAL_TIME)
            or (row[8] is not None and row[8] < 0)
            or (row[9] is not None and row[9] < 0)
        ):
            kept = drop_placeholders(item, row, kept, rules)
        row[position] = kept
        rows.append(new_row(ControlScoreRow, row))
    return tuple(rows), unusable


def _kept(rest: JSONObject | None, key: str, value: Any) -> JSONObject:
    """`rest` (a new dict for None) with `value`, as received, under `key`."""
    if rest is None:
        rest = {}
    rest[key] = value
    return rest


# ------------------------------------------------------------------------------ control profiles

# secureScoreControlProfile (https://learn.microsoft.com/graph/api/resources/securescorecontrolprofile)
PROFILE_FIELDS = _fields(
    ("title", str, as_str),
    ("maxScore", float, as_float),
    ("rank", int, as_int),
    ("tier", str, as_str),
    ("actionType", str, as_str),
    ("service", str, as_str),
    ("userImpact", str, as_str),
    ("implementationCost", str, as_str),
    ("threats", None, as_str_list),
    ("remediation", str, as_str),
    ("remediationImpact", str, as_str),
    ("actionUrl", str, as_str),
    ("deprecated", bool, as_bool),
    ("controlCategory", str, as_str),
    ("lastModifiedDateTime", None, as_datetime),
)
PROFILE_SKIP = frozenset({"id", "azureTenantId", "controlStateUpdates"})
# secureScoreControlStateUpdate: `updatedDateTime` and `state` make its key; the other three are read here.
STATE_UPDATE_FIELDS = _fields(
    ("assignedTo", str, as_str),
    ("comment", str, as_str),
    ("updatedBy", str, as_str),
)
STATE_UPDATE_SKIP = frozenset({"updatedDateTime", "state"})
PSEUDONYM_PREFIX = "hmac-sha256:"


def pseudonymize(value: str | None, salt: bytes | None) -> str | None:
    """A person's name or address as stored: itself without a salt, else `hmac-sha256:<64 hex digits>`.

    The same person gives the same hash under the same salt, so "who marked these" still groups; an
    empty string names nobody and stays empty.
    """
    if salt is None or not value:
        return value
    digest = hmac.new(salt, value.strip().casefold().encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest


def _profile_identity(obj: Any, expected_tenant: str | None) -> tuple[str, str]:
    """The profile's control name (`id`) and tenant, or a `PayloadError` naming what is wrong."""
    if not isinstance(obj, dict):
        raise PayloadError(
            f"secureScoreControlProfile is not a JSON object but {type(obj).__name__}", tenant_id=expected_tenant
        )
    name, tenant = obj.get("id"), obj.get("azureTenantId")
    if not isinstance(name, str) or not name.strip():
        raise MissingField("secureScoreControlProfile has no usable `id`", tenant_id=expected_tenant, field="id")
    if not isinstance(tenant, str) or not tenant.strip():
        raise MissingField(
            f"secureScoreControlProfile {name} has no usable `azureTenantId`",
            tenant_id=expected_tenant,
            field="azureTenantId",
        )
    tenant = tenant.strip().lower()
    if expected_tenant is not None and tenant != expected_tenant.lower():
        raise WrongTenant(
            f"secureScoreControlProfile {name} belongs to tenant {tenant}, not to {expected_tenant}, which was asked",
            tenant_id=expected_tenant,
            field="azureTenantId",
        )
    return name.strip(), tenant


PEOPLE_KEYS = ("updatedBy", "assignedTo")


def pseudonymize_people(obj: Any, salt: bytes) -> Any:
    """The profile with the people its `controlStateUpdates` name replaced by `pseudonymize`'s hashes.

    Total: whatever the shape, a string under `updatedBy` or `assignedTo` in an entry of the list is
    replaced and everything else is returned as it came (the same object when there is nothing to do).
    """
    updates = obj.get("controlStateUpdates") if isinstance(obj, dict) else None
    if not isinstance(updates, list):
        return obj
    scrubbed = [
        {k: pseudonymize(v, salt) if k in PEOPLE_KEYS and isinstance(v, str) else v for k, v in item.items()}
        if isinstance(item, dict)
        else item
        for item in updates
    ]
    return {**obj, "controlStateUpdates": scrubbed}


def normalize_profile(obj: Any, fetched_at: datetime, *, expected_tenant: str | None = None) -> ControlProfile:
    """One secureScoreControlProfile object as its `control_profiles` row and its state updates.

    Raises `PayloadError` (`MissingField`, `WrongTenant`) for an object that cannot be stored.
    """
    name, tenant = _profile_identity(obj, expected_tenant)
    values, read = read_fields(obj, PROFILE_FIELDS, PROFILE_SKIP)
    extra = dict(read)
    updates = _state_updates(obj.get("controlStateUpdates"), tenant, name, extra)
    return ControlProfile(ControlProfileRow._make((tenant, name, *values, extra, fetched_at)), updates)


def _state_updates(value: Any, tenant: str, name: str, extra: JSONObject) -> tuple[StateUpdateRow, ...]:
    """The usable entries of `controlStateUpdates`, one per (updatedDateTime, state), the last one winning.

    An entry without a time or a state cannot be keyed: it stays in `extra`.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        extra["controlStateUpdates"] = value
        return ()
    rows: dict[tuple[datetime, str], StateUpdateRow] = {}
    unusable: list[Any] = []
    for item in value:
        row = _state_update(item, tenant, name)
        if row is None:
            unusable.append(item)
        else:
            rows[row.updated_at, row.state] = row
    if unusable:
        extra["controlStateUpdates"] = unusable
    return tuple(rows.values())


def _state_update(item: Any, tenant: str, name: str) -> StateUpdateRow | None:
    if type(item) is not dict:
        return None
    when, state = as_datetime(item.get("updatedDateTime")), item.get("state")
    if not isinstance(when, datetime) or not isinstance(state, str) or not state.strip():
        return None
    (assigned, comment, by), _rest = read_fields(item, STATE_UPDATE_FIELDS, STATE_UPDATE_SKIP)
    return StateUpdateRow(tenant, name, when, state.strip(), assigned, comment, by)
