"""`fetcher tenants discover` and `fetcher tenants check`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async
from fetcher.cli.group import main
from fetcher.cli.options import tenant_option
from fetcher.errors import ConfigError


@main.group("tenants")
def tenants_group() -> None:
    """Discover the partner's customer tenants and keep the tenants file in sync."""


@tenants_group.command("discover")
@click.option(
    "--write",
    "write_to",
    type=click.Path(path_type=Path),
    help="Merge into this CSV tenants file (default: the configured tenants_file).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def tenants_discover_command(ctx: Context, write_to: Path | None, dry_run: bool, fmt: str) -> None:
    """List the partner's customers ([partner] source: GDAP relationships and/or contracts) and merge them
    into the tenants file: new ones added, your names and enabled flags kept, missing ones marked gone,
    display names changed upstream since the last discovery (kept in the database) reported, and a name in
    the file that was the previous display name renamed with it. Exit 3 when the file cannot be written,
    4 when Entra ID or Graph refused or failed or listed no customer (nothing is written then)."""
    from fetcher.config import Purpose
    from fetcher.discovery import (
        merge,
        read_tenants_file,
        refuse_unwritable,
        render_tenants_file,
    )
    from fetcher.outfile import replace_atomically
    from fetcher.output import discovery_json, discovery_summary, discovery_table
    from fetcher.partner import discover_customers, last_discovery, previous_names, record_discovery
    from fetcher.tables import terminal_width

    async def action() -> int:
        config = ctx.config(Purpose.DISCOVER)
        partner = config.partner
        assert partner is not None  # Purpose.DISCOVER requires [partner]
        target = write_to or config.tenants_file
        if target is None and not dry_run:
            raise ConfigError("tenants discover: no file to write: give --write FILE or set tenants_file")
        if target and not dry_run:
            refuse_unwritable(target)  # a typo or a folder is said before Graph is asked
        existing = read_tenants_file(target) if target else []  # a malformed file stops us before Graph
        last = await last_discovery(config, partner)  # so does the database
        previous = previous_names(last, partner.source)
        found = await discover_customers(config, partner)  # exit 4 when Graph fails or lists no customer
        now = datetime.now(UTC)
        merged = merge(existing, found.customers, now.date(), previous, last.earlier if last else {})
        if target and not dry_run:
            replace_atomically(target, render_tenants_file(merged.rows).encode())
            # after the file: a failure reports renames again
            await record_discovery(config, partner, found, now, previous)
        if fmt == "json":
            ctx.console.out(discovery_json(found, merged, target, written=not dry_run).decode(), highlight=False)
        else:
            ctx.console.print(discovery_table(merged, width=terminal_width(ctx.console)))
            ctx.err.print(discovery_summary(found, merged, target, written=bool(target) and not dry_run))
        return 0

    run_async(ctx, action())


@tenants_group.command("check")
@tenant_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def tenants_check_command(ctx: Context, tenants: Sequence[str], fmt: str) -> None:
    """Per tenant, get a token and ask for one day ($top=1), and say what the answer means, with the fix.

    States: ok, no consent (with the admin-consent link), permission missing, app disabled, tenant not
    found / wrong cloud, no data yet, throttled, unreachable (and credential refused, failed). Uses the
    run's limits, concurrency and retries. With tenants_source = "partner", the discovered customers.
    Exit 0 only when every tenant is ok, else 1; 4 when partner discovery gives no customer list.
    """
    from fetcher.check import check_line, check_tenants, checks_json, checks_summary
    from fetcher.partner import with_checked_tenants
    from fetcher.plan import check_tenant_options, select_tenants
    from fetcher.signin import refuse_what_cannot_sign_in

    async def action() -> int:
        configured = ctx.config()
        check_tenant_options(tenants, None)  # before discovery asks Graph for the tenants
        refuse_what_cannot_sign_in(configured, None, "tenants check")
        config = await with_checked_tenants(configured, datetime.now(UTC))  # tenants_source = "partner"
        chosen = select_tenants(config, tenants)
        refuse_what_cannot_sign_in(config, chosen, "tenants check")
        checks = await check_tenants(config, chosen)
        if fmt == "json":
            ctx.console.out(checks_json(checks).decode(), highlight=False)
        else:
            for check in checks:
                ctx.console.print(check_line(check), markup=False, highlight=False, soft_wrap=True)
        ctx.err.print(checks_summary(checks), markup=False, highlight=False, soft_wrap=True)
        return 0 if all(check.ok for check in checks) else 1

    run_async(ctx, action())
