"""`fetcher migrate`: create or upgrade the schema, stoppable during the batched move."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async, stop_signals
from fetcher.cli.group import main

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from fetcher.output import MoveProgressBar, MoveProgressLog
    from fetcher.store.partition import Conversion


@main.command("migrate")
@click.option(
    "--skip-disk-check",
    is_flag=True,
    help="Start migrations 0011 and 0013 (SQLite) even if the disk seems to lack the free space they need (also "
    "$FETCHER_MIGRATE_SKIP_DISK_CHECK=1).",
)
@click.pass_obj
def migrate_command(ctx: Context, skip_disk_check: bool) -> None:
    """Create the tables, or upgrade them to this version's schema; with [database] partition = "monthly"
    (PostgreSQL), also partition the day tables by month, converting a plain database in the same transaction
    (atomic, not resumable: interrupted, nothing has changed, and the next run starts it over).
    Migration 0011 moves control_scores into a compact layout in batches, each committed: interrupted, it
    continues where it stopped when run again; it refuses to start without the free disk it needs.
    SIGINT/SIGTERM during the move stops it after the batch in progress, saying how far it got."""
    import asyncio

    from sqlalchemy.exc import DBAPIError

    from fetcher.config import Purpose
    from fetcher.errors import Interrupted
    from fetcher.output import MoveProgressBar, MoveProgressLog
    from fetcher.store.convert import MoveOptions, StopRequest
    from fetcher.store.engine import create_engine, database_error, display_url, migrate
    from fetcher.store.partition import convert
    from fetcher.store.vacuum import free_pages_hint

    async def action() -> int:
        config = ctx.config(Purpose.DATABASE)
        engine = create_engine(config.database)
        converted: list[Conversion] = []

        async def partition(conn: AsyncConnection) -> None:
            converted.extend(await convert(conn, datetime.now(UTC).date()))

        monthly = config.database.partition == "monthly"
        bar = ctx.log_format == "text" and ctx.err.is_terminal and ctx.verbosity >= 0
        progress = MoveProgressBar(ctx.err) if bar else MoveProgressLog()
        stop = StopRequest()
        moving = MoveOptions(progress=progress, check_disk=not skip_disk_check, partition_monthly=monthly, stop=stop)
        try:
            # Ignored once the outcome is known: a signal during the exit would make a migrated database's 0 a 143.
            with stop_signals(stop, ignore_after=True) as received:
                try:
                    before, after = await migrate(engine, then=partition if monthly else None, moving=moving)
                    hint = await free_pages_hint(engine)  # SQLite keeps what 0011 freed until a VACUUM
                except asyncio.CancelledError:
                    if not received:
                        raise
                    _uncancel()
                    return await _cancelled(ctx, progress, engine, received[0], stop.committed or not monthly)
        except DBAPIError as error:  # e.g. a read-only file: one line naming it, never a traceback
            raise database_error(error, engine) from None
        except Interrupted as stopped:
            return _interrupted(ctx, progress, str(stopped), stopped.exit_code)
        finally:
            progress.close()
            await engine.dispose()
        for line in _migrated(display_url(engine), before, after, hint, converted, quiet=ctx.verbosity < 0):
            ctx.notice(line, quiet_too=True)  # -q's choice made by _migrated; JSON: an info record
        return 0

    run_async(ctx, action())


def _migrated(
    where: str,
    before: str | None,
    after: str | None,
    hint: str | None,
    converted: Sequence[Conversion],
    *,
    quiet: bool = False,
) -> Iterator[str]:
    """The lines `fetcher migrate` ends with: the revisions, free pages worth a vacuum, the partitioning. `quiet`
    (`-q`, cron's nightly `migrate`): none that says nothing was to be done."""
    if before == after:
        if not quiet:
            yield f"{where}: already at revision {after}"
    else:
        yield f"{where}: migrated from {before or 'an empty database'} to revision {after}"
    if hint is not None:
        yield hint
    for done in converted:
        if done.partitions:
            yield (
                f"{where}: {done.table} partitioned by month: {done.rows} row(s) into "
                f"{done.partitions} month partition(s)"
            )
        elif not quiet:
            yield f"{where}: {done.table} already partitioned"


def _uncancel() -> None:
    """The signal's cancellation is handled: what follows (reading the revision) must not be taken for it."""
    import asyncio

    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _cancelled(
    ctx: Context, progress: MoveProgressBar | MoveProgressLog, engine: AsyncEngine, number: int, told_by_head: bool
) -> int:
    """What a signal that cancelled `fetcher migrate` left: the last transaction committed (`told_by_head`: known
    committed, or, without a partitioning the revision does not show, the database at the head revision, as
    when the cancellation came as the commit returned) is a migration and exit 0; else the revision it stayed at."""
    import signal

    from fetcher.store.engine import current_revision, display_url, head_revision

    now = await current_revision(engine)
    name = signal.Signals(number).name
    if told_by_head and now == head_revision():
        message = f"{display_url(engine)}: migrated to revision {now}; it had finished before {name} took effect"
        return _interrupted(ctx, progress, message, 0)
    message = (
        "interrupted: the migration step in progress was rolled back; the database is at revision "
        f"{now or 'none (empty)'}; run `fetcher migrate` again"
    )
    return _interrupted(ctx, progress, message, 128 + number)


def _interrupted(ctx: Context, progress: MoveProgressBar | MoveProgressLog, message: str, code: int) -> int:
    """The one line an interrupted `fetcher migrate` ends with, below its progress bar."""
    progress.close()
    ctx.notice(message, quiet_too=True)
    return code
