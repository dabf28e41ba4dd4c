"""`secureScoreControlProfiles` (Graph `GET /security/secureScoreControlProfiles`, v1.0, permission
`SecurityEvents.Read.All`): what each Secure Score control is (title, maxScore, tier, remediation, ...)
and the history of the states a tenant gave it. More than 250 per tenant, paged with `@odata.nextLink`
and followed to the end (with the same guards as secureScores). Normalized by
`fetcher.normalize.normalize_profile`, saved by `fetcher.store.profiles`, archived in `raw_control_profiles`.

People named in `controlStateUpdates` are replaced by keyed hashes as the pages arrive, when the plan's
profile policy has a salt (`[database] store_people = false`): nothing stored or archived names them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.admit import Admission, admit, too_long
from fetcher.models import ControlProfile, FetchContext, RequestStats, ScorePage
from fetcher.normalize import normalize_profile, pseudonymize_people
from fetcher.plan import Plan
from fetcher.resources.base import PageSource, Resource, Tally
from fetcher.resources.secure_scores import replay_context
from fetcher.store.archive import RawPayload, codec_for, pack
from fetcher.store.codec import CONTROL_PROFILES
from fetcher.store.profiles import (
    archived_names,
    delete_profiles,
    iter_raw_profiles,
    save_control_profiles,
    save_raw_profiles,
)
from fetcher.store.schema import control_profiles, control_state_updates

PROFILES_PATH = "/security/secureScoreControlProfiles"
NAME = "secureScoreControlProfiles"


async def fetch_control_profiles(client: PageSource, plan: Plan, stats: RequestStats) -> AsyncIterator[ScorePage]:
    """Every profile of the plan's tenant, page by page (Graph's own page size), people pseudonymized."""
    salt = plan.profiles.salt if plan.profiles is not None else None
    async for page in client.list_pages(plan.tenant, PROFILES_PATH, None, stats):
        if salt is None:
            yield page
        else:
            yield dataclasses.replace(page, objects=[pseudonymize_people(o, salt) for o in page.objects])


# Graph's property -> the bounded (`varchar(n)`) column it is stored in.
_PROFILE_FIELDS = (
    ("id", "control_name", control_profiles.c.control_name),
    ("tier", "tier", control_profiles.c.tier),
    ("actionType", "action_type", control_profiles.c.action_type),
    ("service", "service", control_profiles.c.service),
    ("userImpact", "user_impact", control_profiles.c.user_impact),
    ("implementationCost", "implementation_cost", control_profiles.c.implementation_cost),
    ("controlCategory", "control_category", control_profiles.c.control_category),
)


def check_control_profile(_obj: Any, profile: ControlProfile) -> str | None:
    """Why the profile cannot be stored as it is, or None: a value longer than its `varchar` column.

    PostgreSQL refuses such a value where SQLite keeps it; refused on both alike (see `fetcher.admit`).
    """
    for field, attribute, column in _PROFILE_FIELDS:
        problem = too_long(field, getattr(profile.profile, attribute), getattr(column.type, "length", None))
        if problem is not None:
            return problem
    limit = getattr(control_state_updates.c.state.type, "length", None)
    for index, update in enumerate(profile.updates):
        problem = too_long(f"controlStateUpdates[{index}].state", update.state, limit)
        if problem is not None:
            return problem
    return None


def _normalize(obj: Any, context: FetchContext, tenant_id: str) -> ControlProfile:
    return normalize_profile(obj, context.fetched_at, expected_tenant=tenant_id)


def _archive(obj: Any, profile: ControlProfile, context: FetchContext, text: bytes) -> RawPayload:
    return pack(
        obj,
        tenant_id=profile.profile.tenant_id,
        score_date=context.fetched_at.date(),
        fetched_at=context.fetched_at,
        run_id=context.run_id,
        warning=context.warning_text,
        text=text,
        kind=CONTROL_PROFILES,
    )


def admit_control_profiles(
    objects: Iterable[Any],
    context: FetchContext,
    *,
    tenant_id: str,
    keep_raw: bool,
    keep_objects: bool,
    into: Admission[ControlProfile],
    replay: bool = False,  # noqa: ARG001 (the Admitter signature: a control named twice keeps its last profile anyway)
) -> Admission[ControlProfile]:
    """Profile objects -> profiles with their state updates (and archive rows when `keep_raw`)."""
    return admit(
        objects,
        context,
        tenant_id=tenant_id,
        normalize=_normalize,
        check=check_control_profile,
        archive=_archive if keep_raw else None,
        keep_objects=keep_objects,
        into=into,
    )


async def save_profiles(
    conn: AsyncConnection,
    admission: Admission[ControlProfile],
    *,
    saved_at: datetime,  # noqa: ARG001 (the Saver signature: profiles carry their own fetched_at)
    tenant_saved: bool,  # noqa: ARG001 (profiles do not reference the tenants table)
    shared_saved: bool = False,  # noqa: ARG001 (profiles share no rows between tenants)
) -> None:
    """The profiles and state updates (upserted on their keys) and their archive rows."""
    if admission.rows:
        await save_control_profiles(conn, admission.rows[0].profile.tenant_id, admission.rows)
    await save_raw_profiles(conn, admission.raw)


def tally_profiles(rows: Sequence[ControlProfile]) -> Tally:  # noqa: ARG001 (profiles count no score days)
    return Tally()


async def replay_control_profiles(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[tuple[Any, FetchContext]]:
    """Delete the tenant's archived profiles (state updates are history and stay), then yield the archive."""
    codec = await codec_for(conn)
    archived = [(raw, raw.payload(codec, "control profile")) async for raw in iter_raw_profiles(conn, tenant_id)]
    await delete_profiles(conn, tenant_id, archived_names(obj for _, obj in archived))
    for raw, obj in archived:
        yield obj, replay_context(raw)


RESOURCE: Resource[ControlProfile] = Resource(
    name=NAME,
    fetch=fetch_control_profiles,
    admit=admit_control_profiles,
    save=save_profiles,
    tally=tally_profiles,
    replay=replay_control_profiles,
)
