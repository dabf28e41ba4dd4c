"""`fetcher metrics`: the OpenMetrics text for Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async
from fetcher.cli.group import main
from fetcher.cli.options import OutputFile


@main.command("metrics")
@click.option(
    "--output",
    type=OutputFile(),
    metavar="FILE",
    help="Write to FILE, replaced atomically (node_exporter's textfile collector), instead of standard output.",
)
@click.pass_obj
def metrics_command(ctx: Context, output: Path | None) -> None:
    """Scores, runs and open alerts in the OpenMetrics text format, for Prometheus. With tenants_source =
    "partner", a series per customer the last discovery listed (as `status` and `report`)."""
    from fetcher.config import Purpose
    from fetcher.metrics import exposition, read_snapshot
    from fetcher.outfile import replace_atomically
    from fetcher.partner import with_known_tenants
    from fetcher.store.engine import existing_database

    async def action() -> int:
        config = await with_known_tenants(ctx.config(Purpose.DATABASE))  # tenants_source = "partner"
        async with existing_database(config.database) as engine:  # reads: a missing database is an error
            snapshot = await read_snapshot(engine, config, datetime.now(UTC))
        text = exposition(snapshot)
        if output is None:
            ctx.write(text.decode())
        else:
            replace_atomically(output, text)
        return 0

    run_async(ctx, action())
