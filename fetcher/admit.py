"""Admission, pure: the objects Graph sent (or the archive kept) become rows, or are refused with a reason.

`admit` is the one gate every object passes, on a fetch and on `fetcher rebuild` alike, in this order:

1. it can be written as JSON (nested at most `MAX_STORED_DEPTH` levels: what orjson writes, and the
   archive and the JSON columns are written with orjson);
2. no string in it holds a NUL character (PostgreSQL's text and jsonb refuse `\\u0000`; refused on
   every database alike; the reason names the object's `id` and the first property path holding one);
3. the resource's normalizer accepts it (identity present and well formed, the right tenant, ...:
   `fetcher.errors.PayloadError`);
4. the resource's `check` finds its rows storable: no value longer than its column (PostgreSQL refuses
   `varchar(n)` overflows where SQLite keeps them; refused on every database alike, so both hold the same
   days).

1 and 2 cost writing each object back as JSON; where the resource gives a `Bound` (the object's nesting read
from its row) and the object's page held no `\\u0000` escape (`FetchContext.nul_free`), the object is normalized
first and passes 1 and 2 without that when its bound is within the limit, with the same outcome: any other
object (one the normalizer refuses, one whose bound is over) is screened in full first, as before.

A refused object becomes a `Rejection` (quarantined with its reason and body, capped when stored); an
object for another tenant also marks the tenant failed (`wrong_tenant`). Admitted objects become rows
and, when the archive is kept, archive rows packed by the resource.

4. with a `Unique` rule, at most one row per key in one answer (secureScores: one object per tenant-day):
   the rule keeps one and the other is quarantined with the reason, so nothing vanishes without a
   trace. A rebuild admits without it: there, a later archived object of a day replaces an earlier one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from fetcher.errors import PayloadError, WrongTenant
from fetcher.models import FetchContext
from fetcher.store.archive import RawPayload, Rejection
from fetcher.text import one_line

MAX_STORED_DEPTH = 254  # orjson's limit when writing JSON
# A JSON-escaped NUL (\u0000 not itself behind an escaped backslash).
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

TOO_DEEP = f"the object is nested deeper than the {MAX_STORED_DEPTH} levels that can be archived and stored"
HOLDS_NUL = "holds a NUL character (\\u0000), which PostgreSQL cannot store; refused on every database alike"

Row = TypeVar("Row")
# (object, how it was fetched, the tenant it must belong to) -> its row; raises PayloadError.
Normalizer = Callable[[Any, FetchContext, str], Row]
# (object, its row, how it was fetched, its compact JSON) -> its archive row.
Archiver = Callable[[Any, Row, FetchContext, bytes], RawPayload]
# (object, its row) -> why the row cannot be stored, or None.
Checker = Callable[[Any, Row], str | None]
# a row -> at least how deep the object it was made from nests (0 for a scalar, 1 + its deepest member's
# for an array or object), for objects the normalizer accepted.
Bound = Callable[[Row], int]


def too_long(field: str, value: str | None, limit: int | None) -> str | None:
    """Why `value` does not fit a `varchar(limit)` column, naming the field; None when it fits.

    PostgreSQL counts characters (code points), as `len` does.
    """
    if value is None or limit is None or len(value) <= limit:
        return None
    return f"{field} is {len(value)} characters long; the column holds at most {limit}"


@dataclass(frozen=True)
class Unique(Generic[Row]):
    """At most one row per `key` in one answer. `replaces(new, kept)`: whether a newcomer takes the place
    of the row kept so far; `reason(refused, stored)`: the quarantine reason of the one refused."""

    key: Callable[[Row], Hashable]
    replaces: Callable[[Row, Row], bool]
    reason: Callable[[Row, Row], str]
    # Whether any newcomer could replace this row (true whenever `replaces(new, row)` could be): only such
    # a row's object's JSON is kept for the quarantine in case it is.
    replaceable: Callable[[Row], bool] = lambda _row: True


@dataclass
class _Kept:
    """Where the row kept for a key sits in the admission, and its object's JSON (for the quarantine;
    None when `Unique.replaceable` said no newcomer can replace it)."""

    row: int
    raw: int | None
    obj: int | None
    text: bytes | None


@dataclass
class Admission(Generic[Row]):
    """What one tenant's objects became: rows to store, archive rows, refused payloads."""

    rows: list[Row] = field(default_factory=list)
    raw: list[RawPayload] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    wrong_tenant: WrongTenant | None = None
    objects: list[Any] = field(default_factory=list)  # the admitted objects themselves, when asked (`get`)
    kept: dict[Hashable, _Kept] = field(default_factory=dict)  # by `Unique.key`, when a rule applies


def admit(
    objects: Iterable[Any],
    context: FetchContext,
    *,
    tenant_id: str,
    normalize: Normalizer[Row],
    archive: Archiver[Row] | None = None,
    check: Checker[Row] | None = None,
    keep_objects: bool = False,
    into: Admission[Row] | None = None,
    unique: Unique[Row] | None = None,
    bound: Bound[Row] | None = None,
) -> Admission[Row]:
    """Admit `objects` (received together, as `context` says) for `tenant_id`, into `into` or a new admission.

    `unique`: the rule for two objects with one key in the answer `into` collects (see the module's 4.).
    `bound`: the object's nesting from its row, which spares writing it as JSON (see the module's docstring).
    """
    admission = Admission[Row]() if into is None else into
    quick = bound if context.nul_free else None
    for obj in objects:
        _admit_one(obj, context, tenant_id, (normalize, check, quick), archive, keep_objects, admission, unique)
    return admission


def _admit_one(
    obj: Any,
    context: FetchContext,
    tenant_id: str,
    rules: tuple[Normalizer[Row], Checker[Row] | None, Bound[Row] | None],
    archive: Archiver[Row] | None,
    keep_objects: bool,
    admission: Admission[Row],
    unique: Unique[Row] | None,
) -> None:
    normalize, check, bound = rules
    text: bytes | None = None
    row = _quick(obj, context, tenant_id, normalize, bound)
    if row is None:  # screened in full, as every object was before `bound`
        admitted = _screened(obj, context, tenant_id, normalize, admission)
        if admitted is None:
            return
        row, text = admitted
    problem = check(obj, row) if check is not None else None
    if problem is not None:
        body = text if text is not None else orjson.dumps(obj)
        admission.rejections.append(Rejection(tenant_id, context.run_id, context.fetched_at, problem, body))
        return
    raw = None
    if archive is not None:
        text = text if text is not None else orjson.dumps(obj)
        raw = archive(obj, row, context, text)
    if unique is not None:
        kept = admission.kept.get(unique.key(row))
        if kept is not None:
            _settle(admission, unique, kept, row, raw, obj, keep_objects, text, context, tenant_id)
            return
        if text is None and unique.replaceable(row):
            text = orjson.dumps(obj)
        admission.kept[unique.key(row)] = _Kept(
            len(admission.rows),
            len(admission.raw) if raw is not None else None,
            len(admission.objects) if keep_objects else None,
            text,
        )
    admission.rows.append(row)
    if keep_objects:
        admission.objects.append(obj)
    if raw is not None:
        admission.raw.append(raw)


def _screened(
    obj: Any, context: FetchContext, tenant_id: str, normalize: Normalizer[Row], admission: Admission[Row]
) -> tuple[Row, bytes] | None:
    """The object's row and JSON after the full screening (1 to 3 of the module's docstring), or None with
    its rejection added to `admission`."""
    text = _dumps(obj)
    reason, body = screen(obj, text)
    if reason is not None:
        admission.rejections.append(Rejection(tenant_id, context.run_id, context.fetched_at, reason, body))
        return None
    try:
        return normalize(obj, context, tenant_id), body
    except PayloadError as error:
        admission.rejections.append(Rejection(tenant_id, context.run_id, context.fetched_at, str(error), body))
        if isinstance(error, WrongTenant) and admission.wrong_tenant is None:
            admission.wrong_tenant = error
        return None


def _quick(
    obj: Any, context: FetchContext, tenant_id: str, normalize: Normalizer[Row], bound: Bound[Row] | None
) -> Row | None:
    """The object's row when it passes the screening without being written as JSON: no NUL (its page held no
    `\\u0000` escape: `bound` is None otherwise) and nested within `MAX_STORED_DEPTH` by its row's `bound`.
    None for any other object, which is then screened in full before it is normalized, as before: so a
    refused object gets the same reason either way (normalizing is pure, and done again)."""
    if bound is None:
        return None
    try:
        row = normalize(obj, context, tenant_id)
    except PayloadError:
        return None
    return row if bound(row) <= MAX_STORED_DEPTH else None


def _settle(
    admission: Admission[Row],
    unique: Unique[Row],
    kept: _Kept,
    row: Row,
    raw: RawPayload | None,
    obj: Any,
    keep_objects: bool,
    text: bytes | None,
    context: FetchContext,
    tenant_id: str,
) -> None:
    """A second row for a key: the rule keeps one in the admission's place and quarantines the other."""
    held = admission.rows[kept.row]
    if text is None:  # rare: written only now
        text = orjson.dumps(obj)
    if not unique.replaces(row, held):
        reason = unique.reason(row, held)
        admission.rejections.append(Rejection(tenant_id, context.run_id, context.fetched_at, reason, text))
        return
    assert kept.text is not None, "Unique.replaceable said no newcomer could replace this row"
    reason = unique.reason(held, row)
    admission.rejections.append(Rejection(tenant_id, context.run_id, context.fetched_at, reason, kept.text))
    admission.rows[kept.row] = row
    if kept.raw is not None and raw is not None:
        admission.raw[kept.raw] = raw
    if kept.obj is not None and keep_objects:
        admission.objects[kept.obj] = obj
    kept.text = text


def screen(obj: Any, text: bytes | None) -> tuple[str | None, bytes]:
    """(None, text) for an object that can be stored; else (why not, the body to quarantine)."""
    if text is None:
        return TOO_DEEP, _dumps_deep(obj)
    if b"\\u0000" in text and _NUL.search(text):
        return holds_nul(obj), text
    return None, text


def holds_nul(obj: Any) -> str:
    """The quarantine reason of an object holding a NUL, on one line: the object's `id` (a secureScore's
    names the tenant and the day) and the path of the first string or key holding it, as
    `object tid_2026-11-28: controlScores[3].controlName holds a NUL character ...`."""
    ident = obj.get("id") if isinstance(obj, dict) else None
    who = f"object {one_line(ident, limit=120)}" if isinstance(ident, str) else "an object without an id"
    return f"{who}: {one_line(nul_path(obj) or 'a string', limit=160)} {HOLDS_NUL}"


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL sits in `value` (`controlScores[3].controlName`; a key holding one is named with
    the NUL shown as `\\x00`), or None. Only called once the object's JSON is known to hold one: its
    nesting is within `MAX_STORED_DEPTH`, so the recursion is bounded."""
    if isinstance(value, str):
        return path or "(the object)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return here.replace("\x00", "\\x00")
            found = nul_path(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _dumps(obj: Any) -> bytes | None:
    """The object as compact JSON, or None when it is too deep to write: orjson reads JSON nested 1024
    levels deep (deeper answers are refused as invalid) but writes only `MAX_STORED_DEPTH`."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return None


def _dumps_deep(obj: Any) -> bytes:
    """A quarantine body for an object orjson cannot write; empty if Python's recursion limit is met too."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    except (RecursionError, ValueError):
        return b""
