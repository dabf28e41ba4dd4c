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
    from sqlalchemy.ext.asyncio import AsyncConnection

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
            with stop_signals(stop) as received:
                before, after = await migrate(engine, then=partition if monthly else None, moving=moving)
            hint = await free_pages_hint(engine)  # SQLite keeps what 0011 freed until a VACUUM
        except DBAPIError as error:  # e.g. a read-only file: one line naming it, never a traceback
            raise database_error(error, engine) from None
        except Interrupted as stopped:
            return _interrupted(ctx, progress, str(stopped), stopped.exit_code)
        except asyncio.CancelledError:
            if not received:
                raise
            message = "interrupted: the migration step in progress was rolled back; run `fetcher migrate` again"
            return _interrupted(ctx, progress, message, 128 + received[0])
        finally:
            progress.close()
            await engine.dispose()
        for line in _migrated(display_url(engine), before, after, hint, converted):
            ctx.err.print(line, markup=False, highlight=False, soft_wrap=True)
        return 0

    run_async(ctx, action())


def _migrated(
    where: str, before: str | None, after: str | None, hint: str | None, converted: Sequence[Conversion]
) -> Iterator[str]:
    """The lines `fetcher migrate` ends with: the revisions, free pages worth a vacuum, the partitioning."""
    if before == after:
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
        else:
            yield f"{where}: {done.table} already partitioned"


def _interrupted(ctx: Context, progress: MoveProgressBar | MoveProgressLog, message: str, code: int) -> int:
    """The one line an interrupted `fetcher migrate` ends with, below its progress bar."""
    progress.close()
    ctx.err.print(message, markup=False, highlight=False, soft_wrap=True)
    return code
