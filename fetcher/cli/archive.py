"""`fetcher rebuild` and `fetcher archive compact`: the commands that work from the raw archive."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async, stop_signals
from fetcher.cli.group import main, tune_long_run
from fetcher.cli.options import tenant_option
from fetcher.cli.running import execute, summarise

log = logging.getLogger("fetcher.cli")


@main.command("rebuild")
@tenant_option
@click.pass_obj
def rebuild_command(ctx: Context, tenants: Sequence[str]) -> None:
    """Derive the normalized tables again from the raw archive (after a normalization fix or a new column)."""
    from fetcher.config import Purpose
    from fetcher.partner import with_known_tenants
    from fetcher.plan import plan_rebuild
    from fetcher.runner import Run

    tune_long_run()

    async def action() -> int:
        config = await with_known_tenants(ctx.config(Purpose.DATABASE))  # the discovered customers' names
        run = Run(config, "rebuild", plan_rebuild(config, tenants), observer=ctx.observer())
        return summarise(ctx, await execute(ctx, run))

    run_async(ctx, action())


@main.group("archive")
def archive_group() -> None:
    """The raw archive (raw_payloads, raw_control_profiles): its compression."""


@archive_group.command("compact")
@click.pass_obj
def archive_compact_command(ctx: Context) -> None:
    """Train the archive's zstd dictionaries once it holds enough objects, recompress every body still zlib
    with them, and rewrite each whole secureScore body as a zstd delta where a run would now write one (a
    database archived before migration 0013: a base of the same tenant and shape within 7 days; bases and
    deltas stay as they are). In batches, each its own transaction, a delta written only once it decodes
    back: safe to stop and run again (SIGINT/SIGTERM roll back the batch in progress and say what was
    kept). Holds the run lock (exit 3 while a run holds it). Says the bodies' size before and after. Every
    body is read (zstd ones too), so a body that cannot be read is named (tenant and day): exit 3. A run or
    backfill recompresses after it too, for a bounded number of bodies, without reading the zstd ones or
    making deltas."""
    import uuid

    from fetcher.config import Purpose
    from fetcher.output import compaction_line, progress_bar, rebase_line
    from fetcher.store.compaction import ARCHIVES, body_bytes, compact, count_bodies, rewrite_as_deltas, unreadable
    from fetcher.store.engine import create_engine, ensure_schema
    from fetcher.store.lock import ARCHIVE_RUN_PREFIX, RunLock, this_process
    from fetcher.store.vacuum import free_pages_hint

    async def compact_all(stage: _Stage) -> int:
        engine = create_engine(ctx.config(Purpose.DATABASE).database)
        try:
            await ensure_schema(engine, create=False)
            failures = []
            async with RunLock(engine, this_process(f"{ARCHIVE_RUN_PREFIX}{uuid.uuid4()}")):
                for archive in ARCHIVES:
                    total, before = await count_bodies(engine, archive), await body_bytes(engine, archive)
                    with progress_bar(ctx.err, archive.table.name, total, shown=ctx.verbosity >= 0) as advance:
                        counted = stage.begin(f"{archive.table.name}: recompressing", total, advance)
                        done = await compact(engine, archive, datetime.now(UTC), progress=counted, verify=True)
                    ctx.err.print(compaction_line(archive.table.name, total, done), markup=False, highlight=False)
                    if archive.deltas:
                        what = f"{archive.table.name} as deltas"
                        with progress_bar(ctx.err, what, total, shown=ctx.verbosity >= 0) as advance:
                            counted = stage.begin(f"{archive.table.name}: rewriting as deltas", total, advance)
                            rebased = await rewrite_as_deltas(engine, progress=counted)
                        after = await body_bytes(engine, archive)
                        line = rebase_line(archive.table.name, total, before, after, rebased)
                        ctx.err.print(line, markup=False, highlight=False)
                    for error in done.errors:
                        log.debug("archive: %s", error)
                    failure = unreadable(done)
                    if failure is not None:
                        failures.append(failure)
                stage.begin("", 0, None)
            hint = await free_pages_hint(engine)  # rewritten bodies leave free pages in a SQLite file
            if hint is not None:
                ctx.err.print(hint, markup=False, highlight=False, soft_wrap=True)
        finally:
            await engine.dispose()
        if failures:
            raise failures[0]
        return 0

    stage = _Stage()
    run_async(ctx, _stoppable(ctx, stage, lambda: compact_all(stage)))


async def _stoppable(ctx: Context, stage: _Stage, work: Callable[[], Awaitable[int]]) -> int:
    """`work` under `stop_signals`: SIGINT/SIGTERM roll back the batch in progress (its transaction) and end
    with one line saying what was kept (`stage`), exit 128 + the signal's number."""
    import asyncio

    with stop_signals() as received:
        try:
            return await work()
        except asyncio.CancelledError:
            if not received:
                raise
            ctx.err.print(stage.interrupted(), markup=False, highlight=False, soft_wrap=True)
            return 128 + received[0]


class _Stage:
    """Where `fetcher archive compact` is, for the line it ends with when a signal stops it: the step, and
    its bodies read in committed batches (its progress is told after each commit)."""

    def __init__(self) -> None:
        self.what = ""
        self.total = 0
        self.done = 0

    def begin(self, what: str, total: int, advance: Callable[[int], None] | None) -> Callable[[int], None]:
        """A step of `total` bodies starts (`what` empty: none left); returns the progress to give it."""
        self.what, self.total, self.done = what, total, 0

        def counted(n: int) -> None:
            self.done += n
            if advance is not None:
                advance(n)

        return counted

    def interrupted(self) -> str:
        """The one line: what was kept, and to run it again."""
        again = "run `fetcher archive compact` again to continue"
        if not self.what:
            return f"interrupted: the batch in progress, if any, was rolled back; {again}"
        return (
            f"interrupted: {self.what}: {self.done:,} of {self.total:,} bodies done in committed batches, kept; "
            f"the batch in progress was rolled back; {again}"
        )
