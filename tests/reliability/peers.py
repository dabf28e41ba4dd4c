"""Small hostile peers on loopback, for what the simulator does not play: a token endpoint that trickles,
floods, inflates or answers without a token. Each is an aiohttp app served over HTTPS with a certificate
from the simulator's CA (so the rig's `ca_bundle` trusts it), in a thread with its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiohttp import web

from fetcher.simulator.tls import server_ssl_context, write_server_tls

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MB = 1024 * 1024


@dataclass
class Peer:
    """A running peer: its origin, and how many token requests it received."""

    origin: str
    requests: list[str] = field(default_factory=list)


@contextmanager
def token_endpoint(tls_dir: Path, handler: Handler) -> Iterator[Peer]:
    """Serve `handler` at `POST /{tenant}/oauth2/v2.0/token` over HTTPS on 127.0.0.1."""
    started: Future[tuple[Peer, asyncio.AbstractEventLoop, asyncio.Event]] = Future()

    async def main() -> None:
        peer = Peer("")

        async def counted(request: web.Request) -> web.StreamResponse:
            peer.requests.append(request.match_info["tenant"])
            return await handler(request)

        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", counted)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(write_server_tls(tls_dir)))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        peer.origin = f"https://127.0.0.1:{port}"
        stop = asyncio.Event()
        started.set_result((peer, asyncio.get_running_loop(), stop))
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="hostile-entra", daemon=True)
    thread.start()
    peer, loop, stop = started.result(timeout=30)
    try:
        yield peer
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)


# ------------------------------------------------------------------------------------------ behaviours


async def trickle(request: web.Request) -> web.StreamResponse:
    """A 200 whose JSON body comes one byte a second and never ends (until the client gives up)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client hung up, as it should
        while True:
            await response.write(b" ")
            await asyncio.sleep(1)
    return response


def flood(megabytes: int) -> Handler:
    """A 200 of `megabytes` MB, chunked (no Content-Length to refuse it by)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"padding":"')
        block = b"x" * MB
        for _ in range(megabytes):
            await response.write(block)
        await response.write(b'"}')
        return response

    return handler


def gzip_bomb(inflated_megabytes: int) -> Handler:
    """A small gzip body (about a thousandth of its size) that inflates to `inflated_megabytes` MB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * MB
    body = b"".join(compressor.compress(block) for _ in range(inflated_megabytes)) + compressor.flush()

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, status=200
        )

    return handler


def json_answer(status: int, content: object, headers: dict[str, str] | None = None) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=orjson.dumps(content), status=status, headers={"Content-Type": "application/json", **(headers or {})}
        )

    return handler
