"""Discovery against the simulator: `fetcher tenants discover` reads the partner's GDAP relationships and
contracts to the end and merges them into the tenants file."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fetcher.simulator import SimTenant
from fetcher.simulator.partner import SimContract, SimRelationship
from tests.e2e import World, toml_table, world

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
    assert today["counts"] == {"added": 1, "renamed upstream": 2, "gone": 1, "returned": 0, "unchanged": 0}
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
    assert result.returncode == 1, result.stderr
    assert "403" in result.stderr
    assert "DelegatedAdminRelationship.Read.All" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "SecurityEvents.Read.All" not in result.stderr
