"""`[graph] proxy`: every request of a run, Entra ID's and Graph's, goes through the configured HTTP proxy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import Config, parse_config
from fetcher.errors import ConfigError
from fetcher.plan import plan_backfill
from fetcher.runner import Run
from fetcher.simulator import Simulator, generate_tenants, serving_simulator
from fetcher.store.schema import secure_scores
from tests.dbutil import count


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on loopback that records where each tunnel went."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@contextlib.asynccontextmanager
async def connect_proxy() -> AsyncIterator[ConnectProxy]:
    proxy = ConnectProxy()
    proxy.server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    try:
        yield proxy
    finally:
        proxy.server.close()


def config_for(origin: str, sim: Simulator, ca: Path, url: str, proxy: str) -> Config:
    return parse_config(
        {
            "database": {"url": url},
            "graph": {"base_url": f"{origin}/v1.0", "authority_host": origin, "ca_bundle": str(ca), "proxy": proxy},
            "auth": {"client_id": sim.client_id, "client_secret": "env:S"},
            "tenants": [{"tenant_id": t, "name": sim.tenants[t].name} for t in sim.tenants],
        },
        environ={"S": sim.client_secret},
    )


async def test_tokens_and_graph_requests_go_through_the_proxy(sqlite_engine: AsyncEngine) -> None:
    sim = Simulator(generate_tenants(3, seed=41), seed=41)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    async with serving_simulator(sim) as running, connect_proxy() as proxy:
        config = config_for(running.origin, sim, running.ca_file, url, proxy.url)
        report = await Run(
            config, "backfill", plan_backfill(config.enabled_tenants, 5, resume=False), engine=sqlite_engine
        ).execute()

    assert report.exit_code == 0
    assert await count(sqlite_engine, secure_scores) == 15
    assert proxy.tunnels, "no request went through the proxy"
    assert set(proxy.tunnels) == {running.origin.removeprefix("https://")}
    assert {r.endpoint for r in sim.requests} == {"token", "list"}


@pytest.mark.parametrize("proxy", ["proxy.example:3128", "ftp://proxy.example", "http://proxy.example/path"])
def test_a_proxy_that_is_not_an_http_url_is_refused(proxy: str) -> None:
    with pytest.raises(ConfigError, match=r"\[graph\] proxy must be an http"):
        parse_config({"graph": {"proxy": proxy}})


def test_a_proxy_password_is_never_shown() -> None:
    config = parse_config(
        {
            "graph": {"proxy": "env:P"},
            "auth": {"client_id": "00000000-0000-0000-0000-000000000001", "client_secret": "env:S"},
            "tenants": [{"tenant_id": "00000000-0000-0000-0000-000000000002"}],
        },
        environ={"P": "http://me:s3cret@proxy.example:3128", "S": "client-secret"},
    )

    assert config.graph.display_proxy == "http://me:***@proxy.example:3128"
    assert "s3cret" not in repr(config)
