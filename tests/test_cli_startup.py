"""Start-up of the command line: what each command imports, and which commands tune the garbage collector
and malloc.

Each probe runs `fetcher` in a fresh interpreter (imports, the collector and malloc are per process) and
reports, through a JSON file, the modules loaded, the collector's settings when the command ended and, on
glibc, whether a 2 MB block is mapped on its own after an 8 MB one was freed (tests/test_heap.py).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import invoke, write_config
from tests.test_heap import GLIBC, GLIBC_PRELUDE, LARGE_BLOCK_MAPPED

# Read sys.argv as the console script does; what the command left behind goes to $PROBE_OUT.
PROBE = (
    GLIBC_PRELUDE
    + LARGE_BLOCK_MAPPED
    + """
import gc, json, os, sys
from fetcher.cli import main
try:
    main()
except SystemExit as stop:
    code = stop.code
modules = sorted(sys.modules)
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump({"code": code, "modules": modules, "threshold": gc.get_threshold(),
               "frozen": gc.get_freeze_count(), "mapped": large_block_mapped()}, out)
"""
)
HEAVY = ("sqlalchemy", "aiohttp", "azure.identity", "alembic", "fetcher.simulator", "fetcher.report.html")
# Reading the database needs no HTTP, no credentials, no simulator; the HTML page only with --html.
ONLY_FOR_THEIR_COMMANDS = ("aiohttp", "azure.identity", "fetcher.simulator", "fetcher.report.html")


def probe(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "probe.json"
    env = {**os.environ, "PROBE_OUT": str(out), "COLUMNS": "200"}
    env.pop("FETCHER_CONFIG", None)
    subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=tmp_path, env=env, capture_output=True, check=False, timeout=120
    )
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def loaded(result: dict[str, Any], package: str) -> list[str]:
    return [name for name in result["modules"] if name == package or name.startswith(f"{package}.")]


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    """A configuration whose SQLite database exists at the current schema."""
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{(tmp_path / "scores.db").as_posix()}"')
    assert invoke("--config", str(config), "migrate").exit_code == 0
    return config


def test_help_imports_no_database_http_auth_simulator_or_html_code(tmp_path: Path) -> None:
    result = probe(tmp_path, "--help")

    assert result["code"] == 0
    assert {package: loaded(result, package) for package in HEAVY} == {package: [] for package in HEAVY}


@pytest.mark.parametrize("args", [("status",), ("report",)], ids=" ".join)
def test_reading_commands_import_no_http_auth_simulator_or_html_code(migrated: Path, args: tuple[str, ...]) -> None:
    result = probe(migrated.parent, "--config", str(migrated), *args)

    assert result["code"] in (0, 1)  # 1: the tenant has no data yet, which `status` calls stale
    assert loaded(result, "sqlalchemy")  # the probe did reach the database
    assert {p: loaded(result, p) for p in ONLY_FOR_THEIR_COMMANDS} == {p: [] for p in ONLY_FOR_THEIR_COMMANDS}


@pytest.mark.parametrize("args", [("status",), ("report",), ("metrics",)], ids=" ".join)
def test_commands_on_a_current_database_import_no_alembic(migrated: Path, args: tuple[str, ...]) -> None:
    """The schema check on a database at the head reads its revision with plain SQL: Alembic is for migrating."""
    result = probe(migrated.parent, "--config", str(migrated), *args)

    assert result["code"] in (0, 1)
    assert loaded(result, "sqlalchemy")
    assert loaded(result, "alembic") == []


def test_migrate_imports_alembic(tmp_path: Path) -> None:
    """The probe can see Alembic: a command that migrates loads it."""
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{(tmp_path / "new.db").as_posix()}"')

    result = probe(tmp_path, "--config", str(config), "migrate")

    assert result["code"] == 0
    assert loaded(result, "alembic")


def test_report_html_imports_the_html_page(migrated: Path) -> None:
    result = probe(migrated.parent, "--config", str(migrated), "report", "--html", "page.html")

    assert result["code"] == 0
    assert loaded(result, "fetcher.report.html")


@pytest.mark.parametrize(
    ("args", "tuned"),
    [
        (("run",), True),
        (("backfill",), True),
        (("rebuild",), True),
        (("--help",), False),
        (("status",), False),
        (("report",), False),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_only_run_backfill_and_rebuild_freeze_the_collector_and_tune_malloc(
    tmp_path: Path, args: tuple[str, ...], tuned: bool
) -> None:
    """With no configuration every command stops at exit 2, after the tuning when it has any."""
    result = probe(tmp_path, "--config", str(tmp_path / "missing.toml"), *args)

    assert result["code"] == (0 if args == ("--help",) else 2)
    assert result["frozen"] > 0 if tuned else result["frozen"] == 0
    assert result["mapped"] == (tuned if GLIBC else None)


@pytest.mark.parametrize("args", [("--help",), ("status",), ("run",)], ids=" ".join)
def test_every_command_collects_cycles_every_100_000_allocations(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A command's imports, in its body, run with the collector's first threshold raised (`hold_collections`)."""
    result = probe(tmp_path, "--config", str(tmp_path / "missing.toml"), *args)

    assert result["threshold"] == [100_000, 50, 100]


# Count the collections that run while `fetcher.cli` is imported, as the console script imports it.
IMPORT_PROBE = """
import gc, json
started = []
gc.callbacks.append(lambda phase, info: started.append(phase) if phase == "start" else None)
import fetcher.cli
print(json.dumps({"collections": len(started), "enabled": gc.isenabled(), "threshold": gc.get_threshold()}))
"""


def test_importing_the_command_line_collects_at_most_once_and_leaves_the_collector_as_it_was() -> None:
    """The import holds the collector off (18 collections without it) and turns it back on as it ends: the one
    collection left is the import's allocations, counted all the same, collected once as the import returns."""
    ran = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, check=True, timeout=120, text=True)
    result = json.loads(ran.stdout)

    assert result["collections"] <= 1
    assert (result["enabled"], result["threshold"]) == (True, [700, 10, 10])


def test_a_run_invoked_inside_another_process_leaves_its_collector_alone(tmp_path: Path) -> None:
    """Tests invoke commands in their own process: the collector there stays as pytest had it."""
    before = (gc.get_threshold(), gc.get_freeze_count())

    result = invoke("--config", str(tmp_path / "missing.toml"), "run")

    assert result.exit_code == 2
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
