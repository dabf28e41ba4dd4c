"""Real peers on loopback for the alert tests: an aiohttp server standing in for Teams, Slack and a generic
webhook, and an aiosmtpd SMTP server that requires STARTTLS and a login.

The webhook peer answers each path from a script (200 by default; 429 with Retry-After, 500, or hanging
until the test ends) and records every request as received. The SMTP peer records every accepted message.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from fetcher.alerts.deliver import DeliveryPolicy
from fetcher.simulator.tls import server_ssl_context, write_server_tls

SMTP_USER = "alerts@example.test"
SMTP_PASSWORD = "smtp-password-Zq81"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookPeer:
    """Scripted answers per path: ("ok",), ("status", code, headers), ("hang",)."""

    base_url: str
    script: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def answer(self, path: str, *answers: tuple[Any, ...]) -> None:
        self.script.setdefault(path, []).extend(answers)

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        body = await request.read()
        self.received.append(Received(path, dict(request.headers), orjson.loads(body)))
        queue = self.script.get(path) or []
        answer = queue.pop(0) if queue else ("ok",)
        if answer[0] == "hang":
            await self.release.wait()
            return web.Response(status=200)
        if answer[0] == "status":
            return web.Response(
                status=answer[1],
                headers=answer[2] if len(answer) > 2 else {},
                text=answer[3] if len(answer) > 3 else "",
            )
        return web.Response(status=200, text="ok")


@pytest.fixture
async def webhook_peer() -> AsyncIterator[WebhookPeer]:
    app = web.Application()
    peer = WebhookPeer("")
    app.router.add_post("/hooks/{path}", peer.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    peer.base_url = f"http://127.0.0.1:{port}/hooks"
    yield peer
    peer.release.set()
    await runner.cleanup()


@dataclass
class SmtpPeer:
    host: str
    port: int
    ca_file: Path
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse_next: list[str] = field(default_factory=list)  # SMTP replies to give DATA instead of accepting

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        if self.refuse_next:
            return self.refuse_next.pop(0)
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)


@pytest.fixture
async def smtp_peer(tmp_path: Path) -> AsyncIterator[SmtpPeer]:
    """An SMTP submission server on loopback: STARTTLS required, then AUTH LOGIN/PLAIN required."""
    files = write_server_tls(tmp_path / "smtp-tls")
    context = server_ssl_context(files)
    peer = SmtpPeer("127.0.0.1", 0, files.ca_file)

    def factory() -> SMTP:
        return SMTP(
            peer,
            hostname="localhost",
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=peer.authenticate,
        )

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    yield peer
    server.close()
    await server.wait_closed()


@dataclass
class VirtualSleep:
    """Records the waits asked for instead of waiting."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def virtual_sleep() -> VirtualSleep:
    return VirtualSleep()


def policy(
    sleep: VirtualSleep, *, timeout: float = 5.0, max_attempts: int = 3, max_retry_wait: float = 60.0
) -> DeliveryPolicy:
    """Delivery with virtual waits, and the largest jitter (so backoffs are known)."""
    return DeliveryPolicy(timeout, max_attempts, max_retry_wait, sleep=sleep, uniform=lambda _low, high: high)
