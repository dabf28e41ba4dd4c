"""The secureScores resource: its fetch, admit and save wired together; its archive replayed as fetched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from fetcher.admit import Admission
from fetcher.models import FetchContext, ScoreDay
from fetcher.resources.secure_scores import admit_secure_scores, replay_context, tally_secure_scores
from fetcher.store.archive import pack

TODAY = datetime.now(UTC).date()


def test_replay_context_restores_the_partial_flag() -> None:
    raw = pack(
        {"a": 1},
        tenant_id="t",
        score_date=TODAY,
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
        run_id="r",
        warning='199 - "Microsoft/SecureScore/500/12"',
    )

    context = replay_context(raw)

    warning = '199 - "Microsoft/SecureScore/500/12"'
    assert (context.partial, context.warning_text, context.run_id) == (True, warning, "r")
    assert not replay_context(raw._replace(warning=None)).partial


def _object(**changes: object) -> dict[str, object]:
    tenant = "11111111-1111-1111-1111-111111111111"
    obj: dict[str, object] = {
        "id": f"{tenant}_2026-11-01",
        "azureTenantId": tenant,
        "createdDateTime": "2026-11-01T03:00:00Z",
        "currentScore": 10.0,
        "maxScore": 20.0,
        "vendorInformation": {"vendor": "Microsoft", "provider": "SecureScore"},
        "averageComparativeScores": [{"basis": "AllTenants", "averageScore": 40.0}],
        "controlScores": [
            {"controlName": "MFARegistrationV2", "controlCategory": "Identity", "score": 5.0},
            {"controlName": "BlockLegacyAuth", "controlCategory": "Identity", "score": 5.0},
        ],
    }
    obj.update(changes)
    return obj


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"id": "x" * 100}, None),
        ({"id": "x" * 101}, "id is 101 characters long; the column holds at most 100"),
        (
            {"vendorInformation": {"vendor": "V" * 257}},
            "vendorInformation.vendor is 257 characters long; the column holds at most 256",
        ),
        (
            {"controlScores": [{"controlName": "ok"}, {"controlName": "é" * 257}]},
            "controlScores[1].controlName is 257 characters long; the column holds at most 256",
        ),
        (
            {"controlScores": [{"controlName": "ok", "controlCategory": "C" * 300}]},
            "controlScores[0].controlCategory is 300 characters long; the column holds at most 256",
        ),
        (
            {"averageComparativeScores": [{"basis": "B" * 129, "averageScore": 1.0}]},
            "averageComparativeScores[0].basis is 129 characters long; the column holds at most 128",
        ),
    ],
    ids=["fits", "id at its limit", "id", "vendor", "control name (characters, not bytes)", "category", "basis"],
)
def test_a_value_longer_than_its_column_is_refused_with_the_field_and_the_limit(
    changes: dict[str, object], reason: str | None
) -> None:
    obj = _object(**changes)
    context = FetchContext("run", datetime(2026, 11, 1, 4, tzinfo=UTC))

    admission = admit_secure_scores(
        [obj], context, tenant_id=str(obj["azureTenantId"]), keep_raw=False, keep_objects=False, into=Admission()
    )

    assert [r.reason for r in admission.rejections] == ([reason] if reason else [])
    assert len(admission.rows) == (0 if reason else 1)


# ------------------------------------------------------------------------ one object per day (issue 12)

TENANT_ID = "0b7c1e2a-1111-4222-8333-444455556666"
AT = datetime(2026, 11, 28, 6, 15, tzinfo=UTC)


def issue_object(id_day: str, created_day: str, current: float, maximum: float) -> dict[str, Any]:
    return {
        "id": f"{TENANT_ID}_{id_day}",
        "azureTenantId": TENANT_ID,
        "createdDateTime": f"{created_day}T00:00:00Z",
        "currentScore": current,
        "maxScore": maximum,
        "controlScores": [],
    }


def admit_answer(*objects: dict[str, Any], keep_raw: bool = True, replay: bool = False) -> Admission[ScoreDay]:
    return admit_secure_scores(
        objects,
        FetchContext("run-1", AT),
        tenant_id=TENANT_ID,
        keep_raw=keep_raw,
        keep_objects=True,
        into=Admission(),
        replay=replay,
    )


def test_the_issues_answer_stores_the_object_whose_id_names_its_day_and_quarantines_the_other() -> None:
    """Issue 12: two ids, one createdDateTime; today the second silently replaced the first."""
    first = issue_object("2024-01-01", "2024-01-01", 600.0, 1000.0)
    second = issue_object("2024-01-02", "2024-01-01", 200.0, 274.0)

    admission = admit_answer(first, second)

    assert [(d.score.id, d.score.current_score, d.score.id_mismatch) for d in admission.rows] == [
        (first["id"], 600.0, False)
    ]
    assert [(r.reason, orjson.loads(r.body)) for r in admission.rejections] == [
        (
            f"secureScore {second['id']} is a second object for 2024-01-01 in one answer; {first['id']} was "
            "stored for that day: its id names its tenant and day, this one's does not",
            second,
        )
    ]
    assert [orjson.loads(r.text or b"") for r in admission.raw] == [first]
    assert admission.objects == [first]


def test_a_later_object_whose_id_names_the_day_takes_the_place_of_one_whose_id_does_not() -> None:
    mismatched = issue_object("2024-01-02", "2024-01-01", 200.0, 274.0)
    matching = issue_object("2024-01-01", "2024-01-01", 600.0, 1000.0)

    admission = admit_answer(mismatched, matching)

    assert [d.score.id for d in admission.rows] == [matching["id"]]
    assert [orjson.loads(r.body) for r in admission.rejections] == [mismatched]
    assert [orjson.loads(r.text or b"") for r in admission.raw] == [matching]
    assert admission.objects == [matching]


@pytest.mark.parametrize("id_days", [("2024-01-01", "2024-01-01"), ("2024-01-05", "2024-01-06")])
def test_between_equals_the_first_graph_sent_is_stored(id_days: tuple[str, str]) -> None:
    first = issue_object(id_days[0], "2024-01-01", 1.0, 10.0)
    second = issue_object(id_days[1], "2024-01-01", 2.0, 10.0)

    admission = admit_answer(first, second, keep_raw=False)

    assert [d.score.current_score for d in admission.rows] == [1.0]
    assert [r.reason.endswith("it came first in Graph's answer") for r in admission.rejections] == [True]


def test_a_lone_object_whose_id_names_another_day_is_stored_under_its_date_and_flagged() -> None:
    admission = admit_answer(issue_object("2024-01-02", "2024-01-01", 200.0, 274.0))

    assert [(d.score_date.isoformat(), d.score.id_mismatch) for d in admission.rows] == [("2024-01-01", True)]
    assert admission.rejections == []
    assert tally_secure_scores(admission.rows).mismatched_ids == 1


def test_a_replayed_archive_keeps_every_object_of_a_day_in_order() -> None:
    """A rebuild replays a day's archived objects in the order fetched: the later replaces the earlier."""
    older = issue_object("2024-01-01", "2024-01-01", 1.0, 10.0)
    newer = issue_object("2024-01-01", "2024-01-01", 2.0, 10.0)

    admission = admit_answer(older, newer, keep_raw=False, replay=True)

    assert [d.score.current_score for d in admission.rows] == [1.0, 2.0]
    assert admission.rejections == []
