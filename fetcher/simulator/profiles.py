"""Deterministic secureScoreControlProfiles: one tenant's profiles as Graph would list them, made from the seed,
the tenant and the current day alone.

Consistent with the tenant's secureScores (`data`): every control its days score has a profile with the same
`id` (its `controlName`), `controlCategory` and `maxScore`; like real tenants, it also has profiles for controls
it is not scored on (more than 250 in all, so the list takes two pages) and a few `deprecated` ones. About one
control in twelve has a `controlStateUpdates` history (ThirdParty, Ignored, Reviewed, back to Default) dated
within the last 90 days, made by made-up people. `remediation` is HTML, as Graph's is.
"""

from __future__ import annotations

import datetime
import html
from typing import Any

import orjson

from fetcher.simulator.catalog import APPS, DATA, DEVICE, IDENTITY, Control, Measure, catalog
from fetcher.simulator.data import Profile, mix64, stable_key, unit

MIN_PROFILES = 260  # real tenants list about 260 to 300; Graph's pages hold fewer, so two pages at least
TIERS = ("Core", "Defense in Depth", "Advanced")
IMPACTS = ("Low", "Moderate", "High")
ACTION_TYPES = ("Config", "Review", "Behavior")
THREATS = (
    "AccountBreach",
    "DataDeletion",
    "DataExfiltration",
    "DataSpillage",
    "ElevationOfPrivilege",
    "MaliciousInsider",
    "PasswordCracking",
    "PhishingOrWhaling",
    "Spoofing",
    "Malware",
)
STATES = ("ThirdParty", "Ignored", "Reviewed", "Default")
PEOPLE = ("ada.lovelace", "alan.turing", "grace.hopper", "edsger.dijkstra", "barbara.liskov", "ken.thompson")
COMMENTS = (
    "Covered by our third-party MFA provider",
    "Accepted risk: legacy line-of-business app",
    "Reviewed with the customer in the quarterly meeting",
    "",
    "Back to default after the pilot",
)
# Controls Microsoft retired: still listed, marked deprecated, scored nowhere.
DEPRECATED = (
    Control("mcas_shadow_it_reporting", APPS, 3.0, Measure.STATIC, "", "", "", title="Set up Cloud Discovery"),
    Control("exo_antispam_v1", APPS, 5.0, Measure.STATIC, "", "", "", title="Set outbound spam notifications"),
    Control("aad_legacy_mfa_portal", IDENTITY, 2.0, Measure.STATIC, "", "", "", title="Use the legacy MFA portal"),
    Control("mip_azure_information_protection_v1", DATA, 4.0, Measure.STATIC, "", "", "", title="Deploy AIP client"),
)
VENDOR = {"provider": "SecureScore", "providerVersion": None, "subProvider": None, "vendor": "Microsoft"}
_SERVICES = (("aad_", "AzureAD"), ("mdi_", "MDI"), ("exo_", "EXO"), ("mdo_", "MDO"), ("mip_", "MIP"), ("dlp_", "MIP"))


def _service(control: Control) -> str:
    if control.name.startswith("scid_") or control.category == DEVICE:
        return "MDATP"
    return next((service for prefix, service in _SERVICES if control.name.startswith(prefix)), "AzureAD")


def _pick(options: tuple[str, ...], key: int) -> str:
    return options[key % len(options)]


def remediation_html(control: Control, action_url: str) -> str:
    """Remediation as Graph sends it: HTML with paragraphs, a list, a link and emphasis."""
    title = html.escape(control.display_title)
    return (
        f"<p>To address <b>{title}</b>:</p><ol>"
        f'<li>Open <a href="{html.escape(action_url)}">the recommendation in Microsoft Defender</a>.</li>'
        f"<li>Apply the setting to all {html.escape(control.subject)} in scope.</li>"
        "<li>Save the change; the score updates within 48 hours.</li></ol>"
    )


def _updates(key: int, tenant_id: str, newest: datetime.date) -> list[dict[str, Any]]:
    if unit(key ^ 0x5747E) >= 1 / 12:
        return []
    domain = f"t{tenant_id[:8].lower()}.example"
    count = 1 + key % 3
    start = datetime.datetime.combine(newest, datetime.time(), datetime.UTC) - datetime.timedelta(days=85)
    updates = []
    for index in range(count):
        step = mix64(key ^ (index + 1))
        when = start + datetime.timedelta(days=(index * 85 // count) + step % (85 // count), seconds=step % 86400)
        person = _pick(PEOPLE, step >> 8)
        updates.append(
            {
                "assignedTo": "" if step % 4 else f"{_pick(PEOPLE, step >> 16)}@{domain}",
                "comment": _pick(COMMENTS, step >> 24),
                "state": STATES[index] if index < 3 else "Default",
                "updatedBy": f"{person}@{domain}",
                "updatedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return updates


def profile_json(
    control: Control, tenant: Profile, rank: int, newest: datetime.date, *, deprecated: bool
) -> dict[str, Any]:
    key = mix64(tenant.key ^ stable_key("profile", control.name))
    action_url = f"https://security.microsoft.com/securescore?actionId={control.name}&viewid=actions"
    modified = newest - datetime.timedelta(days=7 + key % 300)
    return {
        "id": control.name,
        "azureTenantId": tenant.tenant_id,
        "actionType": _pick(ACTION_TYPES, key >> 4) if key % 5 == 0 else "Config",
        "actionUrl": action_url,
        "controlCategory": control.category,
        "title": control.display_title,
        "deprecated": deprecated,
        "implementationCost": _pick(IMPACTS, key >> 12),
        "lastModifiedDateTime": f"{modified.isoformat()}T00:00:00Z",
        "maxScore": control.max_score,
        "rank": rank,
        "remediation": remediation_html(control, action_url),
        "remediationImpact": f"{_pick(IMPACTS, key >> 20)} impact on {control.subject}.",
        "service": _service(control),
        "threats": sorted({_pick(THREATS, key >> 28), _pick(THREATS, key >> 36)}),
        "tier": _pick(TIERS, key >> 44),
        "userImpact": _pick(IMPACTS, key >> 52),
        "complianceInformation": None,
        "controlStateUpdates": [] if deprecated else _updates(key, tenant.tenant_id, newest),
        "vendorInformation": {
            "provider": "SecureScore",
            "providerVersion": None,
            "subProvider": None,
            "vendor": "Microsoft",
        },
    }


def profile_controls(tenant: Profile) -> list[Control]:
    """The tenant's scored controls first, then others of the catalogue, to at least MIN_PROFILES."""
    scored = [track.control for track in tenant.tracks]
    names = {control.name for control in scored}
    others = [c for c in catalog(max(MIN_PROFILES, len(scored)) + len(scored)) if c.name not in names]
    return scored + others[: max(0, MIN_PROFILES - len(scored))]


def profiles_bytes(tenant: Profile, newest: datetime.date) -> list[bytes]:
    """Every profile of the tenant, serialized, in rank order (most points first), deprecated ones last."""
    controls = sorted(profile_controls(tenant), key=lambda c: (-c.max_score, c.name))
    current = [profile_json(c, tenant, rank, newest, deprecated=False) for rank, c in enumerate(controls, 1)]
    retired = [
        profile_json(c, tenant, len(controls) + rank, newest, deprecated=True) for rank, c in enumerate(DEPRECATED, 1)
    ]
    return [orjson.dumps(obj) for obj in (*current, *retired)]
