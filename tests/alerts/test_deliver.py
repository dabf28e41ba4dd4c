"""Delivery against real peers on loopback: an aiohttp webhook server and an aiosmtpd server with STARTTLS
and login. Waits are virtual (recorded, not slept)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP

from fetcher.alerts import render
from fetcher.alerts.deliver import Sender, smtp_refusal
from fetcher.alerts.model import ChannelType, RuleKind
from tests.alerts.conftest import SMTP_PASSWORD, SMTP_USER, SmtpPeer, VirtualSleep, WebhookPeer, policy
from tests.alerts.samples import email_channel, notice, webhook_channel


async def send(peer_url: str, kind: ChannelType, sleep: VirtualSleep, **limits: float) -> tuple[int, str | None]:
    channel = webhook_channel("ops", kind, peer_url)
    async with aiohttp.ClientSession() as session:
        result = await Sender(session, policy(sleep, **limits)).send(channel, notice())  # type: ignore[arg-type]
    return result.attempts, result.error


@pytest.mark.parametrize(
    ("kind", "document"),
    [
        (ChannelType.TEAMS, render.teams_payload(notice())),
        (ChannelType.SLACK, render.slack_payload(notice())),
        (ChannelType.WEBHOOK, render.webhook_document(notice())),
    ],
)
async def test_webhook_peer_receives_the_whole_document(
    webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep, kind: ChannelType, document: object
) -> None:
    assert await send(webhook_peer.url("ok"), kind, virtual_sleep) == (1, None)
    assert webhook_peer.bodies("ok") == [document]
    assert webhook_peer.received[0].headers["Content-Type"] == "application/json"


async def test_429_is_retried_after_the_peers_retry_after(
    webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    webhook_peer.answer("busy", ("status", 429, {"Retry-After": "7"}))
    assert await send(webhook_peer.url("busy"), ChannelType.SLACK, virtual_sleep) == (2, None)
    assert virtual_sleep.waits == [7.0]
    assert len(webhook_peer.bodies("busy")) == 2


async def test_500_is_retried_with_backoff_then_reported(
    webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    webhook_peer.answer("down", *[("status", 500)] * 3)
    assert await send(webhook_peer.url("down"), ChannelType.TEAMS, virtual_sleep) == (3, "channel ops: HTTP 500")
    assert virtual_sleep.waits == [1.0, 2.0]


async def test_retry_after_beyond_the_limit_gives_up_at_once(
    webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    webhook_peer.answer("slow", ("status", 503, {"Retry-After": "3600"}))
    assert await send(webhook_peer.url("slow"), ChannelType.WEBHOOK, virtual_sleep) == (1, "channel ops: HTTP 503")
    assert virtual_sleep.waits == []


async def test_a_client_error_is_not_retried_and_names_slacks_code(
    webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    webhook_peer.answer("gone", ("status", 404, {}, "no_service"))
    assert await send(webhook_peer.url("gone"), ChannelType.SLACK, virtual_sleep) == (
        1,
        "channel ops: HTTP 404 (no_service)",
    )


async def test_a_hanging_peer_times_out_on_every_attempt(
    webhook_peer: WebhookPeer, virtual_sleep: VirtualSleep
) -> None:
    webhook_peer.answer("hang", ("hang",), ("hang",))
    result = await send(webhook_peer.url("hang"), ChannelType.TEAMS, virtual_sleep, timeout=0.2, max_attempts=2)
    assert result == (2, "channel ops: no answer within 0.2 s")


async def test_errors_never_carry_the_webhook_url(virtual_sleep: VirtualSleep) -> None:
    """A refused connection: aiohttp's own message names the URL; ours names only the channel."""
    secret_url = "http://127.0.0.1:9/workflows/abc?sig=SECRET-SIGNATURE"
    attempts, error = await send(secret_url, ChannelType.TEAMS, virtual_sleep, max_attempts=1)
    assert (attempts, error) == (1, "channel ops: connection failed (ClientConnectorError)")


async def test_email_arrives_over_starttls_with_login(smtp_peer: SmtpPeer, virtual_sleep: VirtualSleep) -> None:
    channel = email_channel(smtp_peer.host, smtp_peer.port, smtp_peer.ca_file, user=SMTP_USER, password=SMTP_PASSWORD)
    async with aiohttp.ClientSession() as session:
        result = await Sender(session, policy(virtual_sleep)).send(channel, notice())
    assert (result.attempts, result.error) == (1, None)
    assert smtp_peer.logins == [SMTP_USER]
    assert smtp_peer.envelopes == [("alerts@example.test", ["soc@example.test", "msp-oncall@example.test"])]
    [message] = smtp_peer.messages
    assert (message["Subject"], message["From"], message["To"]) == (
        "[Secure Score] Contoso Ltd: Secure Score fell 10.0 percentage points in 7 days (60.0% to 50.0%)",
        "Secure Score <alerts@example.test>",
        "soc@example.test, msp-oncall@example.test",
    )
    text = message.get_body(("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == render.email_text(notice())  # CRLF on the wire


async def test_a_refused_login_is_reported_without_the_password(
    smtp_peer: SmtpPeer, virtual_sleep: VirtualSleep
) -> None:
    channel = email_channel(smtp_peer.host, smtp_peer.port, smtp_peer.ca_file, user=SMTP_USER, password="wrong-pass")
    async with aiohttp.ClientSession() as session:
        result = await Sender(session, policy(virtual_sleep)).send(channel, notice())
    assert (result.attempts, result.error) == (1, "channel mail: SMTP 535 (5.7.8 Authentication credentials invalid)")
    assert smtp_peer.messages == []


async def test_a_temporary_smtp_refusal_is_retried(smtp_peer: SmtpPeer, virtual_sleep: VirtualSleep) -> None:
    smtp_peer.refuse_next.append("451 4.3.0 try again later")
    channel = email_channel(smtp_peer.host, smtp_peer.port, smtp_peer.ca_file, user=SMTP_USER, password=SMTP_PASSWORD)
    async with aiohttp.ClientSession() as session:
        result = await Sender(session, policy(virtual_sleep)).send(channel, notice(RuleKind.TENANT_FAILING))
    assert (result.attempts, result.error, len(smtp_peer.messages)) == (2, None, 1)
    assert virtual_sleep.waits == [1.0]


async def test_an_untrusted_smtp_certificate_is_refused(smtp_peer: SmtpPeer, virtual_sleep: VirtualSleep) -> None:
    channel = email_channel(smtp_peer.host, smtp_peer.port, None, user=SMTP_USER, password=SMTP_PASSWORD)
    async with aiohttp.ClientSession() as session:
        result = await Sender(session, policy(virtual_sleep, max_attempts=1)).send(channel, notice())
    assert result.error is not None
    assert result.error.startswith(
        f"channel mail: SMTP connection to {smtp_peer.host}:{smtp_peer.port} failed: certificate not trusted ("
    )
    assert SMTP_PASSWORD not in result.error
    assert smtp_peer.logins == []


async def _send_to_plain_server(
    tmp_path: Path, virtual_sleep: VirtualSleep, **changes: object
) -> tuple[int, str | None, SmtpPeer]:
    """Send to an aiosmtpd server on loopback that offers neither STARTTLS nor AUTH (as `python -m aiosmtpd`)."""
    peer = SmtpPeer("127.0.0.1", 0, tmp_path / "unused.pem")
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(peer, hostname="localhost"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    channel = dataclasses.replace(
        email_channel(peer.host, port, None, user=SMTP_USER, password=SMTP_PASSWORD), **changes
    )
    try:
        async with aiohttp.ClientSession() as session:
            result = await Sender(session, policy(virtual_sleep)).send(channel, notice())
    finally:
        server.close()
        await server.wait_closed()
    assert result.error is None or SMTP_PASSWORD not in result.error
    return result.attempts, (result.error or "").replace(f":{port} ", ":PORT "), peer


async def test_a_server_offering_no_auth_is_named_as_the_cause_and_not_retried(
    tmp_path: Path, virtual_sleep: VirtualSleep
) -> None:
    """It said "SMTP connection failed (SMTPException)" (the connection had succeeded) and was retried as transient;
    then aiosmtplib's sentence, "... Try connecting via TLS (or STARTTLS).", which names no key of the channel."""
    attempts, error, peer = await _send_to_plain_server(tmp_path, virtual_sleep, starttls=False)

    assert (attempts, error) == (
        1,
        "channel mail: SMTP server 127.0.0.1:PORT offers no login (AUTH) on a connection without TLS, and the "
        "channel logs in: set starttls = true (or smtp_port = 465) if it offers login over TLS, or remove username "
        "and password if it takes mail without a login",
    )
    assert virtual_sleep.waits == []
    assert peer.messages == []


async def test_a_server_offering_no_starttls_names_the_keys_to_change(
    tmp_path: Path, virtual_sleep: VirtualSleep
) -> None:
    """It said "SMTP server refused: SMTP STARTTLS extension not supported by server." (".;" before the owed count)."""
    attempts, error, peer = await _send_to_plain_server(tmp_path, virtual_sleep)

    assert (attempts, error) == (
        1,
        "channel mail: SMTP server 127.0.0.1:PORT does not offer STARTTLS, which the channel asks for (starttls = "
        "true): use its TLS port (smtp_port = 465) if it has one, or set starttls = false to send in clear text",
    )
    assert peer.messages == []


async def test_a_server_without_smtputf8_refusing_a_non_ascii_address_says_so(
    tmp_path: Path, virtual_sleep: VirtualSleep
) -> None:
    attempts, error, _ = await _send_to_plain_server(
        tmp_path, virtual_sleep, starttls=False, username=None, password=None, to=("sécurité@example.test",)
    )

    assert (attempts, error) == (
        1,
        "channel mail: SMTP server 127.0.0.1:PORT takes no address with non-ASCII characters (no SMTPUTF8): write "
        "from and to in ASCII",
    )


def test_a_refusal_not_known_is_quoted_without_its_own_full_stop() -> None:
    channel = email_channel("smtp.example.test", 587, None, user=SMTP_USER, password=SMTP_PASSWORD)
    error = aiosmtplib.SMTPException(f"Something odd happened to {SMTP_PASSWORD}.")

    assert smtp_refusal(error, channel) == (
        'SMTP server smtp.example.test:587 refused: "Something odd happened to [redacted]"'
    )


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("host", "cause"),
    [("127.0.0.1", "connection refused"), ("smtp.nowhere.invalid", "name not resolved (")],
)
async def test_an_unreachable_smtp_server_is_named_with_why_in_one_line(
    virtual_sleep: VirtualSleep, host: str, cause: str
) -> None:
    """It said only "SMTP connection failed (SMTPConnectError)": now host:port and the cause, never the password."""
    port = _closed_port()
    channel = email_channel(host, port, None, user=SMTP_USER, password=SMTP_PASSWORD)
    async with aiohttp.ClientSession() as session:
        result = await Sender(session, policy(virtual_sleep, max_attempts=1)).send(channel, notice())
    assert result.error is not None
    assert result.error.startswith(f"channel mail: SMTP connection to {host}:{port} failed: {cause}")
    assert "\n" not in result.error
    assert SMTP_PASSWORD not in result.error
