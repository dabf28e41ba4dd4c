"""`fetcher config init` and `fetcher config check`."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async, run_sync
from fetcher.cli.group import main

log = logging.getLogger("fetcher.cli")


@main.group("config")
def config_group() -> None:
    """Start, inspect and check the configuration."""


@config_group.command("init")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def config_init(ctx: Context, path: Path | None) -> None:
    """Write a commented starting configuration from the example that ships with the fetcher, and say what to
    fill in. PATH defaults to --config, else $FETCHER_CONFIG, else ./fetcher.toml; an existing file is never
    overwritten."""
    from rich.markup import escape

    from fetcher.config import DEFAULT_FILE, ENV_CONFIG
    from fetcher.onboarding import FILL_IN, write_starting_config

    def action() -> int:
        target = path or Path(ctx.config_path or os.environ.get(ENV_CONFIG) or DEFAULT_FILE)
        write_starting_config(target)
        shown = escape(str(target))
        ctx.err.print(f"Wrote {shown} (mode 600). Fill in:", highlight=False)
        for item in FILL_IN:
            ctx.err.print(f"  - {escape(item)}", highlight=False, soft_wrap=True)
        ctx.err.print(f"Then: fetcher --config {shown} config check --online", highlight=False, soft_wrap=True)
        return 0

    run_sync(ctx, action)


@config_group.command("check")
@click.option(
    "--online",
    is_flag=True,
    help="Check for real: the database connects and its schema is current, and each enabled tenant gets a token "
    "and a one-day answer ($top=1); each failure is one line with its fix.",
)
@click.option("--verbose", "detail", is_flag=True, help="Per-tenant detail (with --online: the passing tenants too).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: the whole configuration as the fetcher sees it, secrets shown by reference.",
)
@click.pass_obj
def config_check(ctx: Context, online: bool, detail: bool, fmt: str) -> None:
    """Validate the configuration and summarise it: counts, endpoints, database, which secrets are set (never
    their values). Exit 0 only when everything checked passes."""
    import orjson

    from fetcher.config import redacted
    from fetcher.onboarding import check_online, database_folder_problem, placeholders, summary_lines

    verbose = detail or ctx.verbosity > 0

    async def action() -> int:
        config = ctx.config()
        folder = None if online else database_folder_problem(config)  # --online says it as its error
        checked = [*placeholders(config), *([folder] if folder is not None else [])]
        for line in checked:
            log.warning("%s: %s", config.path, line)
        if fmt == "json":  # its warnings: the file's, then what the checks above found (as said on stderr)
            data = redacted(config)
            data["warnings"] = [*data.get("warnings", []), *checked]
            ctx.console.print_json(orjson.dumps(data).decode())
        else:
            for line in summary_lines(config, verbose=verbose, online=online):
                ctx.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if not online:
            return 0
        from fetcher.signin import refuse_what_cannot_sign_in  # only --online signs in

        refuse_what_cannot_sign_in(config, config.enabled_tenants, "config check --online")
        result = await check_online(config, datetime.now(UTC))
        for line in result.lines(verbose=verbose):
            ctx.console.print(line, markup=False, highlight=False, soft_wrap=True)
        passed = sum(check.ok for check in result.checks)
        database = "database FAILED" if result.database_problem else "database ok"
        database = "database not created yet" if result.database_missing else database
        ctx.err.print(f"online: {database}, {passed} of {len(result.checks)} tenant(s) ok", highlight=False)
        return result.exit_code  # a failed discovery: 4, as `run`

    run_async(ctx, action())
