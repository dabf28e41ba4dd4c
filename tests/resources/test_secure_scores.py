"""The secureScores resource: its fetch, admit and save wired together; its archive replayed as fetched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fetcher.admit import Admission
from fetcher.models import FetchContext
from fetcher.resources.secure_scores import admit_secure_scores, replay_context
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
