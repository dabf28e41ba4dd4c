"""Admission, pure: every object passes one gate (depth, NUL, identity, tenant) on a fetch and a rebuild alike."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fetcher.admit import HOLDS_NUL, TOO_DEEP, Admission, admit
from fetcher.graph import holds_no_nul
from fetcher.models import FetchContext, ScoreDay
from fetcher.resources.secure_scores import admit_secure_scores
from fetcher.store.archive import Rejection
from tests.payloads import OTHER_TENANT, TENANT, full_day

AT = dt.datetime(2026, 11, 28, 6, 15, tzinfo=dt.UTC)
CONTEXT = FetchContext("run-1", AT)


def admitted(*objects: Any, keep_raw: bool = True) -> Admission[ScoreDay]:
    return admit_secure_scores(
        objects, CONTEXT, tenant_id=TENANT, keep_raw=keep_raw, keep_objects=False, into=Admission()
    )


def nested(depth: int) -> dict[str, Any]:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return {**full_day(), "nested": value}


def test_a_valid_object_becomes_a_day_and_an_archive_row() -> None:
    obj = full_day()
    admission = admitted(obj)
    assert [d.score.id for d in admission.rows] == [obj["id"]]
    assert [(r.tenant_id, r.score_date, r.size, r.run_id) for r in admission.raw] == [
        (TENANT, admission.rows[0].score_date, len(orjson.dumps(obj)), "run-1")
    ]
    assert (admission.rejections, admission.wrong_tenant) == ([], None)


def test_without_the_archive_no_archive_rows_are_packed() -> None:
    assert admitted(full_day(), keep_raw=False).raw == []


def test_an_object_nested_too_deep_to_store_is_quarantined_whole() -> None:
    obj = nested(300)
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    admission = admitted(obj)
    assert admission.rejections == [Rejection(TENANT, "run-1", AT, TOO_DEEP, body)]
    assert (admission.rows, admission.raw) == ([], [])


def test_an_object_nested_within_the_limit_is_admitted() -> None:
    assert len(admitted(nested(200)).rows) == 1


def test_an_object_holding_a_nul_character_is_quarantined() -> None:
    obj = {**full_day(), "vendor": "Micro\x00soft"}
    admission = admitted(obj)
    reason = f"object {obj['id']}: vendor {HOLDS_NUL}"
    assert admission.rejections == [Rejection(TENANT, "run-1", AT, reason, orjson.dumps(obj))]
    assert admission.rows == []


def _with_nul(where: str) -> dict[str, Any]:
    obj = full_day()
    if where == "key":
        obj["controlScores"][1]["odd\x00key"] = "x"
    elif where == "extra":
        obj["unknownProperty"] = {"nested": ["fine", "bad\x00"]}
    else:
        obj["controlScores"][1][where] = "a\x00b"
    return obj


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("controlName", "controlScores[1].controlName"),
        ("description", "controlScores[1].description"),
        ("implementationStatus", "controlScores[1].implementationStatus"),
        ("extra", "unknownProperty.nested[1]"),
        ("key", "controlScores[1].odd\\x00key"),
    ],
)
def test_the_quarantine_reason_of_a_nul_names_the_object_and_the_property_path(where: str, path: str) -> None:
    """One line an operator can act on: the id (tenant and day) and where the NUL sits."""
    obj = _with_nul(where)
    (rejection,) = admitted(obj).rejections
    assert rejection.reason == f"object {obj['id']}: {path} {HOLDS_NUL}"
    assert rejection.body == orjson.dumps(obj)


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    assert len(admitted({**full_day(), "vendor": "Micro\\u0000soft"}).rows) == 1


def test_an_object_for_another_tenant_is_quarantined_and_marks_the_tenant() -> None:
    admission = admitted(full_day(OTHER_TENANT))
    (rejection,) = admission.rejections
    assert admission.wrong_tenant is not None
    assert rejection.reason == str(admission.wrong_tenant)
    assert admission.rows == []


def test_an_object_without_an_identity_is_quarantined_with_the_reason() -> None:
    obj = {k: v for k, v in full_day().items() if k != "id"}
    (rejection,) = admitted(obj).rejections
    assert "id" in rejection.reason
    assert rejection.body == orjson.dumps(obj)


def test_one_refused_object_costs_only_itself() -> None:
    good = full_day()
    admission = admitted({**full_day(), "vendor": "\x00"}, good)
    assert [d.score.id for d in admission.rows] == [good["id"]]
    assert len(admission.rejections) == 1


def test_admit_adds_to_the_admission_it_is_given() -> None:
    into: Admission[int] = Admission()
    admit([1], CONTEXT, tenant_id=TENANT, normalize=lambda o, _c, _t: o, into=into)
    admit([2], CONTEXT, tenant_id=TENANT, normalize=lambda o, _c, _t: o, into=into)
    assert into.rows == [1, 2]


# ---------------------------------------------------- the quick screening: the same outcome as in full

QUICK = FetchContext("run-1", AT, nul_free=True)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
    | st.sampled_from(["\x00", "a\x00", "-1", "true", "2026-11-28T06:15:00Z", "x"])
)
_keys = st.text(max_size=3) | st.sampled_from(["controlName", "basis", "score", "on", "vendor", "id", "k\x00"])
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3), max_leaves=6
)


@st.composite
def _deep(draw: st.DrawFn) -> Any:
    """A value nesting about as deep as may be stored (`MAX_STORED_DEPTH`, counted from the object)."""
    value = draw(_scalars | st.just([]) | st.just({}))
    for _ in range(draw(st.integers(min_value=246, max_value=254) | st.integers(min_value=0, max_value=3))):
        value = [value] if draw(st.booleans()) else {draw(_keys): value}
    return value


@st.composite
def _changed_day(draw: st.DrawFn) -> dict[str, Any]:
    """A secureScore with a few values changed anywhere: in the object, its vendor, an item of its lists."""
    obj = full_day(day=draw(st.sampled_from([dt.date(2026, 11, 27), dt.date(2026, 11, 28)])))
    if draw(st.booleans()):
        obj["id"] = draw(st.sampled_from([obj["id"], obj["id"].upper(), "not-its-day"]))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        value = draw(_deep() | _values)
        place = draw(st.sampled_from(["object", "vendor", "comparative", "control", "list"]))
        key = draw(_keys | st.sampled_from(sorted(obj)))
        if place == "object":
            obj[key] = value
        elif place == "vendor" and isinstance(obj.get("vendorInformation"), dict):
            obj["vendorInformation"][key] = value
        elif place in ("comparative", "control"):
            items = obj.get("averageComparativeScores" if place == "comparative" else "controlScores")
            items = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
            if items:
                draw(st.sampled_from(items))[key] = value
        elif isinstance(obj.get("controlScores"), list):
            obj["controlScores"].append(value)
    return obj


def _nul_free(objects: list[Any]) -> bool:
    """What the page would say: its body (written as Graph writes it) holds no `\\u0000` escape."""
    return holds_no_nul(json.dumps(objects).encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_changed_day(), min_size=1, max_size=3), st.booleans())
def test_the_quick_screening_admits_and_refuses_as_the_full_one(objects: list[Any], keep_raw: bool) -> None:
    """Objects from a page without a NUL escape, normalized first and bounded by their rows, give the same
    rows, archive rows, rejections (reasons and bodies) and wrong tenant as every object screened in full."""
    quick = QUICK if _nul_free(objects) else CONTEXT

    def run(context: FetchContext) -> Admission[ScoreDay]:
        return admit_secure_scores(
            copy.deepcopy(objects), context, tenant_id=TENANT, keep_raw=keep_raw, keep_objects=False, into=Admission()
        )

    full, fast = run(CONTEXT), run(quick)
    assert (fast.rows, fast.rejections, fast.wrong_tenant) == (full.rows, full.rejections, full.wrong_tenant)
    assert [(r.score_date, r.size, r.run_id) for r in fast.raw] == [(r.score_date, r.size, r.run_id) for r in full.raw]


def test_a_quick_admission_keeps_no_json_for_a_day_no_newcomer_can_replace() -> None:
    """The JSON of a kept day is written only if a later object of its day could replace it (its id does
    not name its day); a newcomer that does replace it quarantines the kept one's JSON."""
    named, misnamed = full_day(), {**full_day(), "id": "not-its-day"}
    admission = admit_secure_scores(
        [misnamed, named], QUICK, tenant_id=TENANT, keep_raw=False, keep_objects=False, into=Admission()
    )
    assert [d.score.id for d in admission.rows] == [named["id"]]
    assert [r.body for r in admission.rejections] == [orjson.dumps(misnamed)]
    only = admit_secure_scores([named], QUICK, tenant_id=TENANT, keep_raw=False, keep_objects=False, into=Admission())
    assert [k.text for k in only.kept.values()] == [None]


def _place(obj: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    if where == "object":
        obj["extra"] = value
    elif where == "vendor":
        obj["vendorInformation"]["extra"] = value
    elif where == "comparative":
        obj["averageComparativeScores"][0]["extra"] = value
    elif where == "control":
        obj["controlScores"][0]["score"] = value
    elif where == "unnamed control":
        obj["controlScores"].append([value])
    else:
        obj[where] = value  # a list in place of a list, an object in place of an object
    return obj


@pytest.mark.parametrize("where", ["object", "vendor", "comparative", "control", "unnamed control", "controlScores"])
@pytest.mark.parametrize("depth", range(248, 256))
def test_the_quick_screening_finds_the_deepest_storable_object_where_the_full_one_does(where: str, depth: int) -> None:
    """Around the limit, wherever the nesting is, the quick screening refuses exactly what the full one does."""
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}

    def run(context: FetchContext) -> Admission[ScoreDay]:
        obj = _place(full_day(), where, copy.deepcopy(value))
        return admit_secure_scores(
            [obj], context, tenant_id=TENANT, keep_raw=False, keep_objects=False, into=Admission()
        )

    full, fast = run(CONTEXT), run(QUICK)
    assert (fast.rows, fast.rejections) == (full.rows, full.rejections)
    assert {len(full.rows), len(full.rejections)} == {0, 1}
