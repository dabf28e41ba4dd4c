"""Admission, pure: every object passes one gate (depth, NUL, identity, tenant) on a fetch and a rebuild alike."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson

from fetcher.admit import HOLDS_NUL, TOO_DEEP, Admission, admit
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
    assert admission.rejections == [Rejection(TENANT, "run-1", AT, HOLDS_NUL, orjson.dumps(obj))]
    assert admission.rows == []


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
