"""Delivery: a rendered notice to its channel, over HTTP (aiohttp) or SMTP (aiosmtplib).

Each send has a timeout; a transient failure (a timeout, a broken connection, HTTP 408, 429 or 5xx,
an SMTP 4xx reply) is retried by tenacity up to `max_attempts` times with exponential backoff and full
jitter, never sooner than the peer's `Retry-After`. A `Retry-After` longer than `max_retry_wait_seconds`
ends the attempts at once: the notification stays owed and the next evaluation tries again. Other
failures (HTTP 4xx, SMTP 5xx such as a refused login, a server that offers no AUTH or STARTTLS the channel
needs) are not retried now, and stay owed too.

Errors are one line naming the channel and what happened; they never contain the webhook URL, the
SMTP password, or an exception's text that could (aiohttp puts the URL in its messages).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage

import aiohttp
import aiosmtplib
import orjson
import tenacity

from fetcher import __version__
from fetcher.alerts.model import AlertChannel, AlertsConfig, ChannelType, Notice
from fetcher.alerts.render import render
from fetcher.retry import jittered_wait, parse_retry_after

log = logging.getLogger("fetcher.alerts")

USER_AGENT = f"securescore-fetcher/{__version__}"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Slack answers errors with a short code (`no_service`, `invalid_payload`): worth showing, and safe.
_ERROR_CODE = re.compile(rb"^[a-z_]{1,60}$")
_MAX_BODY = 4096


class DeliveryFailed(Exception):
    """A send that failed for good this time; `reason` is safe to log and store."""

    def __init__(self, reason: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


class _Transient(DeliveryFailed):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason, transient=True, retry_after=retry_after)


@dataclass(frozen=True)
class Result:
    """One notification's delivery: how many attempts, and the error if it did not arrive."""

    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timeout and retries per send; `sleep` and `uniform` are the tests' switches (virtual time)."""

    timeout: float = 10.0
    max_attempts: int = 3
    max_retry_wait: float = 60.0
    base: float = 1.0
    cap: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    uniform: Callable[[float, float], float] = random.uniform

    @classmethod
    def from_settings(cls, settings: AlertsConfig) -> DeliveryPolicy:
        return cls(settings.timeout_seconds, settings.max_attempts, settings.max_retry_wait_seconds)

    def wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = error.retry_after if isinstance(error, DeliveryFailed) else None
        return jittered_wait(self.uniform, self.base, self.cap, state.attempt_number, retry_after)

    def stop(self, state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        too_long = isinstance(error, DeliveryFailed) and (error.retry_after or 0.0) > self.max_retry_wait
        return too_long or state.attempt_number >= self.max_attempts


def ssl_context(channel: AlertChannel) -> ssl.SSLContext:
    """The system's CAs plus the channel's `ca_bundle`; TLS 1.2 or newer."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if channel.ca_bundle is not None:
        context.load_verify_locations(cafile=str(channel.ca_bundle))
    return context


class Sender:
    """Sends notices through one evaluation's aiohttp session (made once by the caller, who closes it)."""

    def __init__(self, session: aiohttp.ClientSession, policy: DeliveryPolicy) -> None:
        self.session = session
        self.policy = policy

    async def send(self, channel: AlertChannel, notice: Notice) -> Result:
        """Deliver one notice, retrying transient failures; never raises for a failed delivery."""
        attempts = 0

        async def once() -> None:
            nonlocal attempts
            attempts += 1
            await self._send_once(channel, notice)

        retrying = tenacity.AsyncRetrying(
            stop=self.policy.stop,
            wait=self.policy.wait,
            retry=tenacity.retry_if_exception_type(_Transient),
            sleep=self.policy.sleep,
            before_sleep=lambda state: _log_retry(channel, state),
            reraise=True,
        )
        try:
            await retrying(once)
        except DeliveryFailed as failure:
            return Result(attempts, f"channel {channel.name}: {failure.reason}")
        return Result(attempts)

    async def _send_once(self, channel: AlertChannel, notice: Notice) -> None:
        payload = render(notice, channel)
        if isinstance(payload, EmailMessage):
            await self._smtp(channel, payload)
        else:
            await self._post(channel, orjson.dumps(payload))

    async def _post(self, channel: AlertChannel, body: bytes) -> None:
        assert channel.url is not None, "webhook channels have a URL (checked at load)"
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        context = ssl_context(channel) if channel.ca_bundle else True
        try:
            async with self.session.post(
                channel.url.reveal(), data=body, headers=headers, timeout=timeout, ssl=context, allow_redirects=False
            ) as response:
                answer = await response.content.read(_MAX_BODY)
                _check_status(response.status, response.headers.get("Retry-After"), answer)
        except TimeoutError:
            raise _Transient(f"no answer within {self.policy.timeout:g} s") from None
        except aiohttp.ClientError as error:
            raise _Transient(f"connection failed ({type(error).__name__})") from None

    async def _smtp(self, channel: AlertChannel, message: EmailMessage) -> None:
        implicit = channel.smtp_port == 465
        try:
            await aiosmtplib.send(
                message,
                hostname=channel.smtp_host,
                port=channel.smtp_port,
                username=channel.username,
                password=channel.password.reveal() if channel.password else None,
                use_tls=implicit,
                start_tls=channel.starttls and not implicit,
                tls_context=ssl_context(channel),
                timeout=self.policy.timeout,
            )
        except aiosmtplib.SMTPResponseException as error:
            reason = f"SMTP {error.code} ({_one_line(error.message, channel)})"
            if 400 <= error.code < 500:
                raise _Transient(reason) from None
            raise DeliveryFailed(reason, transient=False) from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            where = f"{channel.smtp_host}:{channel.smtp_port}"
            raise _Transient(f"SMTP server {where} did not answer within {self.policy.timeout:g} s") from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as error:
            where = f"{channel.smtp_host}:{channel.smtp_port}"
            raise _Transient(f"SMTP connection to {where} failed: {_connect_cause(error, channel)}") from None
        except aiosmtplib.SMTPException as error:
            # Connected, and the server lacks what the channel needs (AUTH, STARTTLS, SMTPUTF8) or refused every
            # recipient: asking again changes nothing.
            raise DeliveryFailed(smtp_refusal(error, channel), transient=False) from None


# aiosmtplib's sentences for what a server lacks (aiosmtplib.smtp: starttls, login)
_NO_STARTTLS = "STARTTLS extension not supported"
_NO_AUTH = "AUTH extension is not supported"
_NO_AUTH_METHOD = "No suitable authentication method"


def smtp_refusal(error: aiosmtplib.SMTPException, channel: AlertChannel) -> str:
    """What the server lacks, in one line naming the channel key that changes it (aiosmtplib's sentence
    names none of ours: "Try connecting via TLS"); a refusal not known here is quoted, as a detail."""
    where = f"SMTP server {channel.smtp_host}:{channel.smtp_port}"
    text = str(error)
    without_login = "remove username and password if it takes mail without a login"
    if _NO_STARTTLS in text:
        return (
            f"{where} does not offer STARTTLS, which the channel asks for (starttls = true): use its TLS port "
            "(smtp_port = 465) if it has one, or set starttls = false to send in clear text"
        )
    if _NO_AUTH in text:
        if channel.smtp_port != 465 and not channel.starttls:
            return (
                f"{where} offers no login (AUTH) on a connection without TLS, and the channel logs in: set "
                f"starttls = true (or smtp_port = 465) if it offers login over TLS, or {without_login}"
            )
        return f"{where} offers no login (AUTH), and the channel logs in: {without_login}"
    if _NO_AUTH_METHOD in text:
        return f"{where} offers no login method the fetcher speaks (CRAM-MD5, PLAIN, LOGIN): {without_login}"
    if isinstance(error, aiosmtplib.SMTPNotSupported):
        return f"{where} takes no address with non-ASCII characters (no SMTPUTF8): write from and to in ASCII"
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        first = error.recipients[0]
        return f"{where} refused every address in to ({first.code} {_one_line(first.message, channel)})"
    return f'{where} refused: "{_one_line(text, channel).rstrip(". ")}"'


def _check_status(status: int, retry_after: str | None, body: bytes) -> None:
    if 200 <= status < 300:
        return
    code = body.strip()
    said = f" ({code.decode()})" if _ERROR_CODE.match(code) else ""
    if status in RETRY_STATUSES:
        raise _Transient(f"HTTP {status}{said}", parse_retry_after(retry_after))
    raise DeliveryFailed(f"HTTP {status}{said}", transient=False)


def _connect_cause(error: BaseException, channel: AlertChannel) -> str:
    """Why the connection failed, in a few words: aiosmtplib's SMTPConnectError wraps the OSError that says it
    (its own text repeats the host and port the message already names)."""
    cause = error.__cause__ if isinstance(error, aiosmtplib.SMTPConnectError) and error.__cause__ else error
    if isinstance(cause, socket.gaierror):
        return f"name not resolved ({_one_line(str(cause.strerror), channel)})"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({_one_line(str(cause.verify_message), channel)})"
    if isinstance(cause, aiosmtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(cause, OSError) and cause.strerror:
        return _one_line(cause.strerror, channel)
    return type(cause).__name__


def _one_line(text: str, channel: AlertChannel) -> str:
    line = " ".join(str(text).split())[:120]
    for secret in channel.secrets:
        line = line.replace(secret, "[redacted]")
    return line


def _log_retry(channel: AlertChannel, state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    reason = error.reason if isinstance(error, DeliveryFailed) else type(error).__name__
    log.info("channel %s: %s, retry in %.1f s", channel.name, reason, state.upcoming_sleep)


def is_webhook(channel: AlertChannel) -> bool:
    return channel.type is not ChannelType.EMAIL
