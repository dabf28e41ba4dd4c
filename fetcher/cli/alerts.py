"""`fetcher alerts`: evaluate the [alerts] rules now."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import orjson

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async
from fetcher.cli.group import main
from fetcher.errors import ConfigError


@main.command("alerts")
@click.option("--dry-run", is_flag=True, help="Evaluate and show what would be sent; change and send nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--drop-channel",
    "drop",
    multiple=True,
    metavar="NAME",
    help="Drop the messages still owed to channel NAME, which is no longer in [[alerts.channels]] (they are "
    "listed as orphaned); evaluates nothing. Repeatable. A NAME owed nothing drops nothing and says which "
    "channels are owed messages (exit 0); a configured channel or an empty NAME is refused (exit 2).",
)
@click.pass_obj
def alerts_command(ctx: Context, dry_run: bool, fmt: str, drop: tuple[str, ...]) -> None:
    """Evaluate the [alerts] rules now: what is open, what is sent (or would be) and to whom. With
    tenants_source = "partner", for the customers the last discovery listed (as `status` and `report`).
    Messages owed to a channel removed from the configuration are listed as orphaned, with a warning saying
    how to drop them (`--drop-channel NAME`).

    Exit 1 when a message could not be delivered (it stays owed for the next evaluation).
    """
    from fetcher.alerts.engine import drop_channel, evaluate_alerts
    from fetcher.alerts.show import as_json, as_table
    from fetcher.config import Purpose
    from fetcher.partner import with_known_tenants

    async def dropping() -> int:
        if dry_run:
            raise ConfigError("--drop-channel deletes owed messages; it cannot be combined with --dry-run")
        done = await drop_channel(ctx.config(purpose=Purpose.DATABASE), drop)
        if fmt == "json":
            rows = [
                {"channel": name, "dropped": count, "hint": None if count else done.hint(name)}
                for name, count in done.dropped.items()
            ]
            ctx.console.out(orjson.dumps({"channels": rows}).decode(), highlight=False)
            return 0
        for name, count in done.dropped.items():
            line = f"channel {name}: {count} owed message(s) dropped" if count else f"channel {name}: {done.hint(name)}"
            ctx.console.print(line, markup=False, highlight=False, soft_wrap=True)
        return 0

    async def action() -> int:
        config = ctx.config(purpose=Purpose.DATABASE if dry_run else Purpose.ALERTS)
        if not config.alerts.rules:
            raise ConfigError(f"{config.path}: no [[alerts.rules]] to evaluate (see config.example.toml)")
        config = await with_known_tenants(config)  # tenants_source = "partner": the last discovered customers
        evaluation = await evaluate_alerts(config, config.alerts, now=datetime.now(UTC), dry_run=dry_run)
        if fmt == "json":
            ctx.console.out(as_json(evaluation, config.alerts).decode(), highlight=False, end="")
        else:
            ctx.console.print(as_table(evaluation, config.alerts))
        return 1 if evaluation.failed else 0

    run_async(ctx, dropping() if drop else action())
