"""secureScoreControlProfile JSON to rows: the recorded sample, odd types, state updates, people."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from fetcher.errors import MissingField, PayloadError, WrongTenant
from fetcher.models import ControlProfileRow, StateUpdateRow
from fetcher.normalize import normalize_profile, pseudonymize, pseudonymize_people

UTC = dt.UTC
SAMPLE = Path(__file__).parent / "data" / "list-control-profiles-page1.json"
TENANT = "0b7c1e2a-1111-4222-8333-444455556666"
FETCHED = dt.datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
SALT = b"pepper-for-tests"
VENDOR = {"provider": "SecureScore", "providerVersion": None, "subProvider": None, "vendor": "Microsoft"}


def sample() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = json.loads(SAMPLE.read_text(encoding="utf-8"))["value"]
    return objects


def test_the_sample_profile_becomes_one_typed_row_and_its_updates() -> None:
    got = normalize_profile(sample()[0], FETCHED, expected_tenant=TENANT)

    assert got.profile == ControlProfileRow(
        tenant_id=TENANT,
        control_name="AdminMFAV2",
        title="Ensure multifactor authentication is enabled for all users in administrative roles",
        max_score=10.0,
        rank=1,
        tier="Core",
        action_type="Config",
        service="AzureAD",
        user_impact="Low",
        implementation_cost="Low",
        threats=["AccountBreach", "ElevationOfPrivilege"],
        remediation=sample()[0]["remediation"],
        remediation_impact="Administrators are asked for a second factor when they sign in.",
        action_url="https://security.microsoft.com/securescore?actionId=AdminMFAV2",
        deprecated=False,
        control_category="Identity",
        last_modified_at=dt.datetime(2026, 11, 20, tzinfo=UTC),
        extra={"vendorInformation": VENDOR},
        fetched_at=FETCHED,
    )
    assert got.updates == (
        StateUpdateRow(
            TENANT,
            "AdminMFAV2",
            dt.datetime(2026, 10, 2, 9, 30, tzinfo=UTC),
            "ThirdParty",
            "",
            "Covered by the MFA provider we use",
            "admin@contoso.example",
        ),
        StateUpdateRow(
            TENANT,
            "AdminMFAV2",
            dt.datetime(2026, 10, 20, 14, 5, tzinfo=UTC),
            "Default",
            "",
            "",
            "admin@contoso.example",
        ),
    )


def test_a_profile_without_state_updates_has_none() -> None:
    assert normalize_profile(sample()[1], FETCHED, expected_tenant=TENANT).updates == ()


def test_values_of_the_wrong_type_stay_in_extra_and_leave_their_column_null() -> None:
    obj = {**sample()[1], "maxScore": "lots", "rank": 2.5, "deprecated": "maybe", "threats": "Malware", "title": 7}

    row = normalize_profile(obj, FETCHED).profile

    assert (row.max_score, row.rank, row.deprecated, row.threats, row.title) == (None, None, None, None, None)
    assert row.extra == {
        "maxScore": "lots",
        "rank": 2.5,
        "deprecated": "maybe",
        "threats": "Malware",
        "title": 7,
        "vendorInformation": VENDOR,
    }


def test_numbers_and_booleans_sent_as_strings_are_read() -> None:
    obj = {**sample()[1], "maxScore": "8", "rank": "37", "deprecated": "true"}

    row = normalize_profile(obj, FETCHED).profile

    assert (row.max_score, row.rank, row.deprecated) == (8.0, 37, True)


def test_unknown_properties_go_to_extra_and_nulls_are_left_out() -> None:
    obj = {**sample()[1], "newProperty": {"a": 1}, "complianceInformation": None, "remediation": None}

    row = normalize_profile(obj, FETCHED).profile

    assert row.extra == {"newProperty": {"a": 1}, "vendorInformation": VENDOR}
    assert row.remediation is None


def test_state_updates_without_a_time_or_a_state_stay_in_extra() -> None:
    good = {"state": "Ignored", "updatedBy": "a@b.example", "updatedDateTime": "2026-11-01T00:00:00Z"}
    bad = [{"state": "Ignored", "updatedDateTime": "yesterday"}, {"state": "", "updatedDateTime": "2026-11-02"}, "x"]

    got = normalize_profile({**sample()[1], "controlStateUpdates": [good, *bad]}, FETCHED)

    assert [(u.state, u.updated_at) for u in got.updates] == [("Ignored", dt.datetime(2026, 11, 1, tzinfo=UTC))]
    assert got.profile.extra["controlStateUpdates"] == bad


def test_a_repeated_state_update_is_kept_once_the_last_one_winning() -> None:
    first = {"state": "Ignored", "comment": "one", "updatedDateTime": "2026-11-01T00:00:00Z"}
    second = {**first, "comment": "two"}

    got = normalize_profile({**sample()[1], "controlStateUpdates": [first, second]}, FETCHED)

    assert [u.comment for u in got.updates] == ["two"]


def test_pseudonymized_profiles_store_a_keyed_hash_instead_of_people() -> None:
    got = normalize_profile(pseudonymize_people(sample()[0], SALT), FETCHED)

    expected = "hmac-sha256:" + hmac.new(SALT, b"admin@contoso.example", hashlib.sha256).hexdigest()
    assert [(u.updated_by, u.assigned_to) for u in got.updates] == [(expected, ""), (expected, "")]
    assert "admin@contoso.example" not in repr(got)


def test_pseudonymizing_reaches_unusable_state_updates_and_leaves_the_rest_alone() -> None:
    bad = {"state": None, "updatedBy": "Ann Example", "assignedTo": "Bob Example", "comment": "Ann Example?"}
    obj = {**sample()[1], "controlStateUpdates": [bad, "junk"]}

    got = pseudonymize_people(obj, SALT)

    assert got == {
        **obj,
        "controlStateUpdates": [
            {**bad, "updatedBy": pseudonymize("Ann Example", SALT), "assignedTo": pseudonymize("Bob Example", SALT)},
            "junk",
        ],
    }
    assert obj["controlStateUpdates"][0]["updatedBy"] == "Ann Example"  # the original is not changed


@pytest.mark.parametrize("obj", [[], {"id": "x"}, {"controlStateUpdates": "none"}])
def test_pseudonymizing_an_object_without_updates_returns_it_as_it_is(obj: Any) -> None:
    assert pseudonymize_people(obj, SALT) is obj


@pytest.mark.parametrize(
    ("value", "salt", "expected"),
    [
        ("Ann", None, "Ann"),
        ("", SALT, ""),
        (None, SALT, None),
        (" ANN@Example.com ", SALT, pseudonymize("ann@example.com", SALT)),
    ],
)
def test_pseudonymize(value: str | None, salt: bytes | None, expected: str | None) -> None:
    assert pseudonymize(value, salt) == expected


def test_another_salt_gives_another_hash() -> None:
    assert pseudonymize("ann@example.com", b"one") != pseudonymize("ann@example.com", b"two")


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"id": None}, MissingField, "id"),
        ({"id": "  "}, MissingField, "id"),
        ({"azureTenantId": None}, MissingField, "azureTenantId"),
        ({"azureTenantId": "11111111-1111-4111-8111-111111111111"}, WrongTenant, "azureTenantId"),
    ],
)
def test_a_profile_that_cannot_be_stored_is_refused_naming_the_field(
    change: dict[str, Any], error: type[PayloadError], field: str
) -> None:
    with pytest.raises(error) as raised:
        normalize_profile({**sample()[0], **change}, FETCHED, expected_tenant=TENANT)

    assert (raised.value.field, raised.value.tenant_id) == (field, TENANT)


def test_a_profile_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PayloadError, match="not a JSON object but list"):
        normalize_profile([], FETCHED, expected_tenant=TENANT)


def test_the_tenant_id_is_compared_without_case() -> None:
    obj = {**sample()[0], "azureTenantId": TENANT.upper()}

    assert normalize_profile(obj, FETCHED, expected_tenant=TENANT).profile.tenant_id == TENANT
