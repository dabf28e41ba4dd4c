"""Discovery against the simulator: `fetcher tenants discover` reads the partner's GDAP relationships and
contracts to the end and merges them into the tenants file."""

from __future__ import annotations

import csv
import json
import logging
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import AuthConfig, Config, DatabaseConfig, FetchConfig, GraphConfig, PartnerConfig
from fetcher.discovery import Customer, Found, TenantRow, render_tenants_file
from fetcher.errors import Interrupted, NoCustomerList, ServerError
from fetcher.models import Shard
from fetcher.partner import CustomerList, customer_list, with_discovered_tenants
from fetcher.simulator import SimTenant
from fetcher.simulator.faults import Fault
from fetcher.simulator.partner import SimContract, SimRelationship
from fetcher.status import never_discovered
from fetcher.store.schema import fetch_runs, partner_customers, partner_discoveries, secure_scores, tenant_runs
from fetcher.store.schema import tenants as tenants_table
from tests.conftest import SKIP_POSTGRES, _admin_url, create_postgres_database, drop_postgres_database
from tests.dbutil import rows
from tests.e2e import World, toml_table, world
from tests.test_runner import db_count, db_rows

PARTNER = "aaaaaaaa-0000-4000-8000-000000000001"
CONTOSO = "0b7c1e2a-1111-4222-8333-444455556666"
FABRIKAM = "7e4f0c2b-2222-4333-8444-555566667777"
NORTHWIND = "9a8b7c6d-3333-4444-8555-666677778888"
WINGTIP = "b1b2b3b4-4444-4555-8666-777788889999"
LITWARE = "c1c2c3c4-5555-4666-8777-888899990000"
BULK = 640  # more than two pages of 300


def bulk_id(n: int) -> str:
    return str(uuid.UUID(int=(0xD << 124) | n))


def relationships() -> list[SimRelationship]:
    rows = [
        SimRelationship("r1", "Contoso managed security", "active", CONTOSO, "Contoso Ltd"),
        SimRelationship("r2", "Contoso second", "active", CONTOSO, "Contoso Ltd"),
        SimRelationship("r3", "MLT_0001_placeholder", "active", FABRIKAM, "Fabrikam Inc"),
        SimRelationship("r4", "Northwind onboarding", "terminated", NORTHWIND, "Northwind Traders"),
        SimRelationship("r5", "Wingtip old", "expired", WINGTIP, "Wingtip Toys"),
    ]
    rows += [SimRelationship(f"b{n}", f"Bulk {n}", "active", bulk_id(n), f"Bulk customer {n}") for n in range(BULK)]
    return rows


def contracts() -> list[SimContract]:
    return [SimContract(LITWARE, "Litware", "litware.example"), SimContract(CONTOSO, "Contoso Ltd", "contoso.example")]


@pytest.fixture
def partner_world(tmp_path: Path) -> Iterator[World]:
    tenants = [SimTenant(PARTNER, "Partner", partner=True), SimTenant(CONTOSO, "Contoso Ltd")]
    with world(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", tenants, relationships=relationships(),
               contracts=contracts()) as w:  # fmt: skip
        yield w


def use_discovery(w: World, source: str = "gdap") -> Path:
    w.write_config(tenants=[])
    text = w.config.read_text()
    partner = "\n".join(toml_table("partner", {"tenant_id": PARTNER, "source": source}))
    w.config.write_text(f'tenants_file = "tenants.csv"\n{text}\n{partner}\n')
    return w.config.parent / "tenants.csv"


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_discover_writes_every_active_customer_once_paged_to_the_end(partner_world: World) -> None:
    tenants_csv = use_discovery(partner_world)
    result = partner_world.fetcher("tenants", "discover")
    assert result.returncode == 0, result.stderr
    rows = read_rows(tenants_csv)
    assert rows[0] == {"tenant_id": CONTOSO, "name": "Contoso Ltd", "enabled": "true", "source_status": ""}
    assert len(rows) == 1 + BULK
    assert rows[-1] == {"tenant_id": bulk_id(BULK - 1), "name": f"Bulk customer {BULK - 1}", "enabled": "true",
                        "source_status": ""}  # fmt: skip
    assert {FABRIKAM, NORTHWIND, WINGTIP}.isdisjoint(r["tenant_id"] for r in rows)
    pages = [r for r in partner_world.sim.requests if r.endpoint == "partner"]
    assert [(r.status, r.query.get("$top")) for r in pages] == [(200, "300")] * 3
    assert f"{1 + BULK} customer(s) found: {1 + BULK} added" in result.stderr
    assert "skipped: 1 duplicate, 1 expired, 1 mlt, 1 terminated" in result.stderr


def test_rediscovery_keeps_edits_marks_gone_and_adds_new(partner_world: World) -> None:
    tenants_csv = use_discovery(partner_world, source="both")
    tenants_csv.write_text(
        f"tenant_id,name,enabled\n{CONTOSO},My Contoso,true\n{bulk_id(0)},Bulk zero,false\n{NORTHWIND},Northwind,true\n"
    )
    partner_world.sim.relationships = [r for r in relationships() if not r.id.startswith("b") or r.id == "b0"]
    result = partner_world.fetcher("tenants", "discover", "--format", "json")
    assert result.returncode == 0, result.stderr
    today = json.loads(result.stdout)
    gone = next(c["source_status"] for c in today["changes"] if c["tenant_id"] == NORTHWIND)
    assert gone.startswith("gone since ")
    assert read_rows(tenants_csv) == [
        {"tenant_id": CONTOSO, "name": "My Contoso", "enabled": "true", "source_status": ""},
        {"tenant_id": bulk_id(0), "name": "Bulk zero", "enabled": "false", "source_status": ""},
        {"tenant_id": NORTHWIND, "name": "Northwind", "enabled": "true", "source_status": gone},
        {"tenant_id": LITWARE, "name": "Litware", "enabled": "true", "source_status": ""},
    ]
    assert today["counts"] == {
        "added": 1,
        "renamed upstream": 0,
        "gone": 1,
        "returned": 0,
        "unchanged": 2,
        "still gone": 0,
    }
    assert today["skipped"] == {"duplicate": 2, "expired": 1, "mlt": 1, "terminated": 1}


def test_dry_run_changes_nothing(partner_world: World) -> None:
    tenants_csv = use_discovery(partner_world)
    tenants_csv.write_text(f"tenant_id,name\n{CONTOSO},Contoso\n")
    before = tenants_csv.read_bytes()
    result = partner_world.fetcher("tenants", "discover", "--dry-run")
    assert (result.returncode, tenants_csv.read_bytes()) == (0, before), result.stderr
    assert "nothing written" in result.stderr


def test_malformed_tenants_file_is_refused_before_graph_and_kept(partner_world: World) -> None:
    tenants_csv = use_discovery(partner_world)
    tenants_csv.write_text(f'tenant_id,name\n{CONTOSO},Contoso\n{FABRIKAM},"Fabrikam\n')
    before = tenants_csv.read_bytes()
    result = partner_world.fetcher("tenants", "discover")
    assert result.returncode == 2
    assert f"{tenants_csv}:3: not valid CSV" in result.stderr
    assert tenants_csv.read_bytes() == before
    assert [r for r in partner_world.sim.requests if r.endpoint == "partner"] == []


def test_a_partner_token_without_the_permission_is_one_line(partner_world: World) -> None:
    use_discovery(partner_world)
    partner_world.config.write_text(partner_world.config.read_text().replace(PARTNER, CONTOSO))
    result = partner_world.fetcher("tenants", "discover")
    assert result.returncode == 4, result.stderr  # Graph was asked and refused, as `run` says it (it was 1)
    assert "403" in result.stderr
    assert "DelegatedAdminRelationship.Read.All" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "SecurityEvents.Read.All" not in result.stderr


@pytest.mark.parametrize("where", ["missing/t.csv", ".", "/proc/t.csv"])
def test_a_tenants_file_that_cannot_be_written_is_one_line_and_exit_3(partner_world: World, where: str) -> None:
    """A missing folder, a folder given as the file, or a folder nobody may write: one line naming the file,
    exit 3 as `report --output` (it was a FileNotFoundError traceback, exit 1, or click's usage text)."""
    use_discovery(partner_world)
    target = partner_world.config.parent / where

    result = partner_world.fetcher("tenants", "discover", "--write", str(target))

    assert result.returncode == 3, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: cannot write {target}: "), result.stderr
    assert "Traceback" not in result.stderr


def test_the_tenants_file_is_written_by_the_one_writer_a_link_and_a_fifo_kept_a_mode_kept(
    partner_world: World,
) -> None:
    """`--write` as `metrics --output`: a link's target replaced (the link was replaced by a regular file), a
    FIFO written through (it was replaced too), a 0640 file's mode kept."""
    use_discovery(partner_world)
    folder = partner_world.config.parent
    (folder / "real.csv").write_text("tenant_id,name\n")
    os.chmod(folder / "real.csv", 0o640)
    (folder / "link.csv").symlink_to(folder / "real.csv")
    os.mkfifo(folder / "pipe.csv")
    reader = os.open(folder / "pipe.csv", os.O_RDONLY | os.O_NONBLOCK)  # a reader waiting, as `cat` would be
    try:
        through_link = partner_world.fetcher("tenants", "discover", "--write", str(folder / "link.csv"))
        through_fifo = partner_world.fetcher("tenants", "discover", "--write", str(folder / "pipe.csv"))
        piped = os.read(reader, 1 << 16)
    finally:
        os.close(reader)

    assert (through_link.returncode, through_fifo.returncode) == (0, 0), through_link.stderr + through_fifo.stderr
    real = folder / "real.csv"
    assert ((folder / "link.csv").is_symlink(), real.stat().st_mode & 0o7777, len(read_rows(real))) == (
        True,
        0o640,
        1 + BULK,
    )
    assert ((folder / "pipe.csv").is_fifo(), piped.decode()) == (True, real.read_text())


@pytest.fixture
def renaming_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """Contoso and Fabrikam at the partner, on a database of each kind: discover keeps its names there."""
    tenants = [SimTenant(PARTNER, "Partner", partner=True), SimTenant(CONTOSO, "Contoso Ltd")]
    with world(tmp_path, database_url, tenants, relationships=small_relationships()[:2]) as w:
        yield w


def discover_json(w: World, *args: str) -> dict[str, Any]:
    result = w.fetcher("tenants", "discover", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return cast(dict[str, Any], json.loads(result.stdout))


def renames(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["tenant_id"], c["name"], c["previous_upstream_name"], c["upstream_name"]) for c in report["changes"]
            if c["change"] == "renamed upstream"]  # fmt: skip


def test_a_rename_upstream_is_reported_once_and_a_name_of_yours_never(renaming_world: World) -> None:
    """The first discovery renames nothing; a display name changed at the partner is reported by the next
    discovery that writes (a dry run shows it and records nothing), then no more; your name is kept."""
    tenants_csv = use_discovery(renaming_world)
    first = discover_json(renaming_world)
    assert (first["counts"]["added"], first["counts"]["renamed upstream"]) == (2, 0)
    rows = read_rows(tenants_csv)
    rows[1]["name"] = "Our Fabrikam"  # a rename of yours
    tenants_csv.write_text(render_tenants_file(TenantRow(r["tenant_id"], r["name"]) for r in rows))
    renaming_world.sim.relationships[0] = SimRelationship("r1", "Contoso", "active", CONTOSO, "Contoso Group")

    dry = discover_json(renaming_world, "--dry-run")
    renamed = discover_json(renaming_world)
    again = discover_json(renaming_world)

    assert renames(dry) == renames(renamed) == [(CONTOSO, "Contoso Group", "Contoso Ltd", "Contoso Group")]
    assert renamed["counts"] == {
        "added": 0,
        "renamed upstream": 1,
        "gone": 0,
        "returned": 0,
        "unchanged": 1,
        "still gone": 0,
    }
    assert again["counts"] == {
        "added": 0,
        "renamed upstream": 0,
        "gone": 0,
        "returned": 0,
        "unchanged": 2,
        "still gone": 0,
    }
    # discovery's own name follows the rename (it kept "Contoso Ltd" forever); yours is never overwritten
    assert [r["name"] for r in read_rows(tenants_csv)] == ["Contoso Group", "Our Fabrikam"]


def test_a_rename_upstream_of_a_name_of_yours_keeps_yours_and_says_so(renaming_world: World) -> None:
    tenants_csv = use_discovery(renaming_world)
    discover_json(renaming_world)
    rows = read_rows(tenants_csv)
    rows[0]["name"] = "Our Contoso"
    tenants_csv.write_text(render_tenants_file(TenantRow(r["tenant_id"], r["name"]) for r in rows))
    renaming_world.sim.relationships[0] = SimRelationship("r1", "Contoso", "active", CONTOSO, "Contoso Group")

    result = renaming_world.fetcher("tenants", "discover")

    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stdout.split())
    assert "upstream name was Contoso Ltd, now Contoso Group" in shown
    assert "follows" not in shown
    assert [r["name"] for r in read_rows(tenants_csv)] == ["Our Contoso", "Fabrikam Inc"]


def test_a_hostile_display_name_renamed_upstream_stays_one_line_in_the_table(renaming_world: World) -> None:
    """Display names come from Graph: control characters and a 10,000-character name are neither obeyed nor
    shown whole."""
    use_discovery(renaming_world)
    assert renaming_world.fetcher("tenants", "discover").returncode == 0
    hostile = "Contoso\x1b[2J\u202eGroup\n" + "x" * 10_000
    renaming_world.sim.relationships[0] = SimRelationship("r1", "Contoso", "active", CONTOSO, hostile)

    result = renaming_world.fetcher("tenants", "discover")

    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "renamed upstream" in line)
    assert "upstream name was Contoso Ltd, now Contoso [2J Group x" in " ".join(line.split())
    assert "\x1b" not in result.stdout + result.stderr
    assert "\u202e" not in result.stdout + result.stderr
    assert len(line) < 500  # the name in the file followed the rename: Graph's 256 characters at most, not 10,000
    assert "1 renamed upstream" in result.stderr


# -- automatic mode: tenants_source = "partner"


def automatic(w: World, *, refresh_hours: float, fetch: dict[str, object] | None = None) -> None:
    """A configuration whose tenants are discovered at PARTNER by `run` and `backfill`."""
    w.write_config(tenants=[], fetch={"history_days": 10, "control_profiles": False, **(fetch or {})})
    partner = "\n".join(toml_table("partner", {"tenant_id": PARTNER, "refresh_hours": refresh_hours}))
    w.config.write_text(f'tenants_source = "partner"\n{w.config.read_text()}\n{partner}\n')


def small_relationships() -> list[SimRelationship]:
    return [
        SimRelationship("r1", "Contoso managed security", "active", CONTOSO, "Contoso Ltd"),
        SimRelationship("r2", "Fabrikam managed security", "active", FABRIKAM, "Fabrikam Inc"),
        SimRelationship("r3", "MLT_0001_placeholder", "active", NORTHWIND, "Northwind Traders"),
    ]


@pytest.fixture
def auto_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    tenants = [SimTenant(PARTNER, "Partner", partner=True)] + [
        SimTenant(t, n) for t, n in ((CONTOSO, "Contoso Ltd"), (FABRIKAM, "Fabrikam Inc"), (NORTHWIND, "Northwind"))
    ]
    with world(tmp_path, database_url, tenants, seed=21, relationships=small_relationships()) as w:
        yield w


def fetched_by_run(w: World) -> list[set[str]]:
    """The tenants each run fetched, oldest run first."""
    runs = sorted(db_rows(w.database_url, fetch_runs), key=lambda r: r["started_at"])
    done = db_rows(w.database_url, tenant_runs)
    return [{r["tenant_id"] for r in done if r["run_id"] == run["run_id"]} for run in runs]


def partner_requests(w: World) -> list[int]:
    return [r.status for r in w.sim.requests if r.endpoint == "partner"]


def test_automatic_run_fetches_a_new_customer_and_stops_a_terminated_one_keeping_its_history(
    auto_world: World,
) -> None:
    """A customer added between two runs gets its whole window; one whose relationship ended is not fetched
    and its stored days stay."""
    automatic(auto_world, refresh_hours=0)
    first = auto_world.fetcher("run")
    assert first.returncode == 0, first.stderr
    fabrikam_days = db_count(auto_world.database_url, secure_scores, tenant_id=FABRIKAM)
    assert fabrikam_days == 10
    auto_world.sim.relationships = [
        SimRelationship("r1", "Contoso managed security", "active", CONTOSO, "Contoso Ltd"),
        SimRelationship("r2", "Fabrikam managed security", "terminated", FABRIKAM, "Fabrikam Inc"),
        SimRelationship("r4", "Northwind onboarding", "active", NORTHWIND, "Northwind Traders"),
    ]
    second = auto_world.fetcher("run")
    assert second.returncode == 0, second.stderr
    assert fetched_by_run(auto_world) == [{CONTOSO, FABRIKAM}, {CONTOSO, NORTHWIND}]
    assert db_count(auto_world.database_url, secure_scores, tenant_id=NORTHWIND) == 10
    assert db_count(auto_world.database_url, secure_scores, tenant_id=FABRIKAM) == fabrikam_days
    customers = {r["tenant_id"]: r for r in db_rows(auto_world.database_url, partner_customers)}
    assert customers[FABRIKAM]["gone_since"] is not None
    assert (customers[CONTOSO]["gone_since"], customers[NORTHWIND]["gone_since"]) == (None, None)
    names = {r["tenant_id"]: r["name"] for r in db_rows(auto_world.database_url, tenants_table)}
    assert names == {CONTOSO: "Contoso Ltd", FABRIKAM: "Fabrikam Inc", NORTHWIND: "Northwind Traders"}
    assert partner_requests(auto_world) == [200, 200]
    report = auto_world.invoke("report", "--format", "json")
    assert report.returncode == 0, report.stderr
    fetched = {r["tenant_id"]: r["enabled"] for r in json.loads(report.stdout)["tenants"]}
    assert fetched == {CONTOSO: True, NORTHWIND: True, FABRIKAM: False}  # Fabrikam: history kept, not fetched
    assert partner_requests(auto_world) == [200, 200]  # reading commands never discover


def test_automatic_backfill_reuses_the_list_within_refresh_hours(auto_world: World) -> None:
    """Within [partner] refresh_hours the list comes from the database: no discovery request at all."""
    automatic(auto_world, refresh_hours=24)
    assert auto_world.fetcher("backfill", "--days", "3").returncode == 0
    auto_world.sim.relationships.append(SimRelationship("r4", "Northwind", "active", NORTHWIND, "Northwind"))
    second = auto_world.fetcher("backfill", "--days", "3")
    assert second.returncode == 0, second.stderr
    assert partner_requests(auto_world) == [200]
    assert fetched_by_run(auto_world) == [{CONTOSO, FABRIKAM}, {CONTOSO, FABRIKAM}]


def test_tenants_check_in_automatic_mode_checks_the_discovered_customers(auto_world: World) -> None:
    automatic(auto_world, refresh_hours=24)
    result = auto_world.fetcher("tenants", "check", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert {(c["tenant_id"], c["state"]) for c in json.loads(result.stdout)} == {(CONTOSO, "ok"), (FABRIKAM, "ok")}
    assert partner_requests(auto_world) == [200]


def test_tenants_check_in_automatic_mode_creates_no_database(tmp_path: Path) -> None:
    """Before the first run (no SQLite file yet) the customers are discovered and kept nowhere, as `config check
    --online` does; the check used to create and migrate the database to keep the list in."""
    database = tmp_path / "new.db"
    tenants = [SimTenant(PARTNER, "Partner", partner=True), SimTenant(CONTOSO, "Contoso Ltd")]
    relationships = [SimRelationship("r1", "Contoso managed security", "active", CONTOSO, "Contoso Ltd")]
    with world(tmp_path, f"sqlite+aiosqlite:///{database}", tenants, relationships=relationships) as w:
        automatic(w, refresh_hours=24)

        result = w.fetcher("tenants", "check", "--format", "json")

        assert result.returncode == 0, result.stderr
        assert [(c["tenant_id"], c["state"]) for c in json.loads(result.stdout)] == [(CONTOSO, "ok")]
        assert partner_requests(w) == [200]
    assert not database.exists()
    assert "creating a new, empty one" not in result.stderr


def test_a_failed_discovery_falls_back_to_the_last_known_list_and_says_so(auto_world: World) -> None:
    automatic(auto_world, refresh_hours=0, fetch={"max_attempts": 1})
    assert auto_world.fetcher("run").returncode == 0
    auto_world.sim.add_fault(PARTNER, Fault.status(503, endpoint="partner"))
    second = auto_world.fetcher("run")
    assert second.returncode == 0, second.stderr
    assert f"tenant discovery at partner tenant {PARTNER} failed" in second.stderr
    assert "fetching the last known list instead: 2 customer(s) discovered at" in second.stderr
    assert fetched_by_run(auto_world) == [{CONTOSO, FABRIKAM}, {CONTOSO, FABRIKAM}]
    assert partner_requests(auto_world) == [200, 503]
    state = db_rows(auto_world.database_url, partner_discoveries)
    assert [(s["customers"], s["error_kind"], s["discovered_at"] < s["attempted_at"]) for s in state] == [
        (2, "server_error", True)
    ]


def test_a_failed_first_discovery_is_one_line_and_exit_4(auto_world: World) -> None:
    """Entra ID and Graph were asked, so not exit 2 (which Kubernetes' podFailurePolicy never retries): exit 4,
    as a run whose every tenant failed."""
    automatic(auto_world, refresh_hours=24, fetch={"max_attempts": 1})
    auto_world.sim.add_fault(PARTNER, Fault.status(503, endpoint="partner"))
    result = auto_world.fetcher("run")
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if "discovery" in line]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"error: tenant discovery at partner tenant {PARTNER} failed and no earlier discovery left a customer "
        f"list to fall back to: tenant {PARTNER} (partner): Graph failed (503"
    )
    assert db_rows(auto_world.database_url, fetch_runs) == []


def discovery_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "tenant discovery" in line]


def test_status_report_and_metrics_show_a_discovery_that_never_worked(auto_world: World) -> None:
    """Nights of exit 4 leave no run, only the failed discovery: `status` was an empty table and exit 0."""
    automatic(auto_world, refresh_hours=24, fetch={"max_attempts": 1})
    auto_world.sim.add_fault(PARTNER, Fault.status(503, endpoint="partner"))
    assert auto_world.fetcher("run").returncode == 4

    status = auto_world.invoke("status")
    report = auto_world.invoke("report")
    metrics = auto_world.invoke("metrics")

    assert status.returncode == 4, status.stderr
    failed = f"tenant discovery at partner tenant {PARTNER} failed at "
    [line] = discovery_lines(status.stderr)
    assert line.startswith(f"error: {failed}"), line
    assert "server_error: " in line, line
    assert line.endswith("; no discovery ever succeeded, so no tenant is fetched")
    assert report.returncode == 0, report.stderr
    assert [line.replace("warning: ", "error: ", 1) for line in discovery_lines(report.stderr)] == [line]
    assert report.stdout.splitlines()[0].endswith(
        "; no discovery ever succeeded, so this report covers no customer list (configured tenants)"
    )
    assert f'securescore_discovery_succeeded{{partner_tenant_id="{PARTNER}"}} 0.0' in metrics.stdout
    assert "securescore_discovery_list_age_seconds{" not in metrics.stdout


def test_status_before_any_discovery_exits_as_for_configured_tenants_never_fetched(auto_world: World) -> None:
    """Right after `migrate`, before any run: was an empty table (JSON `[]`) and exit 0, which a monitoring
    check reads as healthy, where the same tenants configured and never fetched exit 1."""
    auto_world.write_config(tenants=[CONTOSO, FABRIKAM])
    configured = auto_world.invoke("status")
    automatic(auto_world, refresh_hours=24)

    table = auto_world.invoke("status")
    as_json = auto_world.invoke("status", "--format", "json")

    assert (configured.returncode, table.returncode, as_json.returncode) == (1, 1, 1), table.stderr
    assert discovery_lines(table.stderr) == discovery_lines(as_json.stderr) == [f"error: {never_discovered(PARTNER)}"]
    assert "no tenant discovery has been tried at partner tenant" in never_discovered(PARTNER)
    assert partner_requests(auto_world) == []


def test_status_before_any_discovery_is_an_error_record_with_its_kind(auto_world: World) -> None:
    """Under --log-format json its error record had no `error_kind`, which every other error record has."""
    automatic(auto_world, refresh_hours=24)

    status = auto_world.fetcher("--log-format", "json", "status")

    assert status.returncode == 1
    assert [(r["level"], r.get("error_kind"), r["message"]) for r in json_records(status.stderr)] == [
        ("error", "never_discovered", never_discovered(PARTNER))
    ]


def test_report_before_any_discovery_warns_as_status_errs(auto_world: World) -> None:
    """`report` right after `migrate` was an empty "0 tenants" portfolio, exit 0, with no word of why."""
    automatic(auto_world, refresh_hours=24)

    report = auto_world.fetcher("report")

    assert report.returncode == 0, report.stderr
    assert discovery_lines(report.stderr) == [f"warning: {never_discovered(PARTNER)}"]
    assert partner_requests(auto_world) == []


def json_records(stderr: str) -> list[dict[str, object]]:
    """Standard error under --log-format json: every line a JSON record (a plain line fails to parse)."""
    return [json.loads(line) for line in stderr.splitlines()]


def test_json_logs_get_status_and_report_lines_as_records(auto_world: World, tmp_path: Path) -> None:
    """Under --log-format json, status's `error: tenant discovery ...` and counts, and report's `warning: ...`
    and `wrote ...`, were plain text lines among the JSON records."""
    auto_world.write_config(tenants=[CONTOSO])  # configured and never fetched: status counts it
    status_counts = auto_world.fetcher("--log-format", "json", "status")
    automatic(auto_world, refresh_hours=24, fetch={"max_attempts": 1})
    auto_world.sim.add_fault(PARTNER, Fault.status(503, endpoint="partner"))
    assert auto_world.fetcher("run").returncode == 4

    status = auto_world.fetcher("--log-format", "json", "status")
    report = auto_world.fetcher("--log-format", "json", "report", "--output", str(tmp_path / "r.txt"))

    assert [(r["level"], r["message"]) for r in json_records(status_counts.stderr)] == [
        ("warning", "1 enabled tenant(s) have no data")  # it makes status exit 1 (it was an info record)
    ]
    [failed] = json_records(status.stderr)
    assert (failed["level"], failed["error_kind"], str(failed["message"]).startswith("tenant discovery at")) == (
        "error",
        "no_customer_list",
        True,
    )
    assert [(r["level"], r["message"]) for r in json_records(report.stderr)] == [
        ("info", f"wrote the portfolio (0 tenants, table) to {tmp_path / 'r.txt'}"),
        ("warning", failed["message"]),
    ]


def test_metrics_before_any_discovery_say_none_was_tried(auto_world: World) -> None:
    """Right after `migrate`, where `status` exits 1: metrics had only HELP/TYPE lines for the discovery, so no
    rule could tell a deployment that never discovered (and fetches nothing) from one not in partner mode."""
    automatic(auto_world, refresh_hours=24)

    metrics = auto_world.invoke("metrics")

    assert metrics.returncode == 0, metrics.stderr
    samples = [line for line in metrics.stdout.splitlines() if line.startswith("securescore_discovery_")]
    assert samples == [
        f'securescore_discovery_succeeded{{partner_tenant_id="{PARTNER}"}} 0.0',
        f'securescore_discovery_attempt_timestamp_seconds{{partner_tenant_id="{PARTNER}"}} 0.0',
    ]
    assert partner_requests(auto_world) == []


def test_status_names_a_failed_discovery_and_the_age_of_the_list_in_use(auto_world: World) -> None:
    automatic(auto_world, refresh_hours=0, fetch={"max_attempts": 1})
    assert auto_world.fetcher("run").returncode == 0
    assert auto_world.invoke("status").returncode == 0
    ok = auto_world.invoke("metrics").stdout
    auto_world.sim.add_fault(PARTNER, Fault.status(503, endpoint="partner"))
    assert auto_world.fetcher("run").returncode == 0

    status = auto_world.invoke("status")
    metrics = auto_world.invoke("metrics").stdout

    assert status.returncode == 1, status.stderr
    [line] = discovery_lines(status.stderr)
    assert "; runs fetch the last known list: 2 customer(s) discovered at " in line, line
    assert line.endswith(" (0 hours old)"), line
    assert f'securescore_discovery_succeeded{{partner_tenant_id="{PARTNER}"}} 1.0' in ok
    assert f'securescore_discovery_succeeded{{partner_tenant_id="{PARTNER}"}} 0.0' in metrics
    assert f'securescore_discovery_customers{{partner_tenant_id="{PARTNER}"}} 2.0' in metrics
    assert f'securescore_discovery_list_age_seconds{{partner_tenant_id="{PARTNER}"}}' in metrics


def below_100_alerts(w: World) -> None:
    """[alerts]: one rule that every tenant with data meets, sent to a webhook nobody answers."""
    w.config.write_text(
        w.config.read_text()
        + '\n[alerts]\nmax_attempts = 1\n\n[[alerts.rules]]\nname = "low"\nkind = "below_percent"\n'
        'percent = 100.0\nchannels = ["hook"]\n\n[[alerts.channels]]\nname = "hook"\ntype = "webhook"\n'
        'url = "http://127.0.0.1:9/hook"\n'
    )


def test_alerts_and_metrics_in_automatic_mode_cover_the_customers_the_run_fetched(auto_world: World) -> None:
    """`alerts` and `metrics` on their own take the last discovered list, as `status` and `report` do; they
    took the configured tenants (none here), so `alerts` resolved every alert `run` had opened, without a
    message, and `metrics` had no tenant series."""
    automatic(auto_world, refresh_hours=24)
    below_100_alerts(auto_world)
    assert auto_world.fetcher("run").returncode == 0

    dry = auto_world.fetcher("alerts", "--dry-run", "--format", "json")
    alerts = auto_world.fetcher("alerts", "--format", "json")
    metrics = auto_world.invoke("metrics")

    assert dry.returncode == 0, dry.stderr
    assert sorted((a["tenant_id"], a["status"]) for a in json.loads(dry.stdout)["alerts"]) == [
        (CONTOSO, "open"),
        (FABRIKAM, "open"),
    ]
    assert alerts.returncode == 1, alerts.stderr  # the webhook never answers: its messages stay owed
    assert sorted((a["tenant_id"], a["status"]) for a in json.loads(alerts.stdout)["alerts"]) == [
        (CONTOSO, "open"),
        (FABRIKAM, "open"),
    ]
    assert metrics.returncode == 0, metrics.stderr
    assert 'securescore_alerts_open{kind="below_percent",rule="low"} 2.0' in metrics.stdout
    assert f'tenant_id="{CONTOSO}",tenant_name="Contoso Ltd"' in metrics.stdout
    assert f'tenant_id="{FABRIKAM}",tenant_name="Fabrikam Inc"' in metrics.stdout
    assert partner_requests(auto_world) == [200]  # reading commands never discover


def test_a_missing_tenants_file_in_automatic_mode_is_said_and_every_customer_fetched(auto_world: World) -> None:
    automatic(auto_world, refresh_hours=0)
    auto_world.config.write_text(f'tenants_file = "renames.csv"\n{auto_world.config.read_text()}')
    missing = auto_world.config.parent / "renames.csv"

    result = auto_world.fetcher("run")

    assert result.returncode == 0, result.stderr
    warnings = [line.partition(" fetcher.cli: ")[2] for line in result.stderr.splitlines() if "tenants_file" in line]
    assert warnings == [
        f"{auto_world.config}: tenants_file {missing} does not exist: every discovered customer is fetched "
        "under its discovered name, none renamed or disabled by it (`fetcher tenants discover` writes it; or "
        "remove tenants_file)"
    ]
    assert fetched_by_run(auto_world) == [{CONTOSO, FABRIKAM}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backfill", "--days", "0"], "error: the window is 0 days: give 1 to 90 days"),
        (["backfill", "--since", "2999-01-01"], "error: --since 2999-01-01: that is in the future"),
        (["run", "--shard", "3/2"], "error: --shard 3/2: '3/2': K must be between 1 and N (2)"),
        (["backfill", "--shard", "1/2", "--tenant", CONTOSO], "error: --tenant with shard 1/2: give the tenants"),
        (["run", "--tenant", "contoso"], "error: --tenant contoso: not a tenant id (a GUID"),
        (["tenants", "check", "--tenant", "contoso"], "error: --tenant contoso: not a tenant id (a GUID"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_usage_error_in_automatic_mode_is_said_before_discovery_asks_anything(
    partner_world: World, args: list[str], message: str
) -> None:
    """Partner discovery (a token, the relationships) used to run first and the mistake came after it."""
    automatic(partner_world, refresh_hours=0)

    result = partner_world.fetcher(*args)

    assert result.returncode == 2
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert partner_world.sim.requests == []


class Partner:
    """A partner whose discovery answers `customers`, or raises `failure`; counts the discoveries."""

    def __init__(self, *customers: Customer) -> None:
        self.customers = list(customers)
        self.failure: Exception | None = None
        self.calls = 0

    async def discover(self, config: Config, partner: PartnerConfig) -> Found:  # noqa: ARG002 (DiscoverFn)
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return Found(tuple(self.customers), {})


def partner_config(database_url: str, *, source: str = "gdap", refresh_hours: float = 24) -> Config:
    auth = AuthConfig(client_id="3f5c9a27-6b1e-4d8a-9c2f-7e4b1a0d6c53")
    return Config(
        DatabaseConfig(url=database_url), GraphConfig(), FetchConfig(), auth, (),
        partner=PartnerConfig(PARTNER, auth, source, refresh_hours), tenants_source="partner",
    )  # fmt: skip


T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def test_the_list_is_reused_within_refresh_hours_on_a_virtual_clock(engine: AsyncEngine) -> None:
    partner = Partner(Customer(CONTOSO, "Contoso"))
    config = partner_config("unused")
    first = await customer_list(config, engine, T0, partner.discover)
    partner.customers.append(Customer(FABRIKAM, "Fabrikam"))
    later = await customer_list(config, engine, T0 + timedelta(hours=20), partner.discover)
    assert (first.origin, later.origin, later.customers, partner.calls) == (
        "discovered", "cached", (Customer(CONTOSO, "Contoso"),), 1
    )  # fmt: skip
    next_night = await customer_list(config, engine, T0 + timedelta(hours=23, minutes=59), partner.discover)
    assert (next_night.origin, len(next_night.customers), partner.calls) == ("discovered", 2, 2)
    other_source = await customer_list(partner_config("unused", source="both"), engine, T0 + timedelta(hours=24),
                                       partner.discover)  # fmt: skip
    assert (other_source.origin, partner.calls) == ("discovered", 3)


async def test_a_run_logs_a_rename_upstream_once_and_none_after_another_source(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Automatic mode keeps the names too, so the discovery that first sees a rename says it, once; a
    contract may name a customer otherwise than its GDAP relationship, which is no rename."""
    partner = Partner(Customer(CONTOSO, "Contoso Ltd"))
    config = partner_config("unused", refresh_hours=0)
    await customer_list(config, engine, T0, partner.discover)
    partner.customers = [Customer(CONTOSO, "Contoso Group")]
    with caplog.at_level(logging.INFO, logger="fetcher.partner"):
        for hours in (1, 2):
            await customer_list(config, engine, T0 + timedelta(hours=hours), partner.discover)
        partner.customers = [Customer(CONTOSO, "Contoso Group Ltd (contract)")]
        await customer_list(partner_config("unused", source="contracts"), engine, T0 + timedelta(hours=3),
                            partner.discover)  # fmt: skip
    assert [(r.levelno, r.getMessage()) for r in caplog.records if "renamed" in r.getMessage()] == [
        (
            logging.WARNING,
            f"customer {CONTOSO} renamed upstream: 'Contoso Ltd' -> 'Contoso Group' "
            "(no configured name: fetched under the new one)",
        )
    ]  # a warning: operators run cron with -q or JSON logs


async def test_a_failed_discovery_returns_the_last_known_list_with_its_time(engine: AsyncEngine) -> None:
    partner = Partner(Customer(CONTOSO, "Contoso"))
    config = partner_config("unused", refresh_hours=0)
    await customer_list(config, engine, T0, partner.discover)
    partner.failure = ServerError("tenant x (partner): Graph failed (503)", status=503)
    fallback = await customer_list(config, engine, T0 + timedelta(hours=1), partner.discover)
    assert fallback == CustomerList((Customer(CONTOSO, "Contoso"),), T0, "fallback",
                                    "tenant x (partner): Graph failed (503)")  # fmt: skip


async def test_an_interrupted_discovery_is_not_a_fallback(engine: AsyncEngine) -> None:
    partner = Partner(Customer(CONTOSO, "Contoso"))
    config = partner_config("unused", refresh_hours=0)
    await customer_list(config, engine, T0, partner.discover)
    partner.failure = Interrupted("stopped", signal_number=2)
    with pytest.raises(Interrupted):
        await customer_list(config, engine, T0 + timedelta(hours=1), partner.discover)


async def test_an_empty_answer_is_no_customer_list_and_keeps_the_last_known_one(engine: AsyncEngine) -> None:
    """An empty answer was saved as the list: every stored tenant became `not configured`, every row `gone`."""
    partner = Partner(Customer(CONTOSO, "Contoso"))
    config = partner_config("unused", refresh_hours=0)
    await customer_list(config, engine, T0, partner.discover)
    partner.customers = []

    fallback = await customer_list(config, engine, T0 + timedelta(hours=1), partner.discover)

    assert (fallback.origin, fallback.customers, fallback.discovered_at) == (
        "fallback",
        (Customer(CONTOSO, "Contoso"),),
        T0,
    )
    assert fallback.error is not None
    assert "found no active customer in [partner] source = 'gdap'" in fallback.error
    assert [(r["tenant_id"], r["gone_since"]) for r in await rows(engine, partner_customers)] == [(CONTOSO, None)]
    [state] = await rows(engine, partner_discoveries)
    assert (state["customers"], state["error_kind"]) == (1, "discovery_failed")


async def test_an_empty_first_answer_is_exit_4_naming_the_source(tmp_path: Path) -> None:
    """It was a configuration error (exit 2), which Kubernetes' podFailurePolicy never retries: Graph was asked."""
    config = partner_config(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", refresh_hours=0)
    with pytest.raises(NoCustomerList) as caught:
        await with_discovered_tenants(config, T0, Partner().discover)
    assert caught.value.exit_code == 4
    assert str(caught.value) == (
        f"tenant discovery at partner tenant {PARTNER} failed and no earlier discovery left a customer list to fall "
        "back to: found no active customer in [partner] source = 'gdap': check that source (gdap, contracts, both) "
        "and the app's permission to read it (a partner with no customer yet has nothing to fetch)"
    )


def test_discover_with_an_empty_answer_keeps_the_file_and_exits_4(partner_world: World) -> None:
    tenants_csv = use_discovery(partner_world)
    assert partner_world.fetcher("tenants", "discover").returncode == 0
    before = tenants_csv.read_bytes()
    partner_world.config.write_text(partner_world.config.read_text().replace('source = "gdap"', 'source = "contracts"'))
    partner_world.sim.contracts = []

    for args in ((), ("--dry-run",)):
        result = partner_world.fetcher("tenants", "discover", *args)
        assert result.returncode == 4, result.stderr
        assert "found no active customer in [partner] source = 'contracts'" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert tenants_csv.read_bytes() == before


def test_a_run_after_an_empty_answer_fetches_the_last_known_list(auto_world: World) -> None:
    automatic(auto_world, refresh_hours=0)
    assert auto_world.fetcher("run").returncode == 0
    auto_world.config.write_text(auto_world.config.read_text().replace("[partner]", '[partner]\nsource = "contracts"'))

    run = auto_world.fetcher("run")
    status = auto_world.invoke("status")

    assert run.returncode == 0, run.stderr
    assert "fetching the last known list instead: 2 customer(s)" in run.stderr
    assert fetched_by_run(auto_world) == [{CONTOSO, FABRIKAM}, {CONTOSO, FABRIKAM}]
    assert status.returncode == 1, status.stderr  # the failed discovery, said in one line
    assert "not configured" not in status.stdout


def test_get_in_automatic_mode_asks_for_a_discovered_customers_score(auto_world: World) -> None:
    """`get` used to look the score's tenant up among the configured tenants only (none in this mode), and
    blamed a `--tenant` never given."""
    automatic(auto_world, refresh_hours=24)
    day = auto_world.sim.newest_day

    result = auto_world.fetcher("get", f"{FABRIKAM}_{day}")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == f"{FABRIKAM}_{day}"
    assert partner_requests(auto_world) == [200]  # discovered first, as `run` does
    assert db_count(auto_world.database_url, secure_scores, tenant_id=FABRIKAM) == 1

    again = auto_world.fetcher("get", f"{CONTOSO}_{day}")
    assert again.returncode == 0, again.stderr
    assert partner_requests(auto_world) == [200]  # the list is reused within refresh_hours

    stranger = auto_world.fetcher("get", f"{WINGTIP}_{day}")
    assert stranger.returncode == 2
    assert stranger.stderr.strip().splitlines()[-1] == (
        f"error: {WINGTIP}_{day}: tenant {WINGTIP} is not in the customers discovered at partner tenant {PARTNER}"
    )
    assert "--tenant" not in stranger.stderr


# -- automatic mode, sharded: each shard discovers the customers and fetches its own slice of them


@pytest.fixture
def own_postgres() -> Iterator[str]:
    """A PostgreSQL database of this test's own (the shards' ledger is read whole)."""
    if _admin_url() is None:
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_partner_shards")
    try:
        yield url
    finally:
        drop_postgres_database(url)


SHARD_CUSTOMERS = [bulk_id(n) for n in range(8)]


@pytest.mark.postgres
def test_two_shards_of_an_automatic_run_at_once_discover_together_and_fetch_each_customer_once(
    tmp_path: Path, own_postgres: str
) -> None:
    """Both shards ask the partner at once (its answer delayed 1.5 s, so their discoveries overlap: 0.4 s apart
    on a loaded 2-core machine) and write the same discovery cache; each then fetches only its own customers,
    every customer once, and both succeed. PostgreSQL only: SQLite takes one shard at a time
    (tests/reliability/test_shards.py)."""
    tenants = [SimTenant(PARTNER, "Partner", partner=True)]
    tenants += [SimTenant(t, f"Customer {n}") for n, t in enumerate(SHARD_CUSTOMERS)]
    active = [
        SimRelationship(f"s{n}", f"Customer {n}", "active", t, f"Customer {n}") for n, t in enumerate(SHARD_CUSTOMERS)
    ]
    mine = {k: {t for t in SHARD_CUSTOMERS if Shard(k, 2).holds(t)} for k in (1, 2)}
    assert all(mine.values()), "each shard needs customers of its own"
    with world(tmp_path, own_postgres, tenants, seed=23, relationships=active) as w:
        w.sim.add_fault(PARTNER, Fault.latency(1500, endpoint="partner"))
        automatic(w, refresh_hours=0, fetch={"history_days": 3})
        assert w.fetcher("migrate").returncode == 0
        shards = [w.start("run", "--shard", f"{k}/2") for k in (1, 2)]
        done = [shard.communicate(timeout=180) for shard in shards]

        for shard, (_, stderr) in zip(shards, done, strict=True):
            assert shard.returncode == 0, stderr
        runs = {r["run_id"]: r["shard"] for r in db_rows(own_postgres, fetch_runs)}
        by_shard: dict[str, list[str]] = {"1/2": [], "2/2": []}
        for row in db_rows(own_postgres, tenant_runs):
            by_shard[runs[row["run_id"]]].append(row["tenant_id"])
            assert row["status"] == "succeeded", row
        customers = db_rows(own_postgres, partner_customers)
        days = {t: db_count(own_postgres, secure_scores, tenant_id=t) for t in SHARD_CUSTOMERS}

    assert sorted(by_shard["1/2"]) == sorted(mine[1])
    assert sorted(by_shard["2/2"]) == sorted(mine[2])
    assert partner_requests(w).count(200) >= 2  # each shard discovered (refresh_hours = 0)
    assert sorted(c["tenant_id"] for c in customers) == sorted(SHARD_CUSTOMERS)
    assert all(c["gone_since"] is None for c in customers)
    assert days == dict.fromkeys(SHARD_CUSTOMERS, 3)


def test_every_report_format_says_in_its_header_that_discovery_failed_and_which_list_it_covers(
    auto_world: World,
) -> None:
    """A report after a failed discovery covers the last known customers: its header says so, with the failure's
    time and cause and the list's time and size, not only a warning on standard error that a mail may drop."""
    automatic(auto_world, refresh_hours=0, fetch={"max_attempts": 1})
    assert auto_world.fetcher("run").returncode == 0
    auto_world.sim.add_fault(PARTNER, Fault.status(503, endpoint="partner"))
    assert auto_world.fetcher("run").returncode == 0
    page = auto_world.config.parent / "report.html"

    table = auto_world.invoke("report")
    markdown = auto_world.invoke("report", "--format", "markdown")
    data = auto_world.invoke("report", "--format", "json")
    actions = auto_world.invoke("report", "--actions", "--format", "markdown")
    one = auto_world.invoke("report", "--tenant", CONTOSO, "--format", "json")
    html = auto_world.invoke("report", "--html", str(page))

    failed = f"Warning: tenant discovery at partner tenant {PARTNER} failed at "
    covers = "; this report covers the last known customer list: 2 customer(s) discovered at "
    for result in (table, markdown, data, actions, one, html):
        assert result.returncode == 0, result.stderr
    header = table.stdout.splitlines()[0]
    assert header.startswith(failed), header
    assert covers in header, header
    assert ": server_error: " in header, header
    for text in (markdown.stdout, actions.stdout):
        quoted = text.splitlines()[2]
        assert quoted.startswith(f"> **Warning:** {failed[9:]}"), quoted
        assert covers in quoted, quoted
    for result in (data, one):
        note = json.loads(result.stdout)["discovery_failure"]
        assert (note["partner_tenant_id"], note["customers"]) == (PARTNER, 2)
        assert note["cause"].startswith(f"server_error: tenant {PARTNER} (partner): Graph failed (503")
        assert note["list_discovered_at"] < note["failed_at"]
        assert note["sentence"] == header.removeprefix("Warning: ")
    head = page.read_text().split("</header>")[0]
    assert f'<p class="warning" role="alert">{escape(header)}</p>' in head


def test_a_rename_a_run_sees_first_is_followed_by_a_name_discover_wrote_not_by_your_own(auto_world: World) -> None:
    """A run in automatic mode that sees a rename upstream first: the name `tenants discover` wrote before (the
    old display name) follows it in that run, the next ones, `report`, and the file at the next discover; a name
    of your own is kept. Before, the run recorded the new name, so the old one stayed everywhere."""
    automatic(auto_world, refresh_hours=0)
    auto_world.config.write_text(f'tenants_file = "tenants.csv"\n{auto_world.config.read_text()}')
    tenants_csv = auto_world.config.parent / "tenants.csv"
    assert auto_world.fetcher("tenants", "discover").returncode == 0
    tenants_csv.write_text(tenants_csv.read_text().replace("Fabrikam Inc", "My Fabrikam"))
    auto_world.sim.relationships = [
        SimRelationship("r1", "Contoso managed security", "active", CONTOSO, "Contoso Group"),
        SimRelationship("r2", "Fabrikam managed security", "active", FABRIKAM, "Fabrikam Corp"),
    ]

    first = auto_world.fetcher("run")
    names_then = {r["tenant_id"]: r["name"] for r in db_rows(auto_world.database_url, tenants_table)}
    second = auto_world.fetcher("run")
    report = auto_world.invoke("report", "--format", "json")
    discover = auto_world.fetcher("tenants", "discover", "--format", "json")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    expected = {CONTOSO: "Contoso Group", FABRIKAM: "My Fabrikam"}
    assert names_then == expected
    # the warning is the only report of a rename under a name of yours: it said the old name followed
    said = [line.split("WARNING fetcher.partner: ")[1] for line in first.stderr.splitlines() if "renamed up" in line]
    assert said == [
        f"customer {CONTOSO} renamed upstream: 'Contoso Ltd' -> 'Contoso Group' (the configured name was the old "
        "one and follows)",
        f"customer {FABRIKAM} renamed upstream: 'Fabrikam Inc' -> 'Fabrikam Corp' (the configured name 'My "
        "Fabrikam' is kept)",
    ]
    assert {r["tenant_id"]: r["name"] for r in db_rows(auto_world.database_url, tenants_table)} == expected
    assert {t["tenant_id"]: t["name"] for t in json.loads(report.stdout)["tenants"]} == expected
    assert discover.returncode == 0, discover.stderr
    changes = {c["tenant_id"]: c for c in json.loads(discover.stdout)["changes"]}
    assert (changes[CONTOSO]["change"], changes[CONTOSO]["previous_upstream_name"]) == (
        "renamed upstream",
        "Contoso Ltd",
    )
    assert changes[CONTOSO]["name_followed"] is True
    assert (changes[FABRIKAM]["change"], changes[FABRIKAM]["name_followed"]) == ("unchanged", False)
    assert [(r["tenant_id"], r["name"]) for r in read_rows(tenants_csv)] == list(expected.items())


def test_a_name_discover_wrote_inert_is_run_and_shown_as_it_was_and_follows_a_rename(auto_world: World) -> None:
    """`tenants discover` writes `=Evil,Co` as `'=Evil,Co` (a spreadsheet must not run it): `run` stored and
    `status` showed `'=Evil,Co`, and a rename upstream did not follow, the file's `'=Evil,Co` never being the
    old display name `=Evil,Co`."""
    automatic(auto_world, refresh_hours=0)
    auto_world.config.write_text(f'tenants_file = "tenants.csv"\n{auto_world.config.read_text()}')
    auto_world.sim.relationships = [SimRelationship("r1", "Contoso", "active", CONTOSO, "=Evil,Co")]
    assert auto_world.fetcher("tenants", "discover").returncode == 0
    assert read_rows(auto_world.config.parent / "tenants.csv")[0]["name"] == "'=Evil,Co"

    run = auto_world.fetcher("run")
    status = auto_world.invoke("status", "--format", "json")
    auto_world.sim.relationships = [SimRelationship("r1", "Contoso", "active", CONTOSO, "Good Co")]
    renamed = auto_world.fetcher("run")
    after = auto_world.invoke("status", "--format", "json")

    for result in (run, status, renamed, after):
        assert result.returncode == 0, result.stderr
    assert [(t["tenant_id"], t["name"]) for t in json.loads(status.stdout)] == [(CONTOSO, "=Evil,Co")]
    assert [(t["tenant_id"], t["name"]) for t in json.loads(after.stdout)] == [(CONTOSO, "Good Co")]
    assert [r["name"] for r in db_rows(auto_world.database_url, tenants_table)] == ["Good Co"]


def contracts_only(w: World) -> None:
    """[partner] source = "contracts", which the simulator answers with no customer (it has GDAP ones only)."""
    w.config.write_text(w.config.read_text().replace("[partner]\n", '[partner]\nsource = "contracts"\n'))


@pytest.mark.parametrize("list_before", [False, True], ids=["no list ever", "a list kept"])
def test_an_empty_answer_is_said_once_in_each_line_with_the_list_used_or_none(
    auto_world: World, list_before: bool
) -> None:
    """The cause repeated `tenant discovery at partner tenant X` after the line's own, and said `the last known
    list is kept` where no list had ever been discovered."""
    automatic(auto_world, refresh_hours=0)
    if list_before:
        assert auto_world.fetcher("run").returncode == 0
    contracts_only(auto_world)

    run = auto_world.fetcher("run")
    status = auto_world.invoke("status")
    report = auto_world.invoke("report", "--format", "json")
    table = auto_world.invoke("report")

    assert (run.returncode, status.returncode) == ((0, 1) if list_before else (4, 4)), run.stderr + status.stderr
    sentence = json.loads(report.stdout)["discovery_failure"]["sentence"]
    lines = [*discovery_lines(run.stderr), *discovery_lines(status.stderr), sentence, table.stdout.splitlines()[0]]
    assert len(lines) == 4, lines
    cause = (
        "found no active customer in [partner] source = 'contracts': check that source (gdap, contracts, both) "
        "and the app's permission to read it (a partner with no customer yet has nothing to fetch)"
    )
    for line in lines:
        assert line.count("tenant discovery at partner tenant") == 1, line
        assert cause in line, line
        assert "is kept" not in line, line
    if list_before:
        assert "; runs fetch the last known list: 2 customer(s) discovered at " in lines[1], lines[1]
        assert "; this report covers the last known customer list: 2 customer(s) discovered at " in sentence
    else:
        assert lines[1].endswith("; no discovery ever succeeded, so no tenant is fetched"), lines[1]
        assert sentence.endswith(
            "; no discovery ever succeeded, so this report covers no customer list (configured tenants)"
        )
