"""`fetcher vacuum`: give a SQLite file's free pages back to the disk."""

from __future__ import annotations

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async
from fetcher.cli.group import main


@main.command("vacuum")
@click.option("--skip-disk-check", is_flag=True, help="Start even if the disks seem to lack the space VACUUM needs.")
@click.pass_obj
def vacuum_command(ctx: Context, skip_disk_check: bool) -> None:
    """SQLite: give the file's free pages back to the disk (VACUUM), e.g. after migration 0011 or `archive compact`.
    Needs about the live data's size free beside the database and in SQLite's temporary folder ($SQLITE_TMPDIR),
    and refuses to start without it; with no free pages, says so and does no VACUUM, but still checkpoints and
    truncates a write-ahead log larger than SQLite's own checkpoints leave it (as a vacuum under a reader does).
    Holds the run lock, so it never runs during a fetch (exit 3 if one is running); a run started meanwhile never
    runs beside it: it waits for the vacuum's write lock up to [database] busy_timeout_seconds, then starts after
    it, or gives up with its usual error (exit 3: the database locked, or the run lock still held). Tells the
    sizes on disk (the file and its write-ahead log) before and after; says so first when a reader makes it wait
    (up to busy_timeout_seconds) for the log's checkpoint. PostgreSQL: connects, checks the schema is
    current (exit 3 otherwise, as every command), then says the database's size and why there is nothing to do
    (autovacuum; VACUUM FULL or pg_repack are your DBA's call)."""
    from sqlalchemy.exc import DBAPIError

    from fetcher.config import Purpose
    from fetcher.store.engine import create_engine, database_error, ensure_schema, is_sqlite
    from fetcher.store.vacuum import postgresql_line, postgresql_server, vacuum, vacuumed_line

    def say_waiting(seconds: float) -> None:
        line = f"a reader holds the write-ahead log: waiting up to {seconds:g} s for it to finish…"
        ctx.err.print(line, markup=False, highlight=False, soft_wrap=True)

    async def action() -> int:
        engine = create_engine(ctx.config(Purpose.DATABASE).database)
        try:
            await ensure_schema(engine, create=False)  # reached and current, as every command checks
            if not is_sqlite(engine):
                line = postgresql_line(engine, await postgresql_server(engine))
                ctx.err.print(line, markup=False, highlight=False, soft_wrap=True)
                return 0
            done = await vacuum(engine, check_disk=not skip_disk_check, waiting=say_waiting)
        except DBAPIError as error:  # e.g. not a SQLite file: one line naming it
            raise database_error(error, engine) from None
        finally:
            await engine.dispose()
        ctx.err.print(vacuumed_line(engine, done), markup=False, highlight=False, soft_wrap=True)
        return 0

    run_async(ctx, action())
