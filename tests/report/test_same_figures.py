"""SQLite and PostgreSQL print the same reports: figures rounded by one rule (`fetcher.figures`), ties in
an ordering broken by control name, for the same data stored in each."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig
from fetcher.figures import format_figure, round_figure
from fetcher.normalize import normalize_profile
from fetcher.store.engine import create_engine, transaction
from fetcher.store.profiles import save_control_profiles
from tests.conftest import run_aside
from tests.report.conftest import FETCHED, days_ago, report, score_day, store, write_report_config

A = "aaaaaaaa-0000-4000-8000-00000000000a"
B = "bbbbbbbb-0000-4000-8000-00000000000b"
NAMES = {A: "Alpha", B: "Beta"}
# Infrastructure: 0.0 + 0.6 + 2.0 + 1.09 + 1.33 of 16, the tester's day: a sum whose last bit depends on the order
# the database adds it in (5.02 on SQLite, 5.019999999999999 on PostgreSQL), a percent of 31.375 either way.
INFRASTRUCTURE = {"infra_1": (0.0, 2.0), "infra_2": (0.6, 3.0), "infra_3": (2.0, 4.0), "infra_4": (1.09, 3.0)}
INFRASTRUCTURE["infra_5"] = (1.33, 4.0)
# Data: one control, 100.0 * 5.02 / 16 = 31.374999999999996 in binary floating point; 31.375 exactly.
DATA = {"dlp": (5.02, 16.0)}
# Apps: `z_split` has 0.1 + 0.2 points available (0.30000000000000004), `a_whole` 0.3: a tie as shown.
APPS_A = {"a_whole": (0.0, 0.3), "z_split": (0.0, 0.1)}
APPS_B = {"z_split": (0.0, 0.2)}
CATEGORY = {**dict.fromkeys(INFRASTRUCTURE, "Infrastructure"), "dlp": "Data", "a_whole": "Apps", "z_split": "Apps"}
CATEGORY |= {"a_up": "Identity", "b_up": "Identity"}
# Moved controls: `a_up` 0.1 -> 0.3 (+0.19999999999999998), `b_up` 0.0 -> 0.2 (+0.2): a tie as shown.
EARLIER = {"a_up": (0.1, 1.0), "b_up": (0.0, 1.0)}
LATER = {"a_up": (0.3, 1.0), "b_up": (0.2, 1.0)}


def profile(tenant: str, name: str, max_score: float) -> dict[str, Any]:
    return {
        "id": name,
        "azureTenantId": tenant,
        "title": f"Control {name}",
        "maxScore": max_score,
        "rank": 1,
        "tier": "Core",
        "actionType": "Config",
        "service": "AzureAD",
        "userImpact": "Low",
        "implementationCost": "Moderate",
        "actionUrl": f"https://security.microsoft.com/securescore?actionId={name}",
        "deprecated": False,
        "controlCategory": CATEGORY[name],
        "controlStateUpdates": [],
    }


def scores(controls: dict[str, tuple[float, float]]) -> dict[str, float | None]:
    return {name: score for name, (score, _) in controls.items()}


async def fill(url: str) -> None:
    engine: AsyncEngine = create_engine(DatabaseConfig(url=url))
    newest_a = {**INFRASTRUCTURE, **DATA, **APPS_A, **LATER}
    try:
        await store(
            engine,
            score_day(A, days_ago(2), scores({**INFRASTRUCTURE, **DATA, **APPS_A, **EARLIER})),
            score_day(A, days_ago(1), scores(newest_a)),
            score_day(B, days_ago(1), scores(APPS_B)),
            names=NAMES,
        )
        async with transaction(engine) as conn:
            for tenant, controls in ((A, newest_a), (B, APPS_B)):
                profiles = [normalize_profile(profile(tenant, n, m), FETCHED) for n, (_, m) in controls.items()]
                await save_control_profiles(conn, tenant, profiles)
    finally:
        await engine.dispose()


def reports(url: str, folder: Path) -> dict[str, str]:
    """Each report's output (its generation time taken out), by its arguments."""
    folder.mkdir()
    run_aside(fill(url))
    config = write_report_config(folder / "report.toml", url, list(NAMES.items()))
    wanted = [("--tenant", A, "--format", fmt) for fmt in ("csv", "json", "markdown", "table")] + [
        ("--actions", "--format", fmt) for fmt in ("csv", "json", "markdown", "table")
    ]
    wanted += [("--format", "csv")]
    outputs = {}
    for args in wanted:
        done = report(config, *args)
        assert done.exit_code == 0, done.output
        outputs[" ".join(args)] = re.sub(r"generated_at.*|Generated.*|20\d\d-\d\d-\d\d \d\d:\d\d UTC", "", done.output)
    return outputs


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_figures_round_half_up_and_ties_follow_control_name(
    kind: str, migrated_then: Callable[..., str], tmp_path: Path
) -> None:
    """31.375 is 31.38 (half up, after the float noise is taken off); a tie as shown is ordered by name."""
    out = reports(migrated_then(kind), tmp_path / kind)
    day = days_ago(1).isoformat()
    categories = out[f"--tenant {A} --format csv"].split("# categories")[1]
    assert f"{day},Data,5.02,16.0,31.38" in categories
    assert f"{day},Infrastructure,5.02,16.0,31.38" in categories
    actions = [line.split(",")[0] for line in out["--actions --format csv"].splitlines()]
    assert actions.index("a_whole") + 1 == actions.index("z_split")
    controls = [line.split(",")[0] for line in out[f"--tenant {A} --format csv"].split("# controls")[1].splitlines()]
    assert controls.index("a_up") + 1 == controls.index("b_up")


@pytest.mark.postgres
def test_sqlite_and_postgres_print_the_same_reports(migrated_then: Callable[..., str], tmp_path: Path) -> None:
    """The same data stored in each database: every format of the tenant, actions and portfolio reports."""
    lite = reports(migrated_then("sqlite"), tmp_path / "sqlite")
    postgres = reports(migrated_then("postgres"), tmp_path / "postgres")
    assert lite == postgres


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [
        (31.374999999999996, 2, "31.38"),  # 31.375 with float noise below
        (31.375000000000004, 2, "31.38"),
        (31.3749, 2, "31.37"),
        (0.125, 2, "0.13"),  # half up, where round() says 0.12
        (-0.125, 2, "-0.13"),  # away from zero
        (-0.001, 2, "0.00"),  # never -0.00
        (364.3799999999999, 2, "364.38"),
        (364.38000000000017, 2, "364.38"),
        (50.85, 1, "50.9"),  # 50.85 is 50.8499999999999943 in binary
        (1e20 / 3, 2, "33333333333333331968.00"),
    ],
)
def test_one_rounding_rule(value: float, digits: int, shown: str) -> None:
    assert format_figure(value, digits) == shown
    assert round_figure(value, digits) == float(shown)
