"""Another checkout's fetcher as the harness runs it: its script, its bytecode, and a configuration it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness import OWN_FETCHER, PYTHON, BenchmarkError, Fetcher, SimServer, fetcher_argv

INFO = {
    "tenants_file": "/sim/tenants.csv",
    "graph_base_url": "https://127.0.0.1:1/v1.0",
    "origin": "https://127.0.0.1:1",
    "ca_file": "/sim/ca.pem",
    "client_id": "app",
    "client_secret_file": "/sim/secret",
}


def _checkout(root: Path, example: str) -> Path:
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "fetcher").write_text("#!/bin/sh\n", encoding="utf-8")
    (root / "fetcher").mkdir()
    (root / "fetcher" / "cli.py").write_text("VALUE = 1\n", encoding="utf-8")
    (root / "config.example.toml").write_text(example, encoding="utf-8")
    return root


def test_this_checkouts_fetcher_is_run_as_a_module() -> None:
    assert fetcher_argv(Path("f.toml"), "run") == [PYTHON, "-m", "fetcher", "--config", "f.toml", "-q", "run"]


def test_an_older_checkout_runs_its_own_script_compiled_and_without_the_profiles_key(tmp_path: Path) -> None:
    fetcher = Fetcher.of_checkout(_checkout(tmp_path, "[fetch]\nconcurrency = 16\n"))
    script = str(tmp_path / ".venv" / "bin" / "fetcher")
    assert fetcher == Fetcher((script,), profiles_key=False)
    assert fetcher_argv(Path("f.toml"), "run", fetcher=fetcher) == [script, "--config", "f.toml", "-q", "run"]
    assert list((tmp_path / "fetcher" / "__pycache__").glob("cli.*.pyc"))


def test_a_checkout_that_knows_control_profiles_keeps_the_key(tmp_path: Path) -> None:
    assert Fetcher.of_checkout(_checkout(tmp_path, "control_profiles = true\n")).profiles_key
    assert OWN_FETCHER.profiles_key


def test_a_checkout_without_its_virtualenv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="virtualenv"):
        Fetcher.of_checkout(tmp_path)


@pytest.mark.parametrize(("profiles", "line"), [(False, "control_profiles = false"), (True, "control_profiles = true")])
def test_the_configuration_says_whether_profiles_are_fetched(tmp_path: Path, profiles: bool, line: str) -> None:
    sim = SimServer(tmp_path, tenants=1, info=INFO)
    text = sim.write_config(tmp_path / "f.toml", database_url="sqlite://", control_profiles=profiles).read_text()
    assert line in text.splitlines()


def test_an_older_fetchers_configuration_leaves_the_profiles_key_out(tmp_path: Path) -> None:
    sim = SimServer(tmp_path, tenants=1, info=INFO)
    text = sim.write_config(tmp_path / "f.toml", database_url="sqlite://", control_profiles=None).read_text()
    assert "control_profiles" not in text
    assert "history_days = 90" in text.splitlines()
