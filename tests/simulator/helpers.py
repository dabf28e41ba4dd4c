"""Small clients for the simulator tests: raw token requests and Graph GETs over aiohttp, so a test
states the exact request it makes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from fetcher.simulator import RunningSimulator, Simulator, client_ssl_context, serving_simulator


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def secret_form(running: RunningSimulator, **overrides: str) -> dict[str, str]:
    """A client-secret token request body as azure-identity sends it."""
    sim = running.simulator
    form = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "grant_type": "client_credentials",
        "scope": running.scope,
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value != ""}


async def post_token(
    session: aiohttp.ClientSession, running: RunningSimulator, tenant_id: str, form: dict[str, str]
) -> Answer:
    async with session.post(running.token_url(tenant_id), data=form) as response:
        return Answer(response.status, dict(response.headers), await response.read())


async def access_token(session: aiohttp.ClientSession, running: RunningSimulator, tenant_id: str) -> str:
    answer = await post_token(session, running, tenant_id, secret_form(running))
    assert answer.status == 200, answer.body
    token: str = answer.json()["access_token"]
    return token


async def get(session: aiohttp.ClientSession, url: str, token: str | None = None, **headers: str) -> Answer:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with session.get(url, headers=headers) as response:
        return Answer(response.status, dict(response.headers), await response.read())


async def list_pages(session: aiohttp.ClientSession, url: str, token: str, *, limit: int = 50) -> list[Any]:
    """Follow @odata.nextLink from `url` until it ends (or `limit` pages); every page's JSON."""
    pages: list[Any] = []
    next_url: str | None = url
    while next_url is not None and len(pages) < limit:
        answer = await get(session, next_url, token)
        assert answer.status == 200, answer.body
        pages.append(answer.json())
        next_url = pages[-1].get("@odata.nextLink")
    return pages


@asynccontextmanager
async def serve(sim: Simulator, tls_dir: Path) -> AsyncIterator[tuple[RunningSimulator, aiohttp.ClientSession]]:
    """Serve a simulator configured unlike the fixture's, with a session that trusts it."""
    async with serving_simulator(sim, tls_dir=tls_dir) as running:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(running.ca_file))
        async with aiohttp.ClientSession(connector=connector) as session:
            yield running, session
