"""Discovery, pure: customers from GDAP relationships and contracts, and the merge into the tenants file."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import pytest

from fetcher.config import AuthConfig, Purpose, TenantConfig, load_config
from fetcher.discovery import (
    Change,
    Customer,
    TenantChange,
    TenantRow,
    customer_tenants,
    is_fresh,
    merge,
    read_tenants_file,
    renamed_upstream,
    render_tenants_file,
    select_customers,
)
from fetcher.errors import ConfigError
from fetcher.outfile import replace_atomically

SAMPLE = Path(__file__).parent / "data" / "list-gdap-relationships.json"  # a real answer's shape
A = "0b7c1e2a-1111-4222-8333-444455556666"
B = "7e4f0c2b-2222-4333-8444-555566667777"
C = "9a8b7c6d-3333-4444-8555-666677778888"
D = "dddddddd-4444-4555-8666-777788889999"
E = "eeeeeeee-0000-4000-8000-000000000001"
TODAY = datetime.date(2026, 12, 1)


def relationship(tenant_id: str, name: str, *, status: str = "active", title: str = "Managed") -> dict[str, Any]:
    return {"id": f"rel-{tenant_id}-{title}", "displayName": title, "status": status,
            "customer": {"tenantId": tenant_id, "displayName": name}}  # fmt: skip


def test_sample_page_keeps_the_active_customer_and_counts_mlt_and_terminated() -> None:
    page = json.loads(SAMPLE.read_text())
    found = select_customers(page["value"])
    assert found.customers == (Customer(A, "Contoso Ltd"),)
    assert found.skipped == {"mlt": 1, "terminated": 1}


def test_a_customer_in_two_relationships_and_a_contract_appears_once() -> None:
    found = select_customers(
        [relationship(A, "Contoso", title="one"), relationship(A, "Contoso", title="two")],
        [{"customerId": A.upper(), "displayName": "Contoso", "defaultDomainName": "contoso.example"}],
    )
    assert found.customers == (Customer(A, "Contoso"),)
    assert found.skipped == {"duplicate": 2}


def test_expired_invalid_and_hostile_entries_are_skipped_and_counted() -> None:
    found = select_customers(
        [
            relationship(A, "Contoso", status="expired"),
            relationship("not-a-guid", "Bad"),
            {"displayName": "no customer", "status": "active"},
            "not an object",
            relationship(B, "Fab\nrikam\x1b[31m"),
        ],
        [{"customerId": 42}],
    )
    assert found.customers == (Customer(B, "Fab rikam [31m"),)
    assert found.skipped == {"expired": 1, "invalid": 4}


def test_a_graph_display_name_with_a_nul_a_c1_or_a_lone_surrogate_is_kept_with_those_as_spaces() -> None:
    """Graph's names are untrusted: a NUL would fail every PostgreSQL statement carrying the name (the
    configuration refuses one; a customer's name from Graph is cleaned instead, so no other customer fails)."""
    found = select_customers([relationship(A, "Con\x00toso"), relationship(B, "Fab\x9brikam\ud800 Ltd")])

    assert found.customers == (Customer(A, "Con toso"), Customer(B, "Fab rikam Ltd"))


def test_merge_adds_keeps_edits_marks_gone_and_never_deletes() -> None:
    existing = [
        TenantRow(A, "Contoso (my name)", True, ""),
        TenantRow(B, "Fabrikam", False, ""),
        TenantRow(C, "Northwind", True, ""),
        TenantRow(D, "Old customer", True, "gone since 2026-11-01"),
    ]
    found = [
        Customer(A, "Contoso Ltd"),
        Customer(B, "Fabrikam"),
        Customer(E, "New"),
    ]
    merged = merge(existing, found, TODAY)
    assert merged.rows == (
        TenantRow(A, "Contoso (my name)", True, ""),
        TenantRow(B, "Fabrikam", False, ""),
        TenantRow(C, "Northwind", True, "gone since 2026-12-01"),
        TenantRow(D, "Old customer", True, "gone since 2026-11-01"),
        TenantRow(E, "New", True, ""),
    )
    assert [(c.change, c.row.tenant_id, c.upstream_name) for c in merged.changes] == [
        (Change.UNCHANGED, A, "Contoso Ltd"),
        (Change.UNCHANGED, B, "Fabrikam"),
        (Change.GONE, C, ""),
        (Change.STILL_GONE, D, ""),
        (Change.ADDED, E, "New"),
    ]


def test_the_summary_counts_add_up_to_the_customers_found() -> None:
    """A row an earlier discovery marked gone, not found again, was counted `unchanged`: 42 unchanged of 40
    found. It is `still gone`, apart from the customers found, in the line and in the JSON counts."""
    from fetcher.discovery import Found
    from fetcher.output import discovery_json, discovery_summary

    existing = [TenantRow(A, "Contoso"), TenantRow(B, "Fabrikam"), TenantRow(D, "Old", True, "gone since 2026-11-01")]
    found = Found((Customer(A, "Contoso"), Customer(B, "Fabrikam")), {})
    merged = merge(existing, found.customers, TODAY)

    line = discovery_summary(found, merged, None, written=False)
    counts = json.loads(discovery_json(found, merged, None, written=False))["counts"]

    assert line.startswith(
        "2 customer(s) found: 0 added, 0 renamed upstream, 0 gone, 0 returned, 2 unchanged, 1 still gone; "
    )
    assert counts == {"added": 0, "renamed upstream": 0, "gone": 0, "returned": 0, "unchanged": 2, "still gone": 1}


def test_a_name_you_gave_is_not_reported_as_an_upstream_rename_on_any_run() -> None:
    """It said "1 renamed upstream" on every run, right after `--write` too: it compared the display name with
    the name in the file. A rename is told from the display name the previous discovery found."""
    existing = [TenantRow(A, "My Contoso", True, "")]
    first = merge(existing, [Customer(A, "Contoso Ltd")], TODAY)
    again = merge(first.rows, [Customer(A, "Contoso Ltd")], TODAY, {A: "Contoso Ltd"})
    assert [list(m.changes) for m in (first, again)] == [
        [TenantChange(Change.UNCHANGED, existing[0], "Contoso Ltd")]
    ] * 2


def test_a_rename_upstream_is_reported_once_and_the_name_in_the_file_kept() -> None:
    existing = [TenantRow(A, "My Contoso", False, ""), TenantRow(B, "Fabrikam", True, "")]
    found = [Customer(A, "Contoso Group"), Customer(B, "Fabrikam")]
    renamed = merge(existing, found, TODAY, {A: "Contoso Ltd", B: "Fabrikam"})
    next_time = merge(renamed.rows, found, TODAY, {A: "Contoso Group", B: "Fabrikam"})
    assert renamed.rows == next_time.rows == tuple(existing)
    assert renamed.changes == (
        TenantChange(Change.RENAMED_UPSTREAM, existing[0], "Contoso Group", "Contoso Ltd"),
        TenantChange(Change.UNCHANGED, existing[1], "Fabrikam"),
    )
    assert [next_time.count(c) for c in (Change.RENAMED_UPSTREAM, Change.UNCHANGED)] == [0, 2]


def test_a_name_discovery_wrote_follows_a_rename_upstream_and_a_name_of_yours_does_not() -> None:
    """A name in the file equal to the previous display name was discovery's: it kept the old one forever."""
    existing = [TenantRow(A, "Contoso Ltd", False, ""), TenantRow(B, "Our Fabrikam", True, "")]
    found = [Customer(A, "Contoso Group"), Customer(B, "Fabrikam Group")]
    renamed = merge(existing, found, TODAY, {A: "Contoso Ltd", B: "Fabrikam Inc"})
    assert renamed.changes == (
        TenantChange(Change.RENAMED_UPSTREAM, TenantRow(A, "Contoso Group", False), "Contoso Group", "Contoso Ltd",
                     followed=True),
        TenantChange(Change.RENAMED_UPSTREAM, existing[1], "Fabrikam Group", "Fabrikam Inc"),
    )  # fmt: skip
    assert merge(renamed.rows, found, TODAY, {A: "Contoso Group", B: "Fabrikam Group"}).rows == renamed.rows


def test_a_returned_customer_with_discovery_s_name_follows_its_rename() -> None:
    merged = merge([TenantRow(D, "Back Inc", True, "gone since 2026-11-01")], [Customer(D, "Back Again")], TODAY,
                   {D: "Back Inc"})  # fmt: skip
    assert merged.changes == (
        TenantChange(Change.RETURNED, TenantRow(D, "Back Again"), "Back Again", "Back Inc", followed=True),
    )


@pytest.mark.parametrize(
    ("before", "now"), [("", "Contoso"), ("Contoso", ""), ("Contoso", "Contoso")], ids=["named", "unnamed", "same"]
)
def test_a_name_appearing_or_missing_upstream_is_no_rename(before: str, now: str) -> None:
    """An empty display name from Graph is a missing name, not a new one."""
    merged = merge([TenantRow(A, "Mine")], [Customer(A, now)], TODAY, {A: before})
    assert merged.changes == (TenantChange(Change.UNCHANGED, TenantRow(A, "Mine"), now),)


def test_a_returned_customer_renamed_meanwhile_is_returned_with_its_previous_name() -> None:
    row = TenantRow(D, "Back", True, "gone since 2026-11-01")
    merged = merge([row], [Customer(D, "Back Again Inc")], TODAY, {D: "Back Inc"})
    assert merged.changes == (TenantChange(Change.RETURNED, TenantRow(D, "Back"), "Back Again Inc", "Back Inc"),)


def test_renamed_upstream_lists_the_customers_found_under_another_name() -> None:
    found = [Customer(A, "Contoso Group"), Customer(B, "Fabrikam"), Customer(E, "New")]
    assert renamed_upstream({A: "Contoso Ltd", B: "Fabrikam", C: "Gone"}, found) == [(found[0], "Contoso Ltd")]


def test_a_gone_customer_found_again_is_no_longer_marked() -> None:
    merged = merge([TenantRow(D, "Back", False, "gone since 2026-11-01")], [Customer(D, "Back")], TODAY)
    assert merged.rows == (TenantRow(D, "Back", False, ""),)
    assert merged.count(Change.RETURNED) == 1


def test_written_file_reads_back_whole_rows(tmp_path: Path) -> None:
    path = tmp_path / "tenants.csv"
    rows = [TenantRow(A, 'Contoso, "Ltd"', True, ""), TenantRow(B, "Fabrikam", False, "gone since 2026-12-01")]
    replace_atomically(path, render_tenants_file(rows).encode())
    assert read_tenants_file(path) == rows
    assert path.read_text().splitlines()[0] == "tenant_id,name,enabled,source_status"
    assert [p.name for p in tmp_path.iterdir()] == ["tenants.csv"]


def test_a_name_that_starts_like_a_formula_is_written_inert_and_read_back_as_it_was(tmp_path: Path) -> None:
    """Excel ran `=HYPERLINK(...)` from a customer's display name; the quote `report --format csv` adds is
    taken off again when the file is read, so discovery and the configuration see the name unchanged."""
    path = tmp_path / "tenants.csv"
    names = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "'quoted", "'", "plain"]
    rows = [TenantRow(f"{n:08x}-0000-4000-8000-000000000000", name) for n, name in enumerate(names)]
    replace_atomically(path, render_tenants_file(rows).encode())
    written = [line.split(",", 1)[1].rsplit(",", 2)[0] for line in path.read_text().splitlines()[1:]]
    assert written == ['"\'=HYPERLINK(""http://x"",""y"")"', "'+1", "'-2", "'@SUM(A1)", "'quoted", "'", "plain"]
    assert read_tenants_file(path) == rows


@pytest.mark.parametrize("text", ["", None])
def test_missing_or_empty_file_is_the_starting_point(tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "tenants.csv"
    if text is not None:
        path.write_text(text)
    assert read_tenants_file(path) == []


def test_malformed_file_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tenants.csv"
    path.write_text(f"tenant_id,name\n{A},Contoso\n{B},Fabrikam,extra\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: 3 fields, but the header names 2"):
        read_tenants_file(path)


def test_rewrite_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "tenants.csv"
    path.write_text("tenant_id\n")
    os.chmod(path, 0o640)
    replace_atomically(path, render_tenants_file([TenantRow(A, "Contoso")]).encode())
    assert (path.stat().st_mode & 0o777, read_tenants_file(path)) == (0o640, [TenantRow(A, "Contoso")])


def test_configuration_does_not_fetch_a_gone_customer(tmp_path: Path) -> None:
    rows = [TenantRow(A, "Contoso"), TenantRow(B, "Fabrikam", True, "gone since 2026-12-01")]
    replace_atomically(tmp_path / "tenants.csv", render_tenants_file(rows).encode())
    (tmp_path / "fetcher.toml").write_text(
        'tenants_file = "tenants.csv"\n[database]\nurl = "sqlite+aiosqlite:///x.db"\n'
    )
    config = load_config(tmp_path / "fetcher.toml", {}, purpose=Purpose.DATABASE)
    assert [(t.tenant_id, t.enabled) for t in config.tenants] == [(A, True), (B, False)]


# -- automatic mode


NOW = datetime.datetime(2026, 12, 1, 2, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("age_hours", "refresh_hours", "fresh"),
    [(0, 24, True), (21.5, 24, True), (21.6, 24, False), (23.99, 24, False), (30, 24, False), (0, 0, False),
     (-1, 24, False)],
)  # fmt: skip
def test_a_list_is_reused_until_most_of_refresh_hours_have_passed(
    age_hours: float, refresh_hours: float, fresh: bool
) -> None:
    """A nightly cron a minute early must still rediscover with the default 24 hours; 0 never reuses."""
    discovered_at = NOW - datetime.timedelta(hours=age_hours)
    assert is_fresh(discovered_at, NOW, refresh_hours) is fresh


def test_customer_tenants_takes_names_flags_and_auth_from_the_configuration() -> None:
    shared, own = AuthConfig(client_id="shared"), AuthConfig(client_id="own")
    customers = [Customer(A, "A upstream"), Customer(B, "B upstream"), Customer(C, "C upstream")]
    configured = [
        TenantConfig(B, "My B", own, enabled=False),
        TenantConfig(C, "", own),
        TenantConfig("dddddddd-0000-4000-8000-000000000004", "Ended", own),
    ]
    assert customer_tenants(customers, configured, shared) == (
        TenantConfig(A, "A upstream", shared),
        TenantConfig(B, "My B", own, enabled=False),
        TenantConfig(C, "C upstream", own),
    )
