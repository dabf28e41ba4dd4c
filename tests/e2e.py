"""End-to-end helpers: a simulator on loopback, a configuration pointing at it, `fetcher` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from fetcher.cli import main
from fetcher.simulator import RunningSimulator, SimTenant, Simulator, running_simulator

FAST_FETCH = {"concurrency": 8, "max_attempts": 3, "max_retry_wait_seconds": 30}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def toml_table(name: str, values: Mapping[str, Any]) -> list[str]:
    return [f"[{name}]", *(f"{k} = {toml_value(v)}" for k, v in values.items()), ""]


@dataclass
class World:
    """A running simulator and a configuration file for it."""

    sim: Simulator
    running: RunningSimulator
    config: Path
    database_url: str

    def write_config(
        self,
        *,
        tenants: Sequence[str] | None = None,
        fetch: Mapping[str, Any] | None = None,
        tenant_auth: Mapping[str, Mapping[str, Any]] | None = None,
        database: Mapping[str, Any] | None = None,
        graph: Mapping[str, Any] | None = None,
    ) -> Path:
        chosen = list(tenants) if tenants is not None else list(self.sim.tenants)
        lines = toml_table("database", {"url": self.database_url, **(database or {})})
        lines += toml_table(
            "graph",
            {
                "base_url": self.running.graph_base_url,
                "authority_host": self.running.authority_host,
                "ca_bundle": str(self.running.ca_file),
                "timeout_seconds": 10,
                **(graph or {}),
            },
        )
        lines += toml_table("fetch", {**FAST_FETCH, **(fetch or {})})
        lines += toml_table(
            "auth", {"method": "client_secret", "client_id": self.sim.client_id, "client_secret": "env:SIM_SECRET"}
        )
        for tenant_id in chosen:
            lines += [
                "[[tenants]]",
                f"tenant_id = {toml_value(tenant_id)}",
                f"name = {toml_value(self.sim.tenants[tenant_id].name)}",
                "",
            ]
            if tenant_auth and tenant_id in tenant_auth:
                lines += toml_table("tenants.auth", tenant_auth[tenant_id])
        self.config.write_text("\n".join(lines), encoding="utf-8")
        return self.config

    def env(self) -> dict[str, str]:
        return {**os.environ, "SIM_SECRET": self.sim.client_secret, "COLUMNS": "200"}

    def fetcher(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run `fetcher --config CONFIG ARGS` to completion."""
        return subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def invoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `fetcher --config CONFIG ARGS` in this process (click's runner), with the environment `fetcher`
        gives a child: for commands that only read the database and print (status, report, metrics), where what
        they print is under test, not a process of their own. A `fetcher` child imports the package first
        (about 1 CPU s, several s of wall on a loaded 2-core machine): `fetcher` is the right call otherwise."""
        argv = ["--config", str(self.config), *args]
        done = CliRunner().invoke(
            main, argv, env={"SIM_SECRET": self.sim.client_secret, "COLUMNS": "200"}, catch_exceptions=False
        )
        return subprocess.CompletedProcess(["fetcher", *argv], done.exit_code, done.stdout, done.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `fetcher --config CONFIG ARGS` and return at once."""
        return subprocess.Popen(
            [sys.executable, "-m", "fetcher", "--config", str(self.config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )


@contextmanager
def world(tmp_path: Path, database_url: str, tenants: Sequence[SimTenant], **sim_options: Any) -> Iterator[World]:
    sim = Simulator(tenants, **sim_options)
    with running_simulator(sim, tls_dir=tmp_path / "tls") as running:
        w = World(sim, running, tmp_path / "fetcher.toml", database_url)
        w.write_config()
        yield w
