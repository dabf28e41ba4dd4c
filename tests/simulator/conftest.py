"""Fixtures for the simulator tests: a small simulator served over HTTPS in the test's loop, and a
client session that trusts its CA."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fetcher.simulator import (
    RunningSimulator,
    SimTenant,
    Simulator,
    client_ssl_context,
    generate_tenants,
    serving_simulator,
)

NEWEST = datetime.date(2026, 11, 27)
SEED = 11


@pytest.fixture
def tenants() -> list[SimTenant]:
    return generate_tenants(3, seed=SEED)


@pytest.fixture
def tenant(tenants: list[SimTenant]) -> SimTenant:
    return tenants[0]


@pytest.fixture
def sim(tenants: list[SimTenant]) -> Simulator:
    # Fewer controls than real tenants keep pages small and the suite fast; tests of the payload use 230.
    return Simulator(tenants, seed=SEED, newest_day=NEWEST, controls_per_day=40)


@pytest.fixture
async def running(sim: Simulator, tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    async with serving_simulator(sim, tls_dir=tmp_path / "tls") as served:
        yield served


@pytest.fixture
async def session(running: RunningSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(running.ca_file))
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client
