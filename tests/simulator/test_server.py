"""Serving: a background-thread server for synchronous callers, clean stops, and a ready config file."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import aiohttp
import pytest

from fetcher.config import load_config
from fetcher.simulator import (
    RunningSimulator,
    SimTenant,
    Simulator,
    client_ssl_context,
    running_simulator,
    serving_simulator,
)
from tests.simulator.conftest import NEWEST, SEED
from tests.simulator.helpers import access_token, get


def _port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_thread_server_answers_a_client_in_another_loop(tenants: list[SimTenant]) -> None:
    sim = Simulator(tenants, seed=SEED, newest_day=NEWEST, controls_per_day=10)
    with running_simulator(sim) as running:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(running.ca_file))
        async with aiohttp.ClientSession(connector=connector) as session:
            token = await access_token(session, running, tenants[0].tenant_id)
            answer = await get(session, f"{running.graph_base_url}/security/secureScores?$top=2", token)
    assert answer.status == 200
    assert _port_is_closed(running.port)


def test_thread_server_stops_and_removes_its_temporary_tls_files(tenants: list[SimTenant]) -> None:
    with running_simulator(Simulator(tenants)) as running:
        assert running.ca_file.exists()
    assert not running.ca_file.exists()
    assert _port_is_closed(running.port)


def test_thread_server_reports_a_port_already_taken(tenants: list[SimTenant]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"), running_simulator(Simulator(tenants), port=taken.getsockname()[1]):
            pass


async def test_urls_name_the_listening_origin(running: RunningSimulator) -> None:
    assert running.origin == f"https://127.0.0.1:{running.port}"
    assert (running.graph_base_url, running.authority_host, running.scope) == (
        f"{running.origin}/v1.0",
        running.origin,
        f"{running.origin}/.default",
    )


async def test_written_config_points_at_the_simulator(
    running: RunningSimulator, tenants: list[SimTenant], tmp_path: Path
) -> None:
    path = running.write_config(tmp_path / "fetcher.toml", database_url="sqlite+aiosqlite:///scores.db")
    config = tomllib.loads(path.read_text())
    sim = running.simulator
    assert config["database"] == {"url": "sqlite+aiosqlite:///scores.db"}
    assert config["graph"] == {
        "base_url": running.graph_base_url,
        "authority_host": running.authority_host,
        "ca_bundle": str(running.ca_file.resolve()),
        "timeout_seconds": 30,
    }
    assert config["auth"]["client_id"] == sim.client_id
    assert config["tenants"] == [{"tenant_id": t.tenant_id, "name": t.name} for t in tenants]


async def test_written_config_keeps_the_secret_in_a_private_file(running: RunningSimulator, tmp_path: Path) -> None:
    path = running.write_config(tmp_path / "fetcher.toml", database_url="sqlite:///x.db")
    reference = tomllib.loads(path.read_text())["auth"]["client_secret"]
    secret_file = Path(reference.removeprefix("file:"))
    assert reference.startswith("file:")
    assert secret_file.read_text().strip() == running.simulator.client_secret
    assert secret_file.stat().st_mode & 0o077 == 0
    assert running.simulator.client_secret not in path.read_text()


async def test_written_config_loads_cleanly_with_the_projects_loader(running: RunningSimulator, tmp_path: Path) -> None:
    path = running.write_config(tmp_path / "fetcher.toml", database_url="sqlite+aiosqlite:///scores.db")
    config = load_config(path, environ={})
    assert config.warnings == ()
    assert (config.graph.base_url, config.graph.scope) == (running.graph_base_url, running.scope)
    secrets = {tenant.auth.client_secret.value for tenant in config.tenants if tenant.auth.client_secret}
    assert secrets == {running.simulator.client_secret}


async def test_config_can_name_some_tenants_and_take_extra_text(
    running: RunningSimulator, tenants: list[SimTenant], tmp_path: Path
) -> None:
    path = running.write_config(
        tmp_path / "fetcher.toml", database_url="sqlite:///x.db", tenants=[tenants[1].tenant_id],
        extra='[report]\nformat = "json"',
    )  # fmt: skip
    config = tomllib.loads(path.read_text())
    assert [t["tenant_id"] for t in config["tenants"]] == [tenants[1].tenant_id]
    assert config["report"] == {"format": "json"}


async def test_config_escapes_names_safely(tmp_path: Path) -> None:
    odd = SimTenant(tenant_id="4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f", name='Margie\'s "Travel" \\ Co\n')
    async with serving_simulator(Simulator([odd]), tls_dir=tmp_path / "tls") as running:
        path = running.write_config(tmp_path / "fetcher.toml", database_url="sqlite:///x.db")
    assert tomllib.loads(path.read_text())["tenants"][0]["name"] == odd.name
