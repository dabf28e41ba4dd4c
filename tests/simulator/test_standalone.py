"""`fetcher simulate`'s engine: serves until Ctrl-C, announcing where it is and writing a config."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fetcher.simulator.consent import CONSENT_STATES

SCRIPT = (
    "from pathlib import Path; from fetcher.simulator import run_standalone; "
    "run_standalone(tenants=3, port=0, seed=2, latency_ms=0, out_dir=Path({out!r}))"
)


def _interrupt(process: subprocess.Popen[str]) -> str:
    """Ctrl-C to the simulator and the rest of what it printed; one that has not stopped 10 s later is killed
    (not left serving after the test) and the test fails."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def test_standalone_announces_writes_config_and_stops_on_interrupt(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(out=str(tmp_path))], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Run:"):
            break
    try:
        discovered = subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(tmp_path / "fetcher.toml"), "tenants", "discover",
             "--dry-run", "--format", "json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        rest = _interrupt(process)
    config = tomllib.loads((tmp_path / "fetcher.toml").read_text())
    announced = "".join(lines)
    assert config["graph"]["base_url"] in announced
    assert config["graph"]["ca_bundle"] in announced
    assert (config["tenants_source"], "tenants" in config) == ("partner", False)
    assert "Simulating 3 customer tenants and their partner" in announced
    assert discovered.returncode == 0, discovered.stderr
    found = json.loads(discovered.stdout)
    assert (found["counts"]["added"], found["skipped"]) == (3, {"mlt": 1})
    assert "Simulator stopped." in rest
    assert process.returncode == 0


def test_consent_states_adds_a_customer_in_each_state_the_check_tells_apart(tmp_path: Path) -> None:
    script = SCRIPT.format(out=str(tmp_path)).replace("out_dir=", "consent_states=True, out_dir=")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    announced = []
    for line in process.stdout:
        announced.append(line)
        if line.startswith("Run:"):
            break
    try:
        checked = subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(tmp_path / "fetcher.toml"), "tenants", "check",
             "--format", "json"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        _interrupt(process)

    assert checked.returncode == 1, checked.stderr
    states = {row["name"]: row["state"] for row in json.loads(checked.stdout)}
    by_scenario = {name.partition(": ")[0]: state for name, state in states.items() if ": " in name}
    assert by_scenario == CONSENT_STATES
    assert sorted(state for name, state in states.items() if ": " not in name) == ["ok"] * 3
    assert f"Check: fetcher --config {tmp_path / 'fetcher.toml'} tenants check\n" in announced


def test_a_fault_option_scripts_every_customer_and_is_announced(tmp_path: Path) -> None:
    """`fetcher simulate --fault partial:*:0.5`: half of each customer's secureScores answers are 206 Partial
    Content with a Warning, which the run flags (the faults were reachable only from Python)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fetcher", "simulate", "--tenants", "2", "--port", "0", "--seed", "2", "--dir",
         str(tmp_path), "--fault", "partial:*:0.5"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    announced = []
    for line in process.stdout:
        announced.append(line)
        if line.startswith("Run:"):
            break
    try:
        ran = subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(tmp_path / "fetcher.toml"), "--log-format", "json",
             "run"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    finally:
        _interrupt(process)

    assert "  fault:          partial on every customer, 50 % of its requests\n" in announced
    assert ran.returncode == 0, ran.stderr
    assert "run partial: 2/2 tenants stored" in ran.stderr


def test_a_fault_on_a_tenant_the_simulator_does_not_hold_is_one_line_and_exit_2(tmp_path: Path) -> None:
    unknown = "0b7c1e2a-1111-4222-8333-444455556666"
    result = subprocess.run(
        [sys.executable, "-m", "fetcher", "simulate", "--port", "0", "--dir", str(tmp_path), "--fault",
         f"throttle:{unknown}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --fault: no customer tenant {unknown} in this simulator (seed 7)"
    assert not (tmp_path / "fetcher.toml").exists()


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (
            "bogus",
            "'bogus': KIND must be one of throttle, unavailable, partial, empty_partial, bad_json, type_change, "
            "not 'bogus'",
        ),
        ("throttle:*:0", "'throttle:*:0': RATE must be above 0 and at most 1, not 0"),
        ("throttle:nope", "'throttle:nope': TENANT must be a tenant id (a GUID) or *, not 'nope'"),
    ],
)
def test_a_malformed_fault_option_is_one_line_and_exit_2(tmp_path: Path, given: str, why: str) -> None:
    """It was click's usage text and `Error: ...` over four lines; the README says one line."""
    result = subprocess.run(
        [sys.executable, "-m", "fetcher", "simulate", "--port", "0", "--dir", str(tmp_path), "--fault", given],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert (result.returncode, result.stderr) == (2, f"error: --fault: {why}\n")
    assert not (tmp_path / "fetcher.toml").exists()
