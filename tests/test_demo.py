"""`fetcher demo`: it fills a database, writes a reading configuration, and its closing commands work as printed."""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shlex
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fetcher.demo import closing_counts, next_commands, scripted_failure_note, weakest_tenant, write_demo_config
from fetcher.store.reports import LatestScore
from fetcher.store.schema import secure_scores
from tests.test_runner import db_count

A = "aaaaaaaa-0000-0000-0000-000000000000"
B = "bbbbbbbb-0000-0000-0000-000000000000"
C = "cccccccc-0000-0000-0000-000000000000"


def latest(tenant_id: str, percent: float | None) -> LatestScore:
    fields = {name: None for name in LatestScore.__dataclass_fields__}
    return LatestScore(**{**fields, "tenant_id": tenant_id, "tenant_name": "x", "percent": percent})  # type: ignore[arg-type]


def test_the_weakest_tenant_is_the_lowest_percent_among_those_with_data() -> None:
    assert weakest_tenant([latest(A, 61.0), latest(B, None), latest(C, 40.5)]) == C
    assert weakest_tenant([latest(B, None)]) is None


def test_next_commands_name_the_configuration_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert next_commands(tmp_path / "fetcher-demo.toml", A) == [
        "  fetcher --config fetcher-demo.toml report",
        "  fetcher --config fetcher-demo.toml report --html demo.html",
        f"  fetcher --config fetcher-demo.toml report --tenant {A}",
    ]
    elsewhere = next_commands(Path("/elsewhere/my demo.toml"), None)
    assert elsewhere == [
        "  fetcher --config '/elsewhere/my demo.toml' report",
        "  fetcher --config '/elsewhere/my demo.toml' report --html demo.html",
    ]


def readme_quick_start() -> list[str]:
    """The commands the README's quick start runs after `fetcher demo` (comments dropped)."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("fetcher demo\n```", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("fetcher ")]


def fetcher(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fetcher", *args], capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )


def test_the_demo_ends_with_three_commands_that_work_as_printed(tmp_path: Path) -> None:
    """The README's quick start: `fetcher demo`, then the report and the HTML page it suggests."""
    done = fetcher("demo", "--tenants", "6", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert db_count(f"sqlite+aiosqlite:///{tmp_path / 'fetcher-demo.db'}", secure_scores) >= 4 * 90
    reading = (tmp_path / "fetcher-demo.toml").read_text(encoding="utf-8")
    assert "[database]" in reading
    assert "[auth]" not in reading  # the reading commands need no credential
    tries = done.stdout.split("Try next:\n", 1)[1].splitlines()
    assert len(tries) == 3
    assert readme_quick_start() == [line.strip() for line in tries[:2]]
    results = [fetcher(*shlex.split(line)[1:], cwd=tmp_path) for line in tries]
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    weakest = shlex.split(tries[2])[-1]
    assert weakest in results[2].stdout
    assert (tmp_path / "demo.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    # The closing `Tables:` line names the database's tables (it left out those the compact layout and the
    # zstd archive added), and only tables or views it holds.
    line = next(line for line in done.stdout.splitlines() if line.startswith("Tables:"))
    named = set(re.findall(r"[a-z]+(?:_[a-z]+)+|tenants|controls", line.partition("(see")[0]))
    with sqlite3.connect(tmp_path / "fetcher-demo.db") as db:
        held = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert named <= held, named - held
    new = {"control_score_rows", "tenant_keys", "day_keys", "control_keys", "status_texts", "archive_dictionaries"}
    assert new <= named, new - named

    # Six tenants include the one without admin consent (position 3): its failure is called scripted. The
    # configuration ends in an empty [alerts] (README: Alerts appends a rule), so `alerts` is not suggested
    # as if it ran as is.
    assert "The failure above is scripted (a tenant without admin consent)." in done.stdout
    # ... and the one with no score yet (position 4) is not counted as holding data, and is explained too.
    assert re.search(r"Done in [0-9.]+ s: 360 score-days stored for 4 of 6 tenants in ", done.stdout), done.stdout
    assert "The tenant with no score data (" in done.stdout
    assert "): scripted (a new tenant Graph has no score for yet)." in done.stdout
    assert "alerts --dry-run" not in done.stdout
    empty = fetcher("--config", "fetcher-demo.toml", "alerts", "--dry-run", cwd=tmp_path)
    assert "no [[alerts.rules]]" in empty.stderr


def test_the_demo_configuration_is_mode_600_and_never_overwritten(tmp_path: Path) -> None:
    """The README's alert example appends a literal webhook URL to it: at 0644 every `alerts` then warned that
    the file is readable by its group and others."""
    path = tmp_path / "fetcher-demo.toml"

    first = write_demo_config(path, tmp_path / "fetcher-demo.db", [(A, "Contoso")])
    path.write_text(path.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    second = write_demo_config(path, tmp_path / "fetcher-demo.db", [(B, "Fabrikam")])

    assert (first, second, stat.S_IMODE(path.stat().st_mode)) == (True, False, 0o600)
    assert path.read_text(encoding="utf-8").endswith("[alerts]\n# mine\n")


def test_the_demo_calls_a_failure_scripted_only_when_it_is_the_unconsented_tenants() -> None:
    assert scripted_failure_note(set(), {"c"}) == ""  # `--tenants 3`: nobody lacks consent, nobody failed
    assert scripted_failure_note(set(), set()) == ""
    assert "scripted (a tenant without admin consent)" in scripted_failure_note({"c"}, {"c"})
    assert scripted_failure_note({"c", "other"}, {"c"}) == ""  # another failure is not the script's


def test_the_closing_counts_are_of_tenants_with_data_and_explain_those_without() -> None:
    """ "24 of 25 tenants" counted a tenant that stored no day (the simulator's new tenant) as stored."""
    rows = [dated(A), latest(B, None), latest(C, None)]  # B failed (no consent), C holds no score yet

    assert closing_counts(rows, failed={B}, empty={C}) == (
        1,
        " The tenant with no score data (x): scripted (a new tenant Graph has no score for yet).",
    )
    assert closing_counts(rows, failed={B}, empty=set())[1] == (
        " The tenant with no score data (x): Graph answered with no score."
    )
    assert closing_counts(rows[:1], failed=set(), empty={C}) == (1, "")


def dated(tenant_id: str) -> LatestScore:
    return dataclasses.replace(latest(tenant_id, 50.0), score_date=datetime.date(2026, 11, 30))


def test_the_demo_writes_its_configuration_when_standard_output_is_gone(tmp_path: Path) -> None:
    """`fetcher demo | true` stored the database but not `x.toml` (printing stopped before it was written)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fetcher", "demo", "--tenants", "2", "--database", str(tmp_path / "dr.db")],
            stdout=writer,
            stderr=subprocess.DEVNULL,
            timeout=300,
            check=False,
            cwd=tmp_path,
        )
    finally:
        os.close(writer)

    assert (done.returncode, (tmp_path / "dr.db").exists()) == (141, True)
    assert f"sqlite+aiosqlite:///{tmp_path / 'dr.db'}" in (tmp_path / "dr.toml").read_text(encoding="utf-8")
