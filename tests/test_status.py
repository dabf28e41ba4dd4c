"""`fetcher status` and `fetcher report` use one definition of "no data", "stale" and "failing" (fetcher.health),
and say why a tenant without data has none."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fetcher.cli import main
from fetcher.config import DatabaseConfig
from fetcher.health import Health, LastError, assess
from fetcher.models import Status
from fetcher.store import ledger
from fetcher.store.engine import create_engine, transaction
from tests.report.conftest import score_day, store, write_report_config

NOW = datetime.now(UTC)
FRESH, STALE, REFUSED, NEVER = (f"{i}{i}{i}{i}{i}{i}{i}{i}-0000-4000-8000-000000000000" for i in range(1, 5))
REASON = "Graph denied access (403): the app lacks SecurityEvents.Read.All; have an admin grant consent"


async def _fill(url: str) -> None:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await store(
            engine,
            score_day(FRESH, NOW.date(), {"a": 5.0}),
            score_day(STALE, NOW.date() - timedelta(days=5), {"a": 5.0}),
            names={FRESH: "Fresh", STALE: "Stale", REFUSED: "Refused"},
        )
        async with transaction(engine) as conn:
            await ledger.start_run(conn, run_id="r", command="run", started_at=NOW, tenants_total=1, host="h", pid=1)
            await ledger.record_tenant_run(
                conn,
                ledger.TenantRun(
                    "r",
                    REFUSED,
                    Status.FAILED,
                    NOW,
                    NOW,
                    requests=2,
                    error_kind="permission",
                    error_message=f"tenant {REFUSED} (Refused): {REASON}",
                ),
            )
    finally:
        await engine.dispose()


def _cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def test_status_and_every_report_format_mark_each_tenant_alike_and_say_why_one_has_no_data(
    tmp_path: Path, database_url: str
) -> None:
    names = [(FRESH, "Fresh"), (STALE, "Stale"), (REFUSED, "Refused"), (NEVER, "Never")]
    config = write_report_config(tmp_path / "fetcher.toml", database_url, names)
    assert _cli(config, "migrate").exit_code == 0
    asyncio.run(_fill(database_url))

    status = _cli(config, "status", "--format", "json")
    report = _cli(config, "report", "--format", "json")
    table = _cli(config, "report")
    csv_text = _cli(config, "report", "--format", "csv").stdout
    page = tmp_path / "page.html"
    assert _cli(config, "report", "--html", str(page)).exit_code == 0

    expected = {FRESH: [], STALE: ["stale"], REFUSED: ["no data", "failing"], NEVER: ["no data"]}
    assert status.exit_code == 1  # enabled tenants without data, or with stale data
    assert {s["tenant_id"]: s["marks"] for s in json.loads(status.stdout)} == expected
    assert {t["tenant_id"]: t["marks"] for t in json.loads(report.stdout)["tenants"]} == expected
    assert f"no data: Refused ({REFUSED}): last attempt failed " in table.stdout
    assert f"(permission): tenant {REFUSED} (Refused): {REASON}" in table.stdout
    assert f"no data: Never ({NEVER}): never fetched: no run has reached this tenant yet" in table.stdout
    assert f"permission: {REASON}" in csv_text
    assert "SecurityEvents.Read.All; have an admin grant consent" in page.read_text(encoding="utf-8")


def test_status_says_no_data_for_tenants_without_any_and_stale_for_the_stale(tmp_path: Path, database_url: str) -> None:
    """It said "2 enabled tenant(s) have no data newer than 48 hours" of two tenants with no data at all."""
    names = [(FRESH, "Fresh"), (STALE, "Stale"), (REFUSED, "Refused"), (NEVER, "Never")]
    config = write_report_config(tmp_path / "fetcher.toml", database_url, names)
    assert _cli(config, "migrate").exit_code == 0
    asyncio.run(_fill(database_url))

    status = _cli(config, "status", "--max-age", "48")

    assert status.exit_code == 1
    said = [line for line in status.stderr.splitlines() if "enabled tenant(s) have" in line]
    assert said == [
        "warning: 2 enabled tenant(s) have no data",
        "warning: 1 enabled tenant(s) have no data newer than 48 hours",
    ]
    one_hour = _cli(config, "status", "--max-age", "1")
    assert [line.rsplit(" than ", 1)[1] for line in one_hour.stderr.splitlines() if " newer than " in line] == [
        "1 hour"
    ]


def test_status_takes_names_and_disabled_tenants_from_the_tenants_file_as_report_does(
    tmp_path: Path, database_url: str
) -> None:
    """A tenant renamed and turned off in tenants.csv kept its stored name and showed `ok`; one `gone since`
    showed plain `no data`; `report` said the new name and `disabled`."""
    config = write_report_config(tmp_path / "fetcher.toml", database_url, [])
    config.write_text('tenants_file = "tenants.csv"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "tenants.csv").write_text(
        "tenant_id,name,enabled,source_status\n"
        f"{FRESH},Fresh Renamed,false,\n"
        f"{STALE},Stale,true,\n"
        f"{NEVER},Never,true,gone since 2026-11-01\n",
        encoding="utf-8",
    )
    assert _cli(config, "migrate").exit_code == 0
    asyncio.run(_fill(database_url))

    status = _cli(config, "status", "--format", "json")
    report = _cli(config, "report", "--format", "json")
    table = _cli(config, "status")

    def seen(tenants: list[dict[str, object]]) -> dict[object, tuple[object, object]]:
        return {t["tenant_id"]: (t["name"], t["marks"]) for t in tenants}

    expected = {
        FRESH: ("Fresh Renamed", ["disabled"]),
        STALE: ("Stale", ["stale"]),
        REFUSED: ("Refused", ["no data", "failing", "not configured"]),
        NEVER: ("Never", ["no data", "disabled"]),
    }
    assert seen(json.loads(status.stdout)) == expected
    assert seen(json.loads(report.stdout)["tenants"]) == expected
    assert status.exit_code == 1  # the stale tenant; the disabled and unconfigured ones do not count
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in table.stdout.splitlines() if "│" in line]
    assert {c[1]: (c[0], c[-1]) for c in cells if c[1] in (FRESH, NEVER)} == {
        FRESH: ("Fresh Renamed", "disabled"),
        NEVER: ("Never", "no data, disabled"),
    }


def test_failing_comes_on_top_of_fresh_data_and_an_interrupted_run_is_not_a_failure() -> None:
    day = NOW.date()
    refused = LastError(NOW, "permission", REASON)
    stopped = LastError(NOW, "interrupted", "the run was stopped before this tenant was fetched")

    assert assess(day, refused, NOW, timedelta(hours=48)) == (Health.FAILING,)
    assert assess(day, stopped, NOW, timedelta(hours=48)) == ()
    assert assess(None, None, NOW, timedelta(hours=48)) == (Health.NO_DATA,)
    assert assess(day - timedelta(days=3), None, NOW, timedelta(hours=48)) == (Health.STALE,)


@pytest.mark.parametrize("command", ["status", "report"])
@pytest.mark.parametrize("hours", ["-1", "0", "nan", "inf", "1e300"])
def test_status_refuses_a_max_age_that_is_not_hours_above_zero(tmp_path: Path, command: str, hours: str) -> None:
    """-1 was taken (every tenant stale); nan and inf ended in a traceback. `report --max-age` alike."""
    done = CliRunner().invoke(main, ["--config", str(tmp_path / "none.toml"), command, "--max-age", hours])
    assert done.exit_code == 2
    [error] = [line for line in done.output.splitlines() if "--max-age" in line and "Error" in line]
    assert error.startswith("Error: Invalid value for '--max-age': ")
