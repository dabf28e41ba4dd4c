"""Errors to exit codes: a FetcherError (or a database failure) becomes one line on standard error."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from fetcher.cli.context import Context
from fetcher.errors import FetcherError, StandardOutputClosed
from fetcher.text import printable

if TYPE_CHECKING:
    from fetcher.store.convert import StopRequest


log = logging.getLogger("fetcher.cli")


def fail(ctx: Context, error: FetcherError) -> int:
    """Says why the command stops, on one line: `error: ...` in text, or with `--log-format json` a log
    record like every other (its `error_kind`, the command; secrets redacted), so a log shipper sees it.
    A closed standard output (`fetcher report | head -1`) is said nothing of: its reader wanted no more."""
    from rich.markup import escape

    if isinstance(error, StandardOutputClosed):
        return error.exit_code
    if ctx.log_format == "json":
        log.error("%s", str(error), extra={"error_kind": error.kind})
        return error.exit_code
    ctx.err.print(
        f"[bold red]error:[/bold red] {escape(printable(str(error)))}", markup=True, highlight=False, soft_wrap=True
    )
    return error.exit_code


def run_async(ctx: Context, coro: Coroutine[Any, Any, int]) -> None:
    """Run a command's coroutine; a FetcherError becomes its one line and exit code."""
    import asyncio

    try:
        code = asyncio.run(coro)
    except FetcherError as error:
        code = fail(ctx, error)
    except KeyboardInterrupt:
        code = 130
    except Exception as error:
        failure = database_failure(error, ctx.database_url)
        if failure is None:
            raise
        code = fail(ctx, failure)
    sys.exit(code)


def database_failure(error: Exception, url: str | None = None) -> FetcherError | None:
    """A database failure no command put in its own words (still one line naming the database `url`, its
    password hidden, exit 3); None for anything else.

    A command that never loaded SQLAlchemy cannot have one, and is not made to load it here.
    """
    if "sqlalchemy.exc" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    from fetcher.store.engine import unexpected_database_error

    return unexpected_database_error(error, url) if isinstance(error, DBAPIError) else None


def run_sync(ctx: Context, action: Callable[[], int]) -> None:
    try:
        code = action()
    except FetcherError as error:
        code = fail(ctx, error)
    sys.exit(code)


@contextlib.contextmanager
def stop_signals(stop: StopRequest | None = None, *, ignore_after: bool = False) -> Iterator[list[int]]:
    """SIGINT/SIGTERM during a command that commits in steps (`migrate`, `archive compact`): during a batched
    move, a stop after the batch in progress (`stop`); otherwise the running task is cancelled, so the step
    in progress (one transaction) rolls back at once and the command says what was kept. A second signal
    exits at once. Installed on the event loop, so a background job's SIGINT (ignored by default) counts too.
    Yields the signals received. `ignore_after`: once the block is left the outcome is told, and a signal then
    is ignored (by default it would kill the process, its exit code 130/143 contradicting what was said)."""
    import asyncio

    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    received: list[int] = []

    def on_signal(number: int) -> None:
        if stop is not None and stop.committed:  # the work is done and kept: the command ends as it would
            received.append(number)
            return
        if received:
            os._exit(128 + number)  # the database rolls back the batch in progress
        received.append(number)
        if stop is not None and stop.moving:
            stop.signal_number = number
        elif task is not None:
            task.cancel()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    try:
        yield received
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
            if ignore_after:
                signal.signal(number, signal.SIG_IGN)
