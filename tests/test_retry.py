"""Retries: only transient errors, bounded, jittered, honouring Retry-After (waits recorded, not slept)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from fetcher.config import FetchConfig
from fetcher.errors import (
    AuthenticationError,
    ConnectionFailed,
    InvalidResponse,
    NotFound,
    PermissionDenied,
    RequestTimedOut,
    RetryWaitTooLong,
    ServerError,
    Throttled,
    TransientError,
    UnsafeResponse,
)
from fetcher.models import RequestStats, TenantRef
from fetcher.retry import RetryPolicy, parse_retry_after

TENANT = TenantRef("4b8c18bd-2f9f-4227-af55-0a0b0c0d0e0f", "Contoso")
URL = "https://graph.example.test/v1.0/security/secureScores?$top=90"


class Waits(list[float]):
    """A `sleep` that records how long it was asked to wait and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def upper(_low: float, high: float) -> float:
    """A jitter that always picks the top of its range, so waits are predictable."""
    return high


def policy(waits: Waits, **changes: Any) -> RetryPolicy:
    return RetryPolicy(**{"max_attempts": 4, "base": 1.0, "cap": 60.0, "sleep": waits, "uniform": upper, **changes})


def failing(errors: Sequence[BaseException], result: str = "ok") -> tuple[Callable[[], Any], list[int]]:
    """An operation that raises the given errors in turn, then returns `result`; counts its calls."""
    calls: list[int] = []

    async def operation() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return operation, calls


def server_error(retry_after: float | None = None) -> ServerError:
    return ServerError("boom", tenant_id=TENANT.tenant_id, status=503, url=URL, retry_after=retry_after)


def throttled(retry_after: float | None) -> Throttled:
    return Throttled("slow down", tenant_id=TENANT.tenant_id, status=429, url=URL, retry_after=retry_after)


async def test_a_transient_error_is_retried_until_success() -> None:
    waits, stats = Waits(), RequestStats()
    operation, calls = failing([server_error(), server_error()])
    assert await policy(waits).call(operation, tenant=TENANT, stats=stats) == "ok"
    assert (len(calls), stats.retries, len(waits)) == (3, 2, 2)


@pytest.mark.parametrize(
    "error",
    [
        server_error(),
        throttled(None),
        ConnectionFailed("reset", tenant_id=TENANT.tenant_id),
        RequestTimedOut("slow", tenant_id=TENANT.tenant_id),
        InvalidResponse("garbled", tenant_id=TENANT.tenant_id, status=200),
    ],
    ids=lambda e: e.kind,
)
async def test_every_transient_kind_is_retried(error: TransientError) -> None:
    operation, calls = failing([error])
    await policy(Waits()).call(operation, tenant=TENANT, stats=RequestStats())
    assert len(calls) == 2


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    waits, stats = Waits(), RequestStats()
    errors = [server_error() for _ in range(10)]
    operation, calls = failing(errors)
    with pytest.raises(ServerError) as caught:
        await policy(waits, max_attempts=4).call(operation, tenant=TENANT, stats=stats)
    assert caught.value is errors[3]
    assert (len(calls), stats.retries) == (4, 3)


async def test_the_last_error_says_the_attempts_ran_out() -> None:
    operation, _ = failing([throttled(2.0) for _ in range(10)])
    with pytest.raises(Throttled) as caught:
        await policy(Waits(), max_attempts=4).call(operation, tenant=TENANT, stats=RequestStats())
    assert str(caught.value) == "slow down; gave up after 4 attempts ([fetch] max_attempts)"


async def test_the_last_error_says_the_waiting_allowed_ran_out() -> None:
    operation, _ = failing([throttled(20.0) for _ in range(10)])
    with pytest.raises(Throttled) as caught:
        await policy(Waits(), max_attempts=6, max_total_wait=50.0).call(operation, tenant=TENANT, stats=RequestStats())
    assert str(caught.value) == "slow down; gave up after 3 attempts: the next wait would pass the 50 s allowed"


async def test_a_single_attempt_raises_the_first_error_without_waiting() -> None:
    waits, stats = Waits(), RequestStats()
    first = throttled(5.0)
    operation, calls = failing([first])
    with pytest.raises(Throttled) as caught:
        await policy(waits, max_attempts=1).call(operation, tenant=TENANT, stats=stats)
    assert caught.value is first
    assert (len(calls), stats.retries, waits) == (1, 0, [])


async def test_the_first_errors_retry_after_sets_the_first_wait() -> None:
    waits = Waits()
    operation, calls = failing([throttled(7.0)])
    lowest = policy(waits, uniform=lambda low, _high: low)  # backoff 0: the wait is the Retry-After
    assert await lowest.call(operation, tenant=TENANT, stats=RequestStats()) == "ok"
    assert (len(calls), waits) == (2, [7.0])


@pytest.mark.parametrize(
    "error",
    [
        NotFound("gone", tenant_id=TENANT.tenant_id, status=404),
        PermissionDenied("no", tenant_id=TENANT.tenant_id, status=403),
        AuthenticationError("who", tenant_id=TENANT.tenant_id, code="AADSTS7000215"),
        UnsafeResponse("evil", tenant_id=TENANT.tenant_id),
        ValueError("a bug"),
        RuntimeError("another bug"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_other_errors_are_never_retried(error: Exception) -> None:
    waits = Waits()
    operation, calls = failing([error])
    with pytest.raises(type(error)):
        await policy(waits).call(operation, tenant=TENANT, stats=RequestStats())
    assert (len(calls), waits) == (1, [])


async def test_backoff_is_exponential_up_to_the_cap() -> None:
    waits = Waits()
    operation, _ = failing([server_error() for _ in range(6)])
    await policy(waits, max_attempts=7, base=1.0, cap=10.0).call(operation, tenant=TENANT, stats=RequestStats())
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


async def test_backoff_has_full_jitter() -> None:
    ranges: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        ranges.append((low, high))
        return low

    waits = Waits()
    operation, _ = failing([server_error(), server_error()])
    await policy(waits, uniform=record).call(operation, tenant=TENANT, stats=RequestStats())
    assert (ranges, waits) == ([(0.0, 1.0), (0.0, 2.0)], [0.0, 0.0])


@pytest.mark.parametrize(("retry_after", "wait"), [(30.0, 30.0), (0.5, 1.0), (0.0, 1.0)])
async def test_retry_after_is_never_undercut(retry_after: float, wait: float) -> None:
    waits = Waits()
    operation, _ = failing([throttled(retry_after)])
    await policy(waits).call(operation, tenant=TENANT, stats=RequestStats())
    assert waits == [wait]


async def test_a_retry_after_beyond_the_maximum_fails_at_once() -> None:
    waits, stats = Waits(), RequestStats()
    operation, calls = failing([throttled(301.0)])
    with pytest.raises(RetryWaitTooLong) as caught:
        await policy(waits, max_retry_wait=300.0).call(operation, tenant=TENANT, stats=stats)
    error = caught.value
    assert (len(calls), waits, stats.retries) == (1, [], 0)
    assert (error.retry_after, error.status, error.url, error.tenant_id) == (301.0, 429, URL, TENANT.tenant_id)
    assert str(error).startswith(f"tenant {TENANT.label}: Graph asked to wait 301 s")
    assert "max_retry_wait_seconds = 300" in str(error)


async def test_total_waiting_is_bounded() -> None:
    waits = Waits()
    operation, calls = failing([throttled(40.0) for _ in range(10)])
    with pytest.raises(Throttled):
        await policy(waits, max_attempts=10, max_total_wait=100.0).call(operation, tenant=TENANT, stats=RequestStats())
    assert (waits, len(calls)) == ([40.0, 40.0], 3)


async def test_each_retry_logs_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fetcher.retry")
    operation, _ = failing([throttled(3.0), ConnectionFailed("reset", tenant_id=TENANT.tenant_id)])
    await policy(Waits()).call(operation, tenant=TENANT, stats=RequestStats())
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, f"tenant {TENANT.label}: throttled 429, retry 1 of 3 in 3.0 s"),
        (logging.INFO, f"tenant {TENANT.label}: connection, retry 2 of 3 in 2.0 s"),
    ]


def test_the_policy_comes_from_the_fetch_configuration() -> None:
    retry = RetryPolicy.from_config(FetchConfig(max_attempts=3, max_retry_wait_seconds=20.0), base=0.01)
    assert (retry.max_attempts, retry.max_retry_wait, retry.base, retry.cap) == (3, 20.0, 0.01, 60.0)


# ------------------------------------------------------------------------------------------- Retry-After

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("Sat, 28 Nov 2026 12:00:30 GMT", 30.0),
        ("Saturday, 28-Nov-26 12:01:00 GMT", 60.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        ("1e3", None),
        ("inf", None),
        (None, None),
    ],
)
def test_retry_after_in_both_forms(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds
