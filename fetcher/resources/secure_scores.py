"""`secureScores` (Graph `GET /security/secureScores`, v1.0): a tenant's daily Secure Score, one object
a day, the newest first; Graph keeps 90 days. Fetched as a list (`$top` = the days wanted) or one by id
(`{tenantId}_{yyyy-mm-dd}`), normalized by `fetcher.normalize.normalize_score`, saved by
`fetcher.store.scores.save_score_days`, archived in `raw_payloads`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from fetcher.admit import Admission, Unique, admit, too_long
from fetcher.graph import SECURE_SCORES_PATH
from fetcher.models import ControlScoreRow, FetchContext, ProviderWarning, RequestStats, ScoreDay, ScorePage
from fetcher.normalize import normalize_score, score_nesting_bound
from fetcher.plan import Plan
from fetcher.resources.base import PageSource, Resource, Tally
from fetcher.store.archive import RawPayload, archived_days, codec_for, iter_raw_payloads, pack, save_raw_payloads
from fetcher.store.deltas import compress_pending
from fetcher.store.schema import comparative_scores, control_keys, controls, secure_scores
from fetcher.store.scores import delete_days, resolve_group_keys, save_controls, save_group_rows, save_score_days


async def fetch_secure_scores(client: PageSource, plan: Plan, stats: RequestStats) -> AsyncIterator[ScorePage]:
    """The plan's newest `days` secureScores, page by page, or the one `score_id`."""
    if plan.score_id is not None:
        yield await client.get_item(plan.tenant, SECURE_SCORES_PATH, plan.score_id, stats)
        return
    async for page in client.list_pages(plan.tenant, SECURE_SCORES_PATH, plan.days, stats):
        yield page


def _normalize(obj: Any, context: FetchContext, tenant_id: str) -> ScoreDay:
    return normalize_score(obj, context, expected_tenant=tenant_id)


def _limit(column: Any) -> int | None:
    return getattr(column.type, "length", None)


# Graph's property -> the bounded column it is stored in.
_SCORE_FIELDS = (
    ("id", "id", secure_scores.c.id),
    ("vendorInformation.vendor", "vendor", secure_scores.c.vendor),
    ("vendorInformation.provider", "provider", secure_scores.c.provider),
    ("vendorInformation.providerVersion", "provider_version", secure_scores.c.provider_version),
    ("vendorInformation.subProvider", "sub_provider", secure_scores.c.sub_provider),
)


# Graph's property -> the bounded column it is stored in, for the items of controlScores and
# averageComparativeScores; with the field's place in a ControlScoreRow (read by `_fits` with an itemgetter,
# cheaper than a named tuple's attribute).
_CONTROL_FIELDS = tuple(
    (key, attribute, _limit(column), itemgetter(ControlScoreRow._fields.index(attribute)))
    for key, attribute, column in (
        ("controlName", "control_name", control_keys.c.control_name),
        ("controlCategory", "control_category", controls.c.control_category),
    )
)
_BASIS_LIMIT = _limit(comparative_scores.c.basis)


def check_secure_score(obj: Any, day: ScoreDay) -> str | None:
    """Why the day cannot be stored as it is, or None: a value longer than its `varchar` column.

    An item's position in its array is looked up only for the message of one that does not fit: looking
    it up for every control made this check quadratic in the controls (a third of a small tenant's CPU).
    """
    for field, attribute, column in _SCORE_FIELDS:
        problem = too_long(field, getattr(day.score, attribute), _limit(column))
        if problem is not None:
            return problem
    if not all(_fits(day.controls, field, limit) for _, _, limit, field in _CONTROL_FIELDS):
        for row in day.controls:
            for key, attribute, limit, _ in _CONTROL_FIELDS:
                value = getattr(row, attribute)
                if too_long(key, value, limit) is not None:
                    where = f"controlScores[{_position(obj, 'controlScores', 'controlName', row.control_name)}]"
                    return too_long(f"{where}.{key}", value, limit)
    for comparative in day.comparatives:
        if too_long("basis", comparative.basis, _BASIS_LIMIT) is not None:
            index = _position(obj, "averageComparativeScores", "basis", comparative.basis)
            return too_long(f"averageComparativeScores[{index}].basis", comparative.basis, _BASIS_LIMIT)
    return None


def _fits(rows: Sequence[Any], field: Callable[[Any], str | None], limit: int | None) -> bool:
    """Whether every row's `field` fits `limit` characters: the usual answer, found without a Python
    call per row."""
    if limit is None:
        return True
    return max(map(len, filter(None, map(field, rows))), default=0) <= limit


def _position(obj: Any, array: str, key: str, value: str) -> str:
    """The index of the item of `obj[array]` whose `key` is `value` ("?" when it cannot be told)."""
    items = obj.get(array) if isinstance(obj, dict) else None
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if isinstance(item, dict) and item.get(key) == value:
            return str(index)
    return "?"


def _archive(obj: Any, day: ScoreDay, context: FetchContext, text: bytes) -> RawPayload:
    return pack(
        obj,
        tenant_id=day.tenant_id,
        score_date=day.score_date,
        fetched_at=context.fetched_at,
        run_id=context.run_id,
        warning=context.warning_text,
        text=text,
        defer=True,  # compressed at the save, as a delta when it can be (`fetcher.store.deltas`)
    )


def _replaces(new: ScoreDay, kept: ScoreDay) -> bool:
    """One day, two objects in one answer: the one whose id names its tenant and day wins; between two
    that both do or both do not, the first Graph sent (its newest-first order) stays."""
    return kept.score.id_mismatch and not new.score.id_mismatch


def _duplicate_reason(refused: ScoreDay, stored: ScoreDay) -> str:
    why = (
        "its id names its tenant and day, this one's does not"
        if refused.score.id_mismatch and not stored.score.id_mismatch
        else "it came first in Graph's answer"
    )
    return (
        f"secureScore {refused.score.id} is a second object for {refused.score_date} in one answer; "
        f"{stored.score.id} was stored for that day: {why}"
    )


# Graph has answered two objects for one tenant-day in one answer (issue 12): the rule above keeps one.
ONE_PER_DAY: Unique[ScoreDay] = Unique(
    key=lambda day: day.score_date,
    replaces=_replaces,
    reason=_duplicate_reason,
    replaceable=lambda day: day.score.id_mismatch,  # as `_replaces` says
)


def admit_secure_scores(
    objects: Iterable[Any],
    context: FetchContext,
    *,
    tenant_id: str,
    keep_raw: bool,
    keep_objects: bool,
    into: Admission[ScoreDay],
    replay: bool = False,
) -> Admission[ScoreDay]:
    """secureScore objects -> score days (and their archive rows when `keep_raw`), through `fetcher.admit`.

    One day per answer (`ONE_PER_DAY`); not on a `replay`, whose later archived objects replace earlier ones.
    """
    archive = _archive if keep_raw else None
    return admit(
        objects,
        context,
        tenant_id=tenant_id,
        normalize=_normalize,
        archive=archive,
        check=check_secure_score,
        keep_objects=keep_objects,
        into=into,
        unique=None if replay else ONE_PER_DAY,
        bound=score_nesting_bound,
    )


async def save_secure_scores(
    conn: AsyncConnection,
    admission: Admission[ScoreDay],
    *,
    saved_at: datetime,
    tenant_saved: bool,
    shared_saved: bool = False,
) -> None:
    """The days (upserted on tenant and day) and their archive rows, in the caller's transaction;
    `shared_saved`: their keys and archive rows are saved already, and their `controls` rows are saved after
    them, for the whole group (`save_shared_keys`, `save_shared_controls`)."""
    await save_score_days(conn, admission.rows, saved_at, tenant_saved=tenant_saved, controls_saved=shared_saved)
    if not shared_saved:
        await compress_pending(conn, [admission.raw])
        await save_raw_payloads(conn, admission.raw)


async def save_shared_keys(conn: AsyncConnection, admissions: Sequence[Admission[ScoreDay]]) -> None:
    """The texts' keys of a group of tenants' days, before any tenant's own rows; and their archive rows,
    compressed with the bases of the whole group read in one statement and saved in one statement (each
    tenant's its own statement cost 0.1 ms of CPU, both threads, on a 2.3 GHz Xeon)."""
    await resolve_group_keys(conn, [day for admission in admissions for day in admission.rows], defer_rows=True)
    await compress_pending(conn, [admission.raw for admission in admissions])
    await save_raw_payloads(conn, [payload for admission in admissions for payload in admission.raw])


async def save_shared_controls(conn: AsyncConnection, admissions: Sequence[Admission[ScoreDay]]) -> None:
    """The rows the group's tenants deferred (`save_group_rows`: their scores, control rows and comparatives,
    one statement a kind for the group), then the `controls` dimension of their days (`save_last`)."""
    await save_group_rows(conn)
    await save_controls(conn, [day for admission in admissions for day in admission.rows])


def tally_secure_scores(days: Sequence[ScoreDay]) -> Tally:
    return Tally(
        frozenset(d.score_date for d in days),
        sum(1 for d in days if d.score.partial),
        sum(1 for d in days if d.score.id_mismatch),
    )


def replay_context(raw: RawPayload) -> FetchContext:
    """The fetch context the object was stored with: when, by which run, with which 206 warning."""
    warnings = (ProviderWarning("", "", None, None, raw.warning),) if raw.warning else ()
    return FetchContext(raw.run_id, raw.fetched_at, warnings)


async def replay_secure_scores(conn: AsyncConnection, tenant_id: str) -> AsyncIterator[tuple[Any, FetchContext]]:
    """Delete the tenant's archived days from the normalized tables, then yield the archive again.

    Days stored while `keep_raw` was off have no archive and are left as they are.
    """
    await delete_days(conn, tenant_id, await archived_days(conn, tenant_id))
    codec = await codec_for(conn)
    async for raw in iter_raw_payloads(conn, tenant_id):
        yield raw.payload(codec), replay_context(raw)


RESOURCE: Resource[ScoreDay] = Resource(
    name="secureScores",
    fetch=fetch_secure_scores,
    admit=admit_secure_scores,
    save=save_secure_scores,
    tally=tally_secure_scores,
    replay=replay_secure_scores,
    save_shared=save_shared_keys,
    save_last=save_shared_controls,
)
