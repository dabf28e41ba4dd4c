"""Deterministic Secure Score history: one tenant's day as Graph would return it, made from the seed, the
tenant id and the date alone.

Nothing is stored. Every value is a pure function of (seed, tenant, date), so a day looks the same whenever
it is asked for, and moving "today" forward only adds a day. A control's state is constant over a
per-control period of days (15 to 400); periods are staggered, so a few controls change each day.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from fetcher.simulator.catalog import Control, Measure, catalog

_MASK = (1 << 64) - 1
_VENDOR = b'{"provider":"SecureScore","providerVersion":null,"subProvider":null,"vendor":"Microsoft"}'
_SERVICES = (
    "HasAADP1", "HasAADP2", "HasEXOP1", "HasEXOP2", "HasMDO", "HasMDOP2", "HasMCAS", "HasMDI",
    "HasMDEP1", "HasMDEP2", "HasIntune", "HasSPOP1", "HasSPOP2", "HasM365E3", "HasM365E5", "HasTeams",
)  # fmt: skip
_SEAT_RANGES = ((1, 100), (101, 500), (501, 1000), (1001, 5000), (5001, 10000), (10001, 100000))
# Extra, undocumented properties some controls carry (real payloads grow new ones without notice).
_EXTRAS = (("isApplicable", "true"), ("controlState", "Default"), ("source", "Microsoft Defender XDR"))
# Controls that come and go over a 90-day window, and how long each presence/absence lasts.
_VOLATILE = 4
_VOLATILE_PERIOD = 45
_USER_SUBJECTS = frozenset({"users", "mailboxes"})


def mix64(value: int) -> int:
    """SplitMix64: a fast, well-spread integer hash (the hot path cannot afford a cryptographic one)."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def unit(value: int) -> float:
    """A hash as a number in [0, 1)."""
    return mix64(value) / 18446744073709551616.0


def stable_key(*parts: object) -> int:
    """A 64-bit key from any parts, stable across processes (unlike `hash`)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _segment_key(key: int, ordinal: int, period: int, phase: int) -> int:
    return mix64(key ^ (((ordinal + phase) // period) * 0x9E3779B97F4A7C15 & _MASK))


@dataclass(frozen=True)
class Track:
    """One control's life in one tenant."""

    control: Control
    key: int
    period: int  # days between possible changes
    phase: int
    volatile: bool  # appears and disappears over weeks
    extra: tuple[str, str] | None
    by_users: bool  # measured over the tenant's users, so its total follows activeUserCount


@dataclass(frozen=True)
class Profile:
    """What makes a tenant itself: size, maturity, licences, the controls it sees."""

    tenant_id: str
    key: int
    users: int
    devices: int
    unlicensed: bool  # some real tenants report licensedUserCount 0
    maturity: float  # chance that a control is fully implemented
    services: tuple[str, ...]
    second_of_day: int  # when the daily score is usually computed
    tracks: tuple[Track, ...]
    # 0: each control's lastSynced is its own; N: controls share the sync times of N groups (see _group_synced).
    synced_groups: int = 0
    # Last serialized thin form per control: consecutive days mostly repeat it, which makes a day cheap.
    memo: dict[int, tuple[int, int, float, bytes]] = field(default_factory=dict, compare=False, repr=False)


def build_profile(seed: int, tenant_id: str, controls_per_day: int, *, synced_groups: int = 0) -> Profile:
    key = stable_key("tenant", seed, tenant_id)
    # Sizes spread over four orders of magnitude, as an MSP's customers do.
    users = int(10 ** (0.7 + 3.8 * unit(key ^ 1)))
    service_count = 4 + int(unit(key ^ 4) * (len(_SERVICES) - 4))
    return Profile(
        tenant_id=tenant_id,
        key=key,
        users=users,
        devices=max(1, int(users * (0.4 + 0.9 * unit(key ^ 2)))),
        unlicensed=unit(key ^ 3) < 0.05,
        maturity=0.25 + 0.65 * unit(key ^ 5),
        services=tuple(sorted(_SERVICES, key=lambda name: mix64(key ^ _name_key(name)))[:service_count]),
        second_of_day=int(600 + unit(key ^ 6) * 6 * 3600),
        tracks=_tracks(key, controls_per_day),
        synced_groups=synced_groups,
    )


def _tracks(key: int, controls_per_day: int) -> tuple[Track, ...]:
    volatile = _VOLATILE if controls_per_day >= 20 else 0
    stable = controls_per_day - volatile // 2  # volatile controls are present about half the time
    pool = catalog(stable + volatile + 8)
    ranked = sorted(range(len(pool)), key=lambda index: mix64(key ^ (index * 0x5851F42D4C957F2D)))
    chosen = sorted(ranked[: stable + volatile])
    flagged = set(ranked[stable : stable + volatile])
    return tuple(_track(key, pool[index], index, index in flagged) for index in chosen)


@functools.lru_cache(maxsize=8192)
def _name_key(name: str) -> int:
    return stable_key("control", name)


def _track(tenant_key: int, control: Control, index: int, volatile: bool) -> Track:
    key = mix64(tenant_key ^ _name_key(control.name))
    # Log-uniform periods between 15 and 400 days: about four of 230 controls change on a given day.
    period = int(15 * math.exp(unit(key ^ 11) * math.log(400 / 15)))
    extra = _EXTRAS[index % len(_EXTRAS)] if unit(key ^ 12) < 0.025 else None
    by_users = control.subject in _USER_SUBJECTS
    return Track(control, key, period, int(unit(key ^ 13) * period), volatile, extra, by_users)


def _present(track: Track, ordinal: int) -> bool:
    if not track.volatile:
        return True
    return unit(_segment_key(track.key, ordinal, _VOLATILE_PERIOD, track.key % _VOLATILE_PERIOD)) >= 0.5


def _users(profile: Profile, ordinal: int) -> tuple[int, int]:
    """(activeUserCount, licensedUserCount) for a day; counts move weekly and monthly, not daily."""
    weekly = unit(_segment_key(profile.key, ordinal, 7, profile.key % 7))
    monthly = unit(_segment_key(profile.key, ordinal, 30, profile.key % 30))
    licensed = max(1, round(profile.users * (0.97 + 0.06 * monthly)))
    active = max(1, round(licensed * (0.7 + 0.25 * weekly)))
    return active, 0 if profile.unlicensed else licensed


def _subject_total(track: Track, profile: Profile, active: int, state: int) -> int:
    if track.by_users:
        return active
    if track.control.subject == "devices":
        return profile.devices
    return 1 + state % 12  # admins, domains, servers ... a handful


@dataclass(frozen=True)
class ControlDay:
    """One control on one day, before it is shaped into JSON."""

    track: Track
    score: float
    percent: float
    count: int
    total: int
    on: bool


def control_day(track: Track, profile: Profile, ordinal: int, active: int) -> ControlDay:
    state = _segment_key(track.key, ordinal, track.period, track.phase)
    implemented = unit(state) < profile.maturity
    measure, maximum = track.control.measure, track.control.max_score
    total = _subject_total(track, profile, active, state)
    if measure is Measure.RATIO:
        fraction = 1.0 if implemented else unit(state ^ 21) * 0.9
        count = round(fraction * total)
        share = count / total if total else 1.0
    elif measure is Measure.COUNT:
        count = 2 + state % 3 if implemented else state % 9
        share = 1.0 if implemented else 0.0
    else:
        count, share = int(implemented), float(implemented)
    score = round(maximum * share, 2)
    percent = round(100.0 * score / maximum, 2) if maximum else 0.0
    return ControlDay(track, score, percent, count, total, implemented)


def _status(day: ControlDay) -> str:
    control = day.track.control
    template = control.done if day.on else control.todo
    return template.format(count=day.count, total=day.total, missing=day.total - day.count, subject=control.subject)


def _last_synced(day: ControlDay, date: datetime.date) -> str:
    key = mix64(day.track.key ^ date.toordinal())
    midnight = datetime.datetime(date.year, date.month, date.day)  # UTC, naive: isoformat() is fast
    synced = midnight - datetime.timedelta(days=1 + key % 14, seconds=(key >> 8) % 86400)
    return synced.isoformat() + "Z"


def _group_synced(profile: Profile, track: Track, date: datetime.date) -> str:
    """lastSynced as real tenants show it: controls synced together share one time, so a tenant-day has a
    few distinct values. Each group syncs every 1 to 7 days (one in five lags, 10 to 29 days), at a time
    of day of its own that moves with each sync."""
    group = track.key % profile.synced_groups
    key = mix64(profile.key ^ ((group + 1) * 0xD1B54A32D192ED03 & _MASK))
    period = 10 + key % 20 if key % 5 == 0 else 1 + key % 7
    ordinal = date.toordinal()
    synced_on = ordinal - 1 - (ordinal - 1 + (key >> 8) % period) % period  # the group's latest sync day
    second = mix64(key ^ synced_on) % 86400
    synced = datetime.datetime.fromordinal(synced_on) + datetime.timedelta(seconds=second)
    return synced.isoformat() + "Z"


def control_json(day: ControlDay, date: datetime.date, newest: bool, profile: Profile | None = None) -> dict[str, Any]:
    control = day.track.control
    item: dict[str, Any] = {
        "controlCategory": control.category,
        "controlName": control.name,
        "description": control.description if newest else None,
        "score": day.score,
        "scoreInPercentage": day.percent,
        "implementationStatus": _status(day),
    }
    if newest:
        # Graph only sends these on the latest day; older days lose them.
        if profile is not None and profile.synced_groups:
            item["lastSynced"] = _group_synced(profile, day.track, date)
        else:
            item["lastSynced"] = _last_synced(day, date)
        if control.measure is Measure.SWITCH:
            item["on"] = "true" if day.on else "false"
        elif control.measure is Measure.RATIO:
            item["count"], item["total"] = str(day.count), str(day.total)
        elif control.measure is Measure.COUNT:
            item["count"] = str(day.count)
    if day.track.extra is not None:
        item[day.track.extra[0]] = day.track.extra[1]
    return item


def created_date_time(profile: Profile, date: datetime.date) -> str:
    """A realistic time of day: around the tenant's usual hour, fractional seconds of varying length."""
    key = mix64(profile.key ^ (date.toordinal() * 0xD6E8FEB86659FD93 & _MASK))
    second = min(86399, max(0, profile.second_of_day + int(key % 2400) - 1200))
    stamp = f"{date.isoformat()}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    fraction = f"{(key >> 20) % 10_000_000:07d}".rstrip("0")
    # About one day in ten carries no fraction at all, as .NET drops it when it is zero.
    return f"{stamp}.{fraction}Z" if fraction and (key >> 48) % 10 else f"{stamp}Z"


def _seat_range(seats: int) -> tuple[int, int]:
    return next((low, high) for low, high in _SEAT_RANGES if seats <= high) if seats else _SEAT_RANGES[0]


def _category_averages(key: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for offset, (name, maximum) in enumerate(
        (("apps", 120.0), ("data", 6.0), ("device", 36.0), ("identity", 62.0), ("infrastructure", 0.0))
    ):
        max_value = round(maximum * (0.95 + 0.1 * unit(key ^ offset)), 2) if maximum else 0.0
        figures[f"{name}Score"] = round(max_value * (0.3 + 0.4 * unit(key ^ (offset + 16))), 2)
        figures[f"{name}ScoreMax"] = max_value
    return figures


def comparative_scores(seats: int, ordinal: int, seed: int) -> list[dict[str, Any]]:
    """Averages over other tenants: the same for every tenant on a day (per seat range for TotalSeats)."""
    low, high = _seat_range(seats)
    all_key = mix64(stable_key("all", seed) ^ (ordinal // 3))
    seats_key = mix64(stable_key("seats", seed, low) ^ (ordinal // 3))
    return [
        {"basis": "AllTenants", "averageScore": round(45 + 15 * unit(all_key), 2), **_category_averages(all_key)},
        {
            "basis": "TotalSeats",
            "averageScore": round(40 + 20 * unit(seats_key), 2),
            "SeatSizeRangeLowerValue": str(low),
            "SeatSizeRangeUpperValue": str(high),
            **_category_averages(seats_key),
        },
    ]


def _controls(profile: Profile, date: datetime.date, newest: bool, active: int) -> tuple[float, float, list[bytes]]:
    """The serialized controlScores of a day, with the sums of their scores and maxima."""
    ordinal = date.toordinal()
    memo = profile.memo
    scores: list[float] = []
    maximum = 0.0
    parts: list[bytes] = []
    for index, track in enumerate(profile.tracks):
        if track.volatile and not _present(track, ordinal):
            continue
        # A control's thin form depends only on its segment (its state) and, for user-measured controls,
        # on the active user count: when both are unchanged the memoized bytes are exact.
        segment = (ordinal + track.phase) // track.period
        audience = active if track.by_users else 0
        cached = memo.get(index)
        if newest or cached is None or cached[0] != segment or cached[1] != audience:
            day = control_day(track, profile, ordinal, active)
            cached = (segment, audience, day.score, orjson.dumps(control_json(day, date, newest, profile)))
            if not newest:
                memo[index] = cached
        scores.append(cached[2])
        maximum += track.control.max_score
        parts.append(cached[3])
    return sum(scores), maximum, parts


def score_bytes(profile: Profile, date: datetime.date, *, newest: bool, seed: int) -> bytes:
    """One secureScore entity, serialized, as Graph returns it; older days (`newest=False`) are thin."""
    ordinal = date.toordinal()
    active, licensed = _users(profile, ordinal)
    score, maximum, parts = _controls(profile, date, newest, active)
    # Older days often lose their comparative scores altogether.
    keep_averages = newest or unit(profile.key ^ ordinal ^ 0xA5A5) < 0.4
    head = {
        "id": f"{profile.tenant_id}_{date.isoformat()}",
        "azureTenantId": profile.tenant_id,
        "activeUserCount": active,
        "createdDateTime": created_date_time(profile, date),
        "currentScore": round(score, 2),
        "maxScore": maximum,
        "licensedUserCount": licensed,
        "enabledServices": list(profile.services),
        "averageComparativeScores": comparative_scores(licensed or active, ordinal, seed) if keep_averages else [],
    }
    # Splicing pre-serialized controls into the object keeps Graph's key order and skips re-serializing.
    return b"".join(
        (orjson.dumps(head)[:-1], b',"controlScores":[', b",".join(parts), b'],"vendorInformation":', _VENDOR, b"}")
    )


def score_object(profile: Profile, date: datetime.date, *, newest: bool, seed: int) -> dict[str, Any]:
    """The same entity as `score_bytes`, parsed: exactly what a client decodes."""
    parsed: dict[str, Any] = orjson.loads(score_bytes(profile, date, newest=newest, seed=seed))
    return parsed
