"""secureScore JSON to rows: the recorded sample, thin days, odd types, and arbitrary JSON."""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fetcher.errors import MissingField, PayloadError, WrongTenant
from fetcher.models import ComparativeRow, ControlScoreRow, FetchContext, ProviderWarning, ScoreDay, ScoreRow
from fetcher.normalize import (
    CONTROL_FIELDS,
    CONTROL_RULES,
    NAME_ONLY,
    NO_EXTRA,
    UNPARSED,
    as_bool,
    as_datetime,
    as_int,
    drop_placeholders,
    nesting,
    normalize_score,
    read_fields,
    score_nesting_bound,
)
from tests import payloads
from tests.payloads import TENANT

UTC = dt.UTC
SAMPLE = Path(__file__).parent / "data" / "list-secure-scores-top2.json"
FETCHED = dt.datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
CONTEXT = FetchContext(run_id="run-1", fetched_at=FETCHED)
NEWEST = dt.date(2026, 11, 27)
OLDER = dt.date(2026, 11, 26)
SERVICES = ["HasAADP1", "HasAADP2", "HasMCAS", "HasM365E5", "HasMDEP2", "HasSPOP2"]


def sample() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = json.loads(SAMPLE.read_text(encoding="utf-8"))["value"]
    return objects


def normalize(obj: Any, context: FetchContext = CONTEXT) -> ScoreDay:
    return normalize_score(obj, context, expected_tenant=TENANT)


def score_row(day: dt.date = NEWEST, **changes: Any) -> ScoreRow:
    """The `secure_scores` row of a sample day; `changes` replace columns."""
    row = ScoreRow(
        tenant_id=TENANT,
        score_date=day,
        id=f"{TENANT}_{day.isoformat()}",
        created_at=dt.datetime(day.year, day.month, day.day, tzinfo=UTC),
        current_score=815.22 if day == NEWEST else 806.22,
        max_score=1376.0,
        active_user_count=3,
        licensed_user_count=0,
        enabled_services=SERVICES,
        vendor="Microsoft",
        provider="SecureScore",
        provider_version=None,
        sub_provider=None,
        partial=False,
        warning=None,
        extra={},
        fetched_at=FETCHED,
        run_id="run-1",
    )
    return row._replace(**changes)


def control_row(name: str, day: dt.date = NEWEST, **changes: Any) -> ControlScoreRow:
    """A bare control row; `changes` fill in what the payload says."""
    row = ControlScoreRow(
        tenant_id=TENANT,
        score_date=day,
        control_name=name,
        score=None,
        score_in_percentage=None,
        implementation_status=None,
        last_synced=None,
        is_on=None,
        count=None,
        total=None,
        extra={},
        control_category=None,
        description=None,
    )
    return row._replace(**changes)


def comparative_row(basis: str, day: dt.date = NEWEST, **changes: Any) -> ComparativeRow:
    row = ComparativeRow(
        tenant_id=TENANT,
        score_date=day,
        basis=basis,
        average_score=None,
        seat_size_lower=None,
        seat_size_upper=None,
        extra={},
    )
    return row._replace(**changes)


def with_control(**properties: Any) -> dict[str, Any]:
    """The sample's newest day with one extra control "X" made of `properties`."""
    obj = sample()[0]
    obj["controlScores"].append({"controlName": "X", **properties})
    return obj


def control_x(obj: dict[str, Any]) -> ControlScoreRow:
    return next(c for c in normalize(obj).controls if c.control_name == "X")


# ------------------------------------------------------------------------------------- the sample


def test_sample_newest_day_becomes_whole_rows() -> None:
    """Every documented and undocumented property of a full day lands in its column or `extra`."""
    day = normalize(sample()[0])

    synced = dt.datetime(2026, 11, 25, 13, 4, 6, tzinfo=UTC)
    assert day == ScoreDay(
        score=score_row(),
        comparatives=(
            comparative_row(
                "AllTenants",
                average_score=52.86,
                extra={
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
            ),
            comparative_row(
                "TotalSeats",
                average_score=48.1,
                seat_size_lower=1,
                seat_size_upper=100,
                extra={"appsScore": 53.64, "appsScoreMax": 146.11},
            ),
        ),
        controls=(
            control_row(
                "IntegratedApps",
                control_category="Identity",
                score=4.0,
                score_in_percentage=100.0,
                description="Restricting user consent to applications lowers the risk of malicious apps.",
                implementation_status="You have a user consent policy in place.",
                last_synced=synced,
                is_on=True,
            ),
            control_row(
                "MFARegistrationV2",
                control_category="Identity",
                score=9.0,
                score_in_percentage=100.0,
                description="Multifactor authentication protects accounts from password attacks.",
                implementation_status="You have 0 out of 3 users that aren't registered with MFA.",
                last_synced=synced,
                count=3,
                total=3,
            ),
            control_row(
                "meeting_restrictanonymousjoin_v1",
                control_category="Apps",
                score=0.0,
                score_in_percentage=0.0,
                description="Restricting anonymous users from joining meetings.",
                implementation_status="current status: On",
                last_synced=dt.datetime(2026, 11, 11, 9, 38, 38, tzinfo=UTC),
                is_on=False,
            ),
            control_row(
                "OneAdmin",
                control_category="Identity",
                score=0.0,
                score_in_percentage=0.0,
                description="<p>Having more than one global administrator helps with continuity.</p>",
                implementation_status="You currently have 1 global admins.",
                last_synced=dt.datetime(2026, 11, 26, 15, 32, 3, tzinfo=UTC),
                count=1,
            ),
        ),
    )


def test_sample_older_day_is_thin() -> None:
    """A thin day has no comparatives, and its controls keep only score, category and status."""
    day = normalize(sample()[1])

    assert day == ScoreDay(
        score=score_row(OLDER),
        comparatives=(),
        controls=(
            control_row(
                "IntegratedApps",
                OLDER,
                control_category="Identity",
                score=4.0,
                score_in_percentage=100.0,
                implementation_status="You have a user consent policy in place.",
            ),
            control_row(
                "MFARegistrationV2",
                OLDER,
                control_category="Identity",
                score=9.0,
                score_in_percentage=100.0,
                implementation_status="You have 0 out of 0 users that aren't registered with MFA.",
            ),
            control_row(
                "meeting_restrictanonymousjoin_v1",
                OLDER,
                control_category="Apps",
                score=0.0,
                score_in_percentage=0.0,
                implementation_status="current status: On",
            ),
            control_row(
                "OneAdmin",
                OLDER,
                control_category="Identity",
                score=0.0,
                score_in_percentage=0.0,
                implementation_status="You currently have 1 global admins.",
            ),
        ),
    )


# ----------------------------------------------------------------------------- the payload builders


def test_built_thin_day_has_bare_controls_and_no_comparatives() -> None:
    day = normalize(payloads.thin_day(day=OLDER, controls=1))

    assert day == ScoreDay(
        score=score_row(OLDER, current_score=4.0),
        comparatives=(),
        controls=(
            control_row(
                "IntegratedApps",
                OLDER,
                control_category="Identity",
                score=4.0,
                score_in_percentage=100.0,
                implementation_status="You have a user consent policy in place.",
            ),
        ),
    )


def test_built_full_day_fills_every_control_column() -> None:
    """Every control of the full builder has its status, sync time and `on` or count."""
    day = normalize(payloads.full_day())

    assert len(day.controls) == 7
    assert all(c.extra == {} and c.last_synced and c.description for c in day.controls)
    assert all(c.is_on is not None or c.count is not None for c in day.controls)
    assert [c.basis for c in day.comparatives] == ["AllTenants", "TotalSeats"]


@pytest.mark.parametrize("newest", [True, False])
def test_day_with_230_controls_gives_230_rows(newest: bool) -> None:
    day = normalize(payloads.many_controls_day(230, newest=newest))

    assert len({c.control_name for c in day.controls}) == 230
    assert day.score.extra == {}
    assert all(c.extra == {} for c in day.controls)
    # made without ControlScoreRow's own constructor: each is still one, with every field
    assert all(type(c) is ControlScoreRow and len(c) == len(ControlScoreRow._fields) for c in day.controls)


# --------------------------------------------------------------------------------------- the date


@pytest.mark.parametrize(
    ("created", "score_date", "created_at"),
    [
        ("2026-11-27T00:00:00Z", dt.date(2026, 11, 27), dt.datetime(2026, 11, 27, tzinfo=UTC)),
        ("2026-11-27T13:45:10Z", dt.date(2026, 11, 27), dt.datetime(2026, 11, 27, 13, 45, 10, tzinfo=UTC)),
        ("2026-11-27T23:30:00-05:00", dt.date(2026, 11, 28), dt.datetime(2026, 11, 28, 4, 30, tzinfo=UTC)),
        ("2026-11-28T01:00:00+02:00", dt.date(2026, 11, 27), dt.datetime(2026, 11, 27, 23, 0, tzinfo=UTC)),
        ("2026-11-27T05:00:00", dt.date(2026, 11, 27), dt.datetime(2026, 11, 27, 5, 0, tzinfo=UTC)),
        ("2026-11-27T00:00:00.1234567Z", dt.date(2026, 11, 27), dt.datetime(2026, 11, 27, 0, 0, 0, 123456, tzinfo=UTC)),
        (
            "2026-11-27T23:59:59.9999999+00:00",
            dt.date(2026, 11, 27),
            dt.datetime(2026, 11, 27, 23, 59, 59, 999999, tzinfo=UTC),
        ),
    ],
)
def test_score_date_is_the_utc_date_of_created_date_time(
    created: str, score_date: dt.date, created_at: dt.datetime
) -> None:
    obj = sample()[1] | {"createdDateTime": created}

    row = normalize(obj).score

    assert (row.score_date, row.created_at) == (score_date, created_at)
    assert {c.score_date for c in normalize(obj).controls} == {score_date}


def test_last_synced_with_seven_fractional_digits_is_parsed() -> None:
    """Graph writes .NET's 7-digit fractions; the seventh digit is dropped."""
    obj = with_control(lastSynced="2026-11-25T13:04:06.1234567Z")

    assert control_x(obj) == control_row("X", last_synced=dt.datetime(2026, 11, 25, 13, 4, 6, 123456, tzinfo=UTC))


# ---------------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("key", "value", "column", "parsed"),
    [
        ("currentScore", "815.5", "current_score", 815.5),
        ("currentScore", 815, "current_score", 815.0),
        ("maxScore", " 1376 ", "max_score", 1376.0),
        ("activeUserCount", "3", "active_user_count", 3),
        ("activeUserCount", 3.0, "active_user_count", 3),
        ("licensedUserCount", "3.0", "licensed_user_count", 3),
    ],
)
def test_numeric_strings_and_numbers_are_coerced(key: str, value: Any, column: str, parsed: Any) -> None:
    obj = sample()[1] | {key: value}

    assert normalize(obj).score == score_row(OLDER, **{column: parsed})


@pytest.mark.parametrize(
    ("key", "value", "column"),
    [
        ("currentScore", "high", "current_score"),
        ("currentScore", True, "current_score"),
        ("maxScore", False, "max_score"),
        ("maxScore", "NaN", "max_score"),
        ("maxScore", "inf", "max_score"),
        ("maxScore", "-Infinity", "max_score"),
        ("currentScore", {"value": 815.22}, "current_score"),
        ("activeUserCount", 3.5, "active_user_count"),
        ("activeUserCount", True, "active_user_count"),
        ("licensedUserCount", "abc", "licensed_user_count"),
        ("licensedUserCount", "1e30", "licensed_user_count"),
        ("enabledServices", "HasMCAS", "enabled_services"),
        ("enabledServices", ["HasMCAS", 7], "enabled_services"),
        ("enabledServices", {"HasMCAS": True}, "enabled_services"),
    ],
)
def test_unusable_value_leaves_column_null_and_is_kept_in_extra(key: str, value: Any, column: str) -> None:
    obj = sample()[1] | {key: value}

    assert normalize(obj).score == score_row(OLDER, **{column: None}, extra={key: value})


@pytest.mark.parametrize(
    ("properties", "columns"),
    [
        ({"on": True}, {"is_on": True}),
        ({"on": False}, {"is_on": False}),
        ({"on": "TRUE"}, {"is_on": True}),
        ({"on": "false"}, {"is_on": False}),
        ({"count": "3.0"}, {"count": 3}),
        ({"count": 3, "total": "7"}, {"count": 3, "total": 7}),
        ({"score": "4.5"}, {"score": 4.5}),
        ({"scoreInPercentage": 50}, {"score_in_percentage": 50.0}),
        ({"lastSynced": "2026-11-25T13:04:06+01:00"}, {"last_synced": dt.datetime(2026, 11, 25, 12, 4, 6, tzinfo=UTC)}),
    ],
)
def test_control_values_are_coerced(properties: dict[str, Any], columns: dict[str, Any]) -> None:
    assert control_x(with_control(**properties)) == control_row("X", **columns)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("on", "yes"),
        ("on", 1),
        ("count", "abc"),
        ("count", "3.5"),
        ("count", True),
        ("total", "NaN"),
        ("score", "inf"),
        ("score", False),
        ("scoreInPercentage", "-Infinity"),
        ("lastSynced", "yesterday"),
        ("lastSynced", 1732665600),
        ("description", 42),
        ("implementationStatus", ["on"]),
        ("controlCategory", {"name": "Identity"}),
    ],
)
def test_unusable_control_value_is_kept_in_the_control_extra(key: str, value: Any) -> None:
    assert control_x(with_control(**{key: value})) == control_row("X", extra={key: value})


@pytest.mark.parametrize(
    ("properties", "columns"),
    [
        ({"averageScore": "52.86"}, {"average_score": 52.86}),
        (
            {"SeatSizeRangeLowerValue": 1, "SeatSizeRangeUpperValue": "100"},
            {"seat_size_lower": 1, "seat_size_upper": 100},
        ),
        ({"SeatSizeRangeLowerValue": "1.5"}, {"extra": {"SeatSizeRangeLowerValue": "1.5"}}),
        ({"averageScore": "high"}, {"extra": {"averageScore": "high"}}),
        ({"averageScore": True}, {"extra": {"averageScore": True}}),
    ],
)
def test_comparative_values_are_coerced_or_kept(properties: dict[str, Any], columns: dict[str, Any]) -> None:
    obj = sample()[1] | {"averageComparativeScores": [{"basis": "Industry", **properties}]}

    assert normalize(obj).comparatives == (comparative_row("Industry", OLDER, **columns),)


# ------------------------------------------------------------------------------------ placeholders


def test_placeholder_comparatives_are_no_value_and_kept_as_received() -> None:
    """Issue 12: TotalSeats and IndustryTypes answered with every number -1 while AllTenants stayed right."""
    placeholder = {
        "averageScore": -1.0,
        "seatSizeRangeLowerValue": -1,
        "seatSizeRangeUpperValue": -1,
        "categoryValue": -1,
    }
    obj = sample()[1] | {
        "averageComparativeScores": [
            {"basis": "AllTenants", "averageScore": 52.86},
            {"basis": "TotalSeats", **placeholder},
            {"basis": "IndustryTypes", **placeholder},
        ]
    }

    assert normalize(obj).comparatives == (
        comparative_row("AllTenants", OLDER, average_score=52.86),
        comparative_row("TotalSeats", OLDER, extra=placeholder),
        comparative_row("IndustryTypes", OLDER, extra=placeholder),
    )


@pytest.mark.parametrize(
    ("properties", "columns"),
    [
        ({"averageScore": 100.5}, {"extra": {"averageScore": 100.5}}),
        ({"averageScore": "-1"}, {"extra": {"averageScore": "-1"}}),
        ({"averageScore": 0}, {"average_score": 0.0}),
        ({"averageScore": 100}, {"average_score": 100.0}),
        ({"SeatSizeRangeLowerValue": "-1"}, {"extra": {"SeatSizeRangeLowerValue": "-1"}}),
        ({"SeatSizeRangeUpperValue": -5}, {"extra": {"SeatSizeRangeUpperValue": -5}}),
        (
            {"seatSizeRangeLowerValue": 0, "seatSizeRangeUpperValue": 100},
            {"seat_size_lower": 0, "seat_size_upper": 100},
        ),
    ],
)
def test_comparative_figures_that_cannot_be_true_are_no_value(
    properties: dict[str, Any], columns: dict[str, Any]
) -> None:
    obj = sample()[1] | {"averageComparativeScores": [{"basis": "Industry", **properties}]}

    assert normalize(obj).comparatives == (comparative_row("Industry", OLDER, **columns),)


@pytest.mark.parametrize(
    ("properties", "columns"),
    [
        ({"activeUserCount": -1}, {"active_user_count": None}),
        ({"licensedUserCount": "-1"}, {"licensed_user_count": None}),
        ({"currentScore": -1.0}, {"current_score": None}),
        ({"maxScore": 0.0}, {"current_score": None, "max_score": None}),
        ({"maxScore": -1, "currentScore": 0}, {"current_score": None, "max_score": None}),
    ],
)
def test_score_figures_that_cannot_be_true_are_no_value(properties: dict[str, Any], columns: dict[str, Any]) -> None:
    """A maximum of 0 means the day has no score yet: the current score goes with it."""
    obj = sample()[1] | properties
    kept = {
        key: obj[key]
        for key in ("currentScore", "maxScore", "activeUserCount", "licensedUserCount")
        if key in properties or (key == "currentScore" and "maxScore" in properties)
    }

    assert normalize(obj).score == score_row(OLDER, **columns, extra=kept)


def test_zero_users_are_real() -> None:
    """Unlicensed tenants report licensedUserCount 0 (the sample does): that is a value, not a placeholder."""
    assert normalize(sample()[1] | {"activeUserCount": 0}).score == score_row(OLDER, active_user_count=0)


@pytest.mark.parametrize(
    ("properties", "columns"),
    [
        ({"score": -1.0}, {}),
        ({"scoreInPercentage": -1.0}, {}),
        ({"scoreInPercentage": 250.0}, {}),
        ({"count": "-1"}, {}),
        ({"total": -1}, {}),
        ({"lastSynced": "0001-01-01T00:00:00Z"}, {}),
        ({"score": 0.0, "scoreInPercentage": 100.0}, {"score": 0.0, "score_in_percentage": 100.0}),
    ],
)
def test_control_figures_that_cannot_be_true_are_no_value(properties: dict[str, Any], columns: dict[str, Any]) -> None:
    kept = {} if columns else properties

    assert control_x(with_control(**properties)) == control_row("X", **columns, extra=kept)


def test_a_control_without_placeholders_shares_the_empty_extra() -> None:
    assert control_x(with_control(score=1.0, scoreInPercentage=50.0, count="1", total="2")).extra is NO_EXTRA


# ------------------------------------------------------------------------------------------ extra


def test_unknown_top_level_properties_go_to_extra() -> None:
    new = {"@odata.type": "#microsoft.graph.secureScore", "riskScore": {"value": 3, "trend": [1, 2]}}

    assert normalize(sample()[1] | new).score == score_row(OLDER, extra=new)


def test_unknown_control_property_goes_to_the_control_extra() -> None:
    assert control_x(with_control(score=1.0, remediation={"url": "https://x"})) == control_row(
        "X", score=1.0, extra={"remediation": {"url": "https://x"}}
    )


def test_unknown_comparative_property_goes_to_the_comparative_extra() -> None:
    obj = sample()[1] | {"averageComparativeScores": [{"basis": "Industry", "averageScore": 1, "x": [1]}]}

    assert normalize(obj).comparatives == (comparative_row("Industry", OLDER, average_score=1.0, extra={"x": [1]}),)


def test_nulls_are_left_out_of_every_extra() -> None:
    """A null says nothing, so it never reaches `extra`, where it would erase a fuller day's value."""
    obj = sample()[1] | {
        "newThing": None,
        "averageComparativeScores": [{"basis": "Industry", "dataScore": None, "averageScore": None}],
    }
    obj["controlScores"] = [{"controlName": "X", "count": None, "newProp": None, "on": None}]

    day = normalize(obj)

    assert day == ScoreDay(score_row(OLDER), (comparative_row("Industry", OLDER),), (control_row("X", OLDER),))


@pytest.mark.parametrize(
    ("vendor", "columns", "extra"),
    [
        (
            {
                "vendor": "Microsoft",
                "provider": "SecureScore",
                "providerVersion": "2.0",
                "subProvider": "MDE",
                "region": "EU",
            },
            {"provider_version": "2.0", "sub_provider": "MDE"},
            {"vendorInformation": {"region": "EU"}},
        ),
        ({"vendor": 42, "provider": "SecureScore"}, {"vendor": None}, {"vendorInformation": {"vendor": 42}}),
        ("Microsoft", {"vendor": None, "provider": None}, {"vendorInformation": "Microsoft"}),
        (None, {"vendor": None, "provider": None}, {}),
    ],
)
def test_vendor_information_fills_its_columns_and_keeps_the_rest(
    vendor: Any, columns: dict[str, Any], extra: dict[str, Any]
) -> None:
    obj = sample()[1] | {"vendorInformation": vendor}

    assert normalize(obj).score == score_row(OLDER, **columns, extra=extra)


# ---------------------------------------------------------------------------- lists of named items


@pytest.mark.parametrize("value", [[], None])
def test_empty_or_null_comparatives_give_no_rows_and_no_extra(value: Any) -> None:
    day = normalize(sample()[0] | {"averageComparativeScores": value})

    assert (day.comparatives, day.score) == ((), score_row())


@pytest.mark.parametrize("value", ["AllTenants", {"basis": "AllTenants"}, 52.86])
def test_comparatives_that_are_not_a_list_are_kept_in_extra(value: Any) -> None:
    day = normalize(sample()[0] | {"averageComparativeScores": value})

    assert (day.comparatives, day.score) == ((), score_row(extra={"averageComparativeScores": value}))


@pytest.mark.parametrize(
    "unusable",
    [
        [{"averageScore": 50.0}],
        [{"basis": None, "averageScore": 50.0}],
        [{"basis": 7}],
        [{"basis": "  "}],
        ["AllTenants", None, 3],
    ],
)
def test_comparatives_without_a_basis_are_kept_in_extra(unusable: list[Any]) -> None:
    comparative = {"basis": "Industry", "averageScore": 50.0}
    obj = sample()[1] | {"averageComparativeScores": [*unusable, comparative]}

    day = normalize(obj)

    assert day.comparatives == (comparative_row("Industry", OLDER, average_score=50.0),)
    assert day.score == score_row(OLDER, extra={"averageComparativeScores": unusable})


def test_duplicate_basis_keeps_the_first_and_the_rest_in_extra() -> None:
    """Nothing is lost: the repeated item is kept whole in the day's `extra`."""
    first, second = {"basis": "AllTenants", "averageScore": 1.0}, {"basis": "AllTenants", "averageScore": 2.0}

    day = normalize(sample()[1] | {"averageComparativeScores": [first, second]})

    assert day.comparatives == (comparative_row("AllTenants", OLDER, average_score=1.0),)
    assert day.score == score_row(OLDER, extra={"averageComparativeScores": [second]})


def test_controls_without_a_name_are_kept_in_extra() -> None:
    nameless = [{"score": 4.0}, {"controlName": "", "score": 1.0}, {"controlName": 12}, "OneAdmin"]
    obj = sample()[1] | {"controlScores": [*nameless, {"controlName": "X"}]}

    day = normalize(obj)

    assert day.controls == (control_row("X", OLDER),)
    assert day.score == score_row(OLDER, extra={"controlScores": nameless})


def test_duplicate_control_keeps_the_first_and_the_rest_in_extra() -> None:
    first, second = {"controlName": "X", "score": 1.0}, {"controlName": "X", "score": 2.0}

    day = normalize(sample()[1] | {"controlScores": [first, second]})

    assert day.controls == (control_row("X", OLDER, score=1.0),)
    assert day.score == score_row(OLDER, extra={"controlScores": [second]})


@pytest.mark.parametrize("value", ["IntegratedApps", {"controlName": "X"}, 4])
def test_controls_that_are_not_a_list_are_kept_in_extra(value: Any) -> None:
    day = normalize(sample()[1] | {"controlScores": value})

    assert (day.controls, day.score) == ((), score_row(OLDER, extra={"controlScores": value}))


# ------------------------------------------------------------------------------- refused objects


@pytest.mark.parametrize("field", ["id", "azureTenantId", "createdDateTime"])
def test_object_without_a_required_field_is_refused_naming_it(field: str) -> None:
    obj = sample()[0]
    del obj[field]

    with pytest.raises(MissingField, match=field) as caught:
        normalize(obj)

    assert (caught.value.field, caught.value.tenant_id) == (field, TENANT)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", 42),
        ("id", " "),
        ("id", None),
        ("azureTenantId", ""),
        ("azureTenantId", ["4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f"]),
        ("createdDateTime", "yesterday"),
        ("createdDateTime", "2026-13-01T00:00:00Z"),
        ("createdDateTime", 1795737600),
        ("createdDateTime", None),
    ],
)
def test_object_with_an_unusable_required_field_is_refused_naming_it(field: str, value: Any) -> None:
    with pytest.raises(MissingField, match=field) as caught:
        normalize(sample()[0] | {field: value})

    assert caught.value.field == field


@pytest.mark.parametrize("value", [[], "secureScore", None, 42, [{"id": "x"}]])
def test_value_that_is_not_an_object_is_refused(value: Any) -> None:
    with pytest.raises(PayloadError, match="not a JSON object") as caught:
        normalize(value)

    assert type(caught.value) is PayloadError


def test_object_of_another_tenant_is_refused_naming_both() -> None:
    obj = sample()[0] | {"azureTenantId": payloads.OTHER_TENANT}

    with pytest.raises(WrongTenant, match=f"{payloads.OTHER_TENANT}.*{TENANT}") as caught:
        normalize(obj)

    assert (caught.value.field, caught.value.tenant_id) == ("azureTenantId", TENANT)


@pytest.mark.parametrize(("payload_tenant", "expected"), [(TENANT.upper(), TENANT), (TENANT, TENANT.upper())])
def test_tenant_ids_compare_case_insensitively_and_are_stored_lowercase(payload_tenant: str, expected: str) -> None:
    day = normalize_score(sample()[0] | {"azureTenantId": payload_tenant}, CONTEXT, expected_tenant=expected)

    assert {day.tenant_id, *(c.tenant_id for c in day.controls), *(c.tenant_id for c in day.comparatives)} == {TENANT}


def test_without_an_expected_tenant_any_tenant_is_accepted() -> None:
    day = normalize_score(payloads.full_day(payloads.OTHER_TENANT), CONTEXT)

    assert day.tenant_id == payloads.OTHER_TENANT


# -------------------------------------------------------------------------------- fetch context


def test_provider_warnings_mark_the_day_partial() -> None:
    """A 206 answer's warnings are stored beside the day, which is marked partial."""
    warnings = (
        ProviderWarning("Microsoft", "SecureScore", 504, 30000, "Microsoft/SecureScore/504/30000"),
        ProviderWarning("Microsoft", "MCAS", None, None, "Microsoft/MCAS//"),
    )
    context = FetchContext(run_id=None, fetched_at=FETCHED, warnings=warnings)

    row = normalize(sample()[1], context).score

    assert row == score_row(
        OLDER, partial=True, run_id=None, warning="Microsoft/SecureScore/504/30000, Microsoft/MCAS//"
    )


# ------------------------------------------------------------------------------ robustness (bugs)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_out_of_range_last_synced_is_kept_in_extra(value: str) -> None:
    assert control_x(with_control(lastSynced=value)) == control_row("X", extra={"lastSynced": value})


def test_out_of_range_created_date_time_is_a_missing_field() -> None:
    with pytest.raises(MissingField, match="createdDateTime"):
        normalize(sample()[0] | {"createdDateTime": "0001-01-01T00:00:00+05:00"})


def test_integer_too_large_for_a_float_leaves_the_column_null() -> None:
    """Python's json module parses any integer exactly; one beyond a double's range is not a score."""
    huge = 10**400

    assert normalize(sample()[1] | {"currentScore": huge}).score == score_row(
        OLDER, current_score=None, extra={"currentScore": huge}
    )


@given(st.integers(min_value=-(2**65), max_value=2**65), st.sampled_from(["{}", " {} ", "+{}"]))
@example(2**53 + 1, "{}")  # a float rounds it to 2**53
@example(-(2**53) - 1, "{}")
@example(2**63, "{}")
def test_whole_numbers_parse_as_they_would_through_a_float(number: int, form: str) -> None:
    """Counts are read without a float where a float is exact; beyond 2**53 they still go through one."""
    through_float = int(float(number)) if abs(float(number)) < 2**63 else UNPARSED
    text = form.format(number) if number >= 0 or form != "+{}" else str(number)

    assert (as_int(number), as_int(text)) == (through_float, through_float)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("true", True), ("false", False), (" True ", True), ("FALSE", False), (True, True), ("yes", UNPARSED)],
)
def test_on_is_read_from_graphs_strings_and_booleans(value: Any, parsed: Any) -> None:
    assert as_bool(value) is parsed


@pytest.mark.parametrize(
    "text", ["2026-11-25T22:02:54Z", "2026-11-25T22:02:54+00:00", "2026-11-25T23:02:54+01:00", "2026-11-25T22:02:54"]
)
def test_times_are_utc_whatever_their_offset(text: str) -> None:
    assert as_datetime(text) == dt.datetime(2026, 11, 25, 22, 2, 54, tzinfo=dt.UTC)
    assert as_datetime(text).tzinfo is dt.UTC  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- arbitrary JSON (hypothesis)

# What orjson.loads can produce: integers beyond 64 bits and non-finite numbers never come out of it.
NUMERIC_STRINGS = st.sampled_from(
    [
        "3",
        "3.0",
        " 7 ",
        "-1",
        "1e3",
        "abc",
        "NaN",
        "inf",
        "-Infinity",
        "1e400",
        "true",
        "False",
        "",
        "2026-11-27T00:00:00Z",
        "2026-11-27T23:30:00-05:00",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | NUMERIC_STRINGS
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
SCORE_KEYS = (
    "currentScore",
    "maxScore",
    "activeUserCount",
    "licensedUserCount",
    "enabledServices",
    "vendorInformation",
    "averageComparativeScores",
    "controlScores",
)
VENDOR_KEYS = ("vendor", "provider", "providerVersion", "subProvider")
COMPARATIVE_KEYS = ("averageScore", "SeatSizeRangeLowerValue", "SeatSizeRangeUpperValue", "appsScore")
CONTROL_KEYS = (
    "controlCategory",
    "description",
    "score",
    "scoreInPercentage",
    "implementationStatus",
    "lastSynced",
    "on",
    "count",
    "total",
)
NAMES = st.sampled_from(["AllTenants", "TotalSeats", "X", " X "]) | JSON


def items(name_key: str, keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with arbitrary JSON for their known keys, and maybe an unknown one."""
    optional = {key: JSON for key in keys} | {"unknownProperty": JSON}
    return st.fixed_dictionaries({name_key: NAMES}, optional=optional)


def item_lists(name_key: str, keys: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Mostly lists of such objects, sometimes mixed with other JSON, sometimes not a list at all."""
    named = items(name_key, keys)
    return st.one_of(st.lists(named, min_size=1, max_size=4), st.lists(named | JSON, max_size=4), JSON)


VENDORS = st.fixed_dictionaries({}, optional={key: st.text(max_size=8) | JSON for key in (*VENDOR_KEYS, "x")})
CREATED = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=5, minutes=30))]
    ),
)
SCORE_OBJECTS = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=12).filter(str.strip),
        "azureTenantId": st.sampled_from([TENANT, TENANT.upper(), f" {TENANT} "]),
        "createdDateTime": CREATED.map(dt.datetime.isoformat),
    },
    optional={
        **{key: JSON for key in SCORE_KEYS},
        "vendorInformation": VENDORS | JSON,
        "averageComparativeScores": item_lists("basis", COMPARATIVE_KEYS),
        "controlScores": item_lists("controlName", CONTROL_KEYS),
        "unknownProperty": JSON,
    },
)


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` is exactly of the annotated type (a bool is not an int, a datetime not a date)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(conforms(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if origin is list:
        return type(value) is list and all(conforms(v, typing.get_args(hint)[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(type(k) is str for k in value)
    if hint is type(None):
        return value is None
    if hint is dt.datetime:
        return type(value) is dt.datetime and value.utcoffset() == dt.timedelta(0)
    return type(value) is hint


def assert_well_typed(day: ScoreDay) -> None:
    rows: list[ScoreRow | ComparativeRow | ControlScoreRow] = [day.score, *day.comparatives, *day.controls]
    for row in rows:
        hints = typing.get_type_hints(type(row))
        for name, value in row._asdict().items():
            assert conforms(value, hints[name]), (type(row).__name__, name, value)
        orjson.dumps(row.extra)


@settings(max_examples=150, deadline=None)
@given(JSON | SCORE_OBJECTS)
def test_arbitrary_json_is_refused_only_with_payload_error(value: Any) -> None:
    """Any JSON either becomes well-typed rows with serializable `extra`, or a PayloadError."""
    try:
        day = normalize(value)
    except PayloadError:
        return
    assert_well_typed(day)


@settings(max_examples=150, deadline=None)
@given(SCORE_OBJECTS)
def test_object_with_valid_identity_always_normalizes(obj: dict[str, Any]) -> None:
    """With a usable id, tenant and date, no other field's content can make the object refused."""
    day = normalize(obj)

    assert_well_typed(day)
    assert day.tenant_id == TENANT


def test_objects_without_extra_share_one_read_only_empty_extra() -> None:
    day = normalize(payloads.full_day())
    plain = [c for c in day.controls if not c.extra]
    assert plain
    assert all(c.extra is NO_EXTRA for c in plain)
    with pytest.raises(TypeError, match="cannot change"):
        plain[0].extra["x"] = 1
    day.score.extra["mine"] = 1  # the score's own extra is a dict of its own
    assert NO_EXTRA == {}
    assert orjson.dumps(NO_EXTRA) == b"{}"


@pytest.mark.parametrize(
    ("value", "levels"),
    [(1, 0), ("x", 0), ([], 1), ({}, 1), (NO_EXTRA, 1), ([1, [2, {"a": []}]], 4), ({"a": 1, "b": [[]]}, 3)],
)
def test_nesting_counts_the_levels_of_arrays_and_objects(value: Any, levels: int) -> None:
    assert nesting(value) == levels


def test_nesting_is_found_beyond_pythons_recursion_limit() -> None:
    value: Any = []
    for _ in range(5000):
        value = [value]
    assert nesting(value) == 5001


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"unknown": [[[1]]]},
        {"vendorInformation": {"vendor": "Microsoft", "more": {"a": [{}]}}},
        {"averageComparativeScores": [{"basis": "AllTenants", "averageScore": [[1]]}, [[[]]]]},
        {"controlScores": [{"controlName": "A", "score": {"a": {"b": []}}}, {"controlName": "A"}, "x"]},
        {"controlScores": {"not": ["a", "list"]}},
        {"enabledServices": ["a", ["b"]]},
    ],
)
def test_a_days_nesting_bound_is_at_least_its_objects_nesting(change: dict[str, Any]) -> None:
    """The bound admission uses instead of writing the object as JSON is never below the object's nesting."""
    obj = {**payloads.full_day(), **change}
    assert score_nesting_bound(normalize(obj)) >= nesting(obj)


def control_by_the_rules(item: dict[str, Any], name: str) -> ControlScoreRow:
    """A control's row made the plain way: its values read into a row of nulls, every rule then applied."""
    values: list[Any] = [TENANT, NEWEST, name, *[None] * (len(ControlScoreRow._fields) - 3)]
    _, extra = read_fields(item, CONTROL_FIELDS, NAME_ONLY, values)
    values[ControlScoreRow._fields.index("extra")] = drop_placeholders(item, values, extra, CONTROL_RULES)
    return ControlScoreRow._make(values)


@settings(max_examples=300, deadline=None)
@given(st.lists(items("controlName", CONTROL_KEYS), max_size=6))
def test_control_rows_are_the_rows_every_rule_gives(controls: list[dict[str, Any]]) -> None:
    """The controls' reading with the placeholder rules inlined by place gives the rows the rules give."""
    obj = {**payloads.full_day(), "controlScores": controls}
    named = {}
    for item in controls:
        name = item["controlName"].strip() if type(item["controlName"]) is str else ""
        if name and name not in named:
            named[name] = item

    day = normalize(obj)

    assert day.controls == tuple(control_by_the_rules(item, name) for name, item in named.items())
