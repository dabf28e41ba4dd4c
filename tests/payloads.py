"""Builders of secureScore objects in the shapes Graph really sends (see tests/data/), for any test.

The newest day is full: controls carry `implementationStatus`, `lastSynced`, `scoreInPercentage`,
`on` ("true"/"false" strings) or `count`/`total` (numeric strings), and comparative scores carry
per-category figures and `SeatSizeRange…Value` strings. Older days are thin: `description` null,
`lastSynced`/`on`/`count`/`total` gone, `averageComparativeScores` empty. Every builder is
deterministic and returns fresh objects, so a test may mutate what it gets.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

TENANT = "4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f"
OTHER_TENANT = "9d1e2f3a-4b5c-4d6e-8f7a-0b1c2d3e4f5a"
DAY = dt.date(2026, 11, 27)
SERVICES = ("HasAADP1", "HasAADP2", "HasMCAS", "HasM365E5", "HasMDEP2", "HasSPOP2")
CATEGORIES = ("Identity", "Data", "Device", "Apps", "Infrastructure")
VENDOR: dict[str, Any] = {
    "provider": "SecureScore",
    "providerVersion": None,
    "subProvider": None,
    "vendor": "Microsoft",
}

# name, category, score, max score, how it is measured, description, implementationStatus
_CONTROLS: tuple[tuple[str, str, float, float, str, str, str], ...] = (
    (
        "IntegratedApps",
        "Identity",
        4.0,
        4.0,
        "on",
        "Restricting user consent to applications lowers the risk of malicious apps.",
        "You have a user consent policy in place.",
    ),
    (
        "MFARegistrationV2",
        "Identity",
        9.0,
        9.0,
        "ratio",
        "Multifactor authentication protects accounts from password attacks.",
        "You have 0 out of 3 users that aren't registered with MFA.",
    ),
    (
        "meeting_restrictanonymousjoin_v1",
        "Apps",
        0.0,
        1.0,
        "off",
        "Restricting anonymous users from joining meetings.",
        "current status: On",
    ),
    (
        "OneAdmin",
        "Identity",
        0.0,
        1.0,
        "count",
        "<p>Having more than one global administrator helps with continuity.</p>",
        "You currently have 1 global admins.",
    ),
    (
        "BlockLegacyAuthentication",
        "Identity",
        8.0,
        8.0,
        "ratio",
        "Legacy authentication protocols cannot enforce multifactor authentication.",
        "You have 0 out of 3 users that can sign in with legacy authentication.",
    ),
    (
        "mdo_safelinksforOfficeApps",
        "Apps",
        0.0,
        8.0,
        "off",
        "Safe Links checks links in Office documents when they are opened.",
        "Safe Links for Office apps is off.",
    ),
    (
        "scid_2010",
        "Device",
        3.5,
        7.0,
        "ratio",
        "Turn on Microsoft Defender Antivirus PUA protection in block mode.",
        "2 of 4 devices are not protected.",
    ),
)


def score_id(tenant: str = TENANT, day: dt.date = DAY) -> str:
    """Graph's id for a tenant-day: `<tenant>_<yyyy-mm-dd>`."""
    return f"{tenant}_{day.isoformat()}"


def created(day: dt.date = DAY) -> str:
    """`createdDateTime` as Graph writes it: midnight UTC with a `Z`."""
    return f"{day.isoformat()}T00:00:00Z"


def full_control(index: int) -> dict[str, Any]:
    """The newest day's form of one of the handful of realistic controls (0 ≤ index < 7)."""
    name, category, score, max_score, measure, description, status = _CONTROLS[index]
    item: dict[str, Any] = {
        "controlCategory": category,
        "controlName": name,
        "description": description,
        "score": score,
        "scoreInPercentage": round(100.0 * score / max_score, 2),
        "implementationStatus": status,
        "lastSynced": f"2026-11-{25 + index % 2}T13:04:0{index}Z",
    }
    return item | _measure(measure, index)


def _measure(measure: str, index: int) -> dict[str, str]:
    if measure in ("on", "off"):
        return {"on": "true" if measure == "on" else "false"}
    if measure == "ratio":
        return {"count": str(index % 3 + 1), "total": "3"}
    return {"count": "1"}


def thin_control(index: int) -> dict[str, Any]:
    """An older day's form of the same control: no description, no lastSynced/on/count/total."""
    name, category, score, max_score, _, _, status = _CONTROLS[index]
    return {
        "controlCategory": category,
        "controlName": name,
        "description": None,
        "score": score,
        "scoreInPercentage": round(100.0 * score / max_score, 2),
        "implementationStatus": status,
    }


def comparatives() -> list[dict[str, Any]]:
    """The newest day's `averageComparativeScores`: all tenants, and tenants of a similar seat count."""
    return [
        {
            "basis": "AllTenants",
            "averageScore": 52.86,
            "appsScore": 45.81,
            "appsScoreMax": 120.83,
            "dataScore": 0.37,
            "dataScoreMax": 5.15,
            "deviceScore": 20.67,
            "deviceScoreMax": 35.04,
            "identityScore": 41.21,
            "identityScoreMax": 61.88,
            "infrastructureScore": 0.0,
            "infrastructureScoreMax": 0.0,
        },
        {
            "basis": "TotalSeats",
            "averageScore": 48.1,
            "SeatSizeRangeLowerValue": "1",
            "SeatSizeRangeUpperValue": "100",
            "appsScore": 53.64,
            "appsScoreMax": 146.11,
        },
    ]


def _day(tenant: str, day: dt.date, controls: list[dict[str, Any]], compared: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": score_id(tenant, day),
        "azureTenantId": tenant,
        "activeUserCount": 3,
        "createdDateTime": created(day),
        "currentScore": sum(c["score"] for c in controls if isinstance(c.get("score"), float)),
        "maxScore": 1376.0,
        "licensedUserCount": 0,
        "enabledServices": list(SERVICES),
        "averageComparativeScores": compared,
        "controlScores": controls,
        "vendorInformation": dict(VENDOR),
    }


def full_day(tenant: str = TENANT, day: dt.date = DAY, *, controls: int = len(_CONTROLS)) -> dict[str, Any]:
    """The newest day as Graph sends it: every control property and both comparative scores."""
    return _day(tenant, day, [full_control(i) for i in range(controls)], comparatives())


def thin_day(
    tenant: str = TENANT, day: dt.date = DAY - dt.timedelta(days=1), *, controls: int = len(_CONTROLS)
) -> dict[str, Any]:
    """An older day as Graph sends it: thin controls and `averageComparativeScores: []`."""
    return _day(tenant, day, [thin_control(i) for i in range(controls)], [])


def generated_control(index: int, *, newest: bool = True) -> dict[str, Any]:
    """Control number `index` of a large tenant, named like Defender for Endpoint's `scid_` controls."""
    max_score = float(index % 9 + 1)
    score = float(index % 3) * max_score / 2
    item: dict[str, Any] = {
        "controlCategory": CATEGORIES[index % len(CATEGORIES)],
        "controlName": f"scid_{3000 + index}",
        "description": f"Security recommendation number {index}." if newest else None,
        "score": score,
        "scoreInPercentage": round(100.0 * score / max_score, 2),
        "implementationStatus": f"{index % 7} of 7 devices are not protected.",
    }
    if newest:
        item["lastSynced"] = f"2026-11-26T{index % 24:02d}:{index % 60:02d}:00Z"
        item |= {"on": "true" if index % 2 else "false"} if index % 3 == 0 else {"count": str(index % 7), "total": "7"}
    return item


def many_controls_day(
    count: int = 230, tenant: str = TENANT, day: dt.date = DAY, *, newest: bool = True
) -> dict[str, Any]:
    """A day with `count` controls (a real tenant has about 230), full or thin, for throughput tests."""
    controls = [generated_control(i, newest=newest) for i in range(count)]
    return _day(tenant, day, controls, comparatives() if newest else [])


def history(tenant: str = TENANT, newest: dt.date = DAY, days: int = 90) -> list[dict[str, Any]]:
    """`days` days, newest first as Graph lists them: the newest full, the rest thin."""
    return [full_day(tenant, newest)] + [thin_day(tenant, newest - dt.timedelta(days=n)) for n in range(1, days)]


def page(objects: list[dict[str, Any]], next_link: str | None = None) -> dict[str, Any]:
    """A `GET /security/secureScores` answer around `objects`, with Graph's `@odata` properties."""
    body: dict[str, Any] = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/secureScores"}
    if next_link is not None:
        body["@odata.nextLink"] = next_link
    body["value"] = objects
    return body
