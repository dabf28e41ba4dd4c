"""Retries: the one place the fetcher tries again.

Only `TransientError`s are retried (never a bare `Exception`), at most `max_attempts` times and with
at most `max_total_wait` seconds of waiting in all, each wait exponential with full jitter and never
shorter than the server's `Retry-After`. A `Retry-After` longer than `max_retry_wait` fails the tenant
at once (`RetryWaitTooLong`) rather than stalling the run. Tests make waits instant by passing their own
`sleep`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import tenacity

from fetcher.config import FetchConfig
from fetcher.errors import RetryWaitTooLong, TransientError
from fetcher.models import RequestStats, TenantRef

log = logging.getLogger("fetcher.retry")

T = TypeVar("T")

# The statuses that mean "the server failed, try again" (from Graph and Entra ID alike); 429 is `Throttled`.
SERVER_ERROR_STATUSES = frozenset({500, 502, 503, 504})
_DELTA_SECONDS = re.compile(r"^\d+(\.\d+)?$")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds from either form (delta-seconds or HTTP-date); None when absent or unusable.

    A date in the past means "now" (0.0); a negative or non-numeric delta is garbage (None).
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less parse means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _StopBeforeTotalWait(tenacity.stop.stop_base):
    """Stop when the next wait would take the waits of this call past `limit` seconds (request time aside)."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.idle_for + (retry_state.upcoming_sleep or 0.0) > self.limit


def jittered_wait(
    uniform: Callable[[float, float], float], base: float, cap: float, retry_number: int, retry_after: float | None
) -> float:
    """Seconds to wait before the n-th retry: full jitter, uniform in [0, min(cap, base · 2^(n-1))], or the
    server's `Retry-After` when that is longer (it is never undercut). Graph requests and alert deliveries."""
    return max(uniform(0.0, min(cap, base * 2 ** (retry_number - 1))), retry_after or 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request; `base`, `cap` and `sleep` are the test switches."""

    max_attempts: int = 6
    max_retry_wait: float = 300.0
    max_total_wait: float = 600.0
    base: float = 1.0
    cap: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    uniform: Callable[[float, float], float] = random.uniform

    @classmethod
    def from_config(cls, fetch: FetchConfig, **changes: Any) -> RetryPolicy:
        # The total budget leaves room for two of the longest waits a server may ask for, and for backoff.
        total = max(2 * fetch.max_retry_wait_seconds, cls.max_total_wait)
        policy = cls(fetch.max_attempts, fetch.max_retry_wait_seconds, total)
        return replace(policy, **changes)

    def wait_before(self, retry_number: int, error: BaseException | None) -> float:
        """The backoff, or the server's `Retry-After` when that is longer (it is never undercut)."""
        retry_after = error.retry_after if isinstance(error, TransientError) else None
        return jittered_wait(self.uniform, self.base, self.cap, retry_number, retry_after)

    async def call(self, operation: Callable[[], Awaitable[T]], *, tenant: TenantRef, stats: RequestStats) -> T:
        """Run `operation` until it succeeds, fails for good, or attempts or time run out.

        The first attempt runs outside tenacity: nearly every request succeeds at once, and a tenacity
        loop leaves a dozen objects in reference cycles per request (counted with `gc.DEBUG_SAVEALL`),
        garbage that waits for the collector. When it fails with a `TransientError`, tenacity takes over and its own
        first attempt re-raises that error, so attempt numbers, waits, limits and logs are the same as if
        tenacity had made it.
        """
        try:
            return await self._attempt(operation, tenant)
        except TransientError as error:
            first: list[TransientError] = [error]

        async def attempt() -> T:
            if first:
                raise first.pop()
            return await self._attempt(operation, tenant)

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_attempts) | _StopBeforeTotalWait(self.max_total_wait),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(TransientError),
            sleep=self.sleep,
            before_sleep=lambda state: self._before_sleep(state, tenant, stats),
            reraise=True,
        )
        try:
            async for try_ in retrying:
                with try_:
                    return await attempt()
        except TransientError as error:
            self._say_gave_up(error, retrying.statistics.get("attempt_number", 1))
            raise
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover

    def _say_gave_up(self, error: TransientError, attempts: int) -> None:
        """The last error's message says the retries ran out (not the seconds waited: jitter would set apart
        in the summary the tenants failing for one cause)."""
        if attempts >= self.max_attempts:
            why = f"gave up after {attempts} attempts ([fetch] max_attempts)"
        else:
            why = f"gave up after {attempts} attempts: the next wait would pass the {self.max_total_wait:g} s allowed"
        error.message = f"{error.message}; {why}"
        error.args = (error.message,)

    async def _attempt(self, operation: Callable[[], Awaitable[T]], tenant: TenantRef) -> T:
        try:
            return await operation()
        except TransientError as error:
            if error.retry_after is not None and error.retry_after > self.max_retry_wait:
                raise self._too_long(error, tenant) from None
            raise

    def _too_long(self, error: TransientError, tenant: TenantRef) -> RetryWaitTooLong:
        wait = error.retry_after or 0.0
        return RetryWaitTooLong(
            f"tenant {tenant.label}: {_service(error)} asked to wait {wait:g} s before retrying ({error.kind}, status "
            f"{error.status}), longer than [fetch] max_retry_wait_seconds = {self.max_retry_wait:g}; "
            "the tenant is left for the next run",
            retry_after=wait,
            tenant_id=error.tenant_id,
            status=error.status,
            url=error.url,
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return self.wait_before(state.attempt_number, error)

    def _before_sleep(self, state: tenacity.RetryCallState, tenant: TenantRef, stats: RequestStats) -> None:
        stats.retries += 1
        error = state.outcome.exception() if state.outcome else None
        kind = error.kind if isinstance(error, TransientError) else type(error).__name__
        status = f" {error.status}" if isinstance(error, TransientError) and error.status else ""
        log.info(
            "tenant %s: %s%s, retry %d of %d in %.1f s",
            tenant.label,
            kind,
            status,
            state.attempt_number,
            self.max_attempts - 1,
            state.upcoming_sleep,
        )


def _service(error: TransientError) -> str:
    """Who answered: Entra ID for a token request (`.../oauth2/v2.0/token`), else Graph."""
    path = (error.url or "").split("?", 1)[0]
    return "Entra ID" if path.endswith("/oauth2/v2.0/token") else "Graph"
