"""Serving a Simulator over HTTPS on loopback: in the running event loop (`serving_simulator`) or in a
background thread with its own loop (`running_simulator`), and what both hand back (`RunningSimulator`)."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from fetcher.simulator.configfile import render_config, write_secret_file
from fetcher.simulator.simulator import Simulator
from fetcher.simulator.tls import server_ssl_context, write_server_tls

HOST = "127.0.0.1"
# Handlers still sleeping in a scripted hang are cancelled after this long when the server stops.
_SHUTDOWN_SECONDS = 0.5


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator that is listening, and how to reach it."""

    simulator: Simulator
    port: int
    ca_file: Path  # PEM of the CA that signed the server certificate

    @property
    def origin(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def graph_base_url(self) -> str:
        return f"{self.origin}/v1.0"

    @property
    def authority_host(self) -> str:
        """What azure-identity takes as `authority`."""
        return self.origin

    @property
    def scope(self) -> str:
        return f"{self.origin}/.default"

    def token_url(self, tenant_id: str) -> str:
        return f"{self.origin}/{tenant_id}/oauth2/v2.0/token"

    def write_config(
        self,
        path: Path,
        *,
        database_url: str,
        tenants: Sequence[str] | None = None,
        extra: str = "",
        partner_tenant_id: str | None = None,
    ) -> Path:
        """Write a ready fetcher.toml for this simulator (all its tenants unless `tenants` names some; with
        `partner_tenant_id`, none: they are discovered at that partner tenant).

        The client secret goes into `<name>.client-secret` beside it, referenced as `file:`.
        """
        sim = self.simulator
        chosen = (
            [sim.tenants[tenant_id.lower()] for tenant_id in tenants]
            if tenants is not None
            else list(sim.tenants.values())
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        secret_reference = write_secret_file(path.with_suffix(".client-secret"), sim.client_secret)
        text = render_config(
            database_url=database_url,
            graph_base_url=self.graph_base_url,
            authority_host=self.authority_host,
            ca_file=self.ca_file,
            client_id=sim.client_id,
            client_secret_reference=secret_reference,
            tenants=[] if partner_tenant_id else [(tenant.tenant_id, tenant.name) for tenant in chosen],
            extra=extra,
            partner_tenant_id=partner_tenant_id,
        )
        path.write_text(text, encoding="utf-8")
        return path


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    return sock


@contextmanager
def _tls_directory(tls_dir: Path | None) -> Iterator[Path]:
    if tls_dir is not None:
        yield tls_dir
        return
    with tempfile.TemporaryDirectory(prefix="securescore-sim-tls-") as temporary:
        yield Path(temporary)


@asynccontextmanager
async def serving_simulator(
    sim: Simulator, *, port: int = 0, tls_dir: Path | None = None
) -> AsyncIterator[RunningSimulator]:
    """Serve `sim` in the running event loop; listening when this enters, stopped when it exits."""
    with _tls_directory(tls_dir) as directory:
        files = write_server_tls(directory)
        runner = web.AppRunner(
            sim.make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        await runner.setup()
        try:
            sock = _listening_socket(port)
            site = web.SockSite(runner, sock, ssl_context=server_ssl_context(files))
            await site.start()
            yield RunningSimulator(sim, sock.getsockname()[1], files.ca_file)
        finally:
            await runner.cleanup()


_Started = Future[tuple[RunningSimulator, asyncio.AbstractEventLoop, asyncio.Event]]


def _serve_in_thread(sim: Simulator, port: int, tls_dir: Path | None, started: _Started) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with serving_simulator(sim, port=port, tls_dir=tls_dir) as running:
                started.set_result((running, asyncio.get_running_loop(), stop))
                await stop.wait()
        except BaseException as error:
            if not started.done():
                started.set_exception(error)
                return
            raise

    asyncio.run(main())


@contextmanager
def running_simulator(sim: Simulator, *, port: int = 0, tls_dir: Path | None = None) -> Iterator[RunningSimulator]:
    """Serve `sim` from a background thread with its own event loop; listening when this enters, stopped
    (thread joined) when it exits. For synchronous callers, and for clients that must not share the
    server's loop."""
    started: _Started = Future()
    thread = threading.Thread(
        target=_serve_in_thread, args=(sim, port, tls_dir, started), name="securescore-simulator", daemon=True
    )
    thread.start()
    try:
        running, loop, stop = started.result()
    except BaseException:
        thread.join()
        raise
    try:
        yield running
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
