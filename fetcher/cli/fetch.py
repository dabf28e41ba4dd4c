"""`fetcher run`, `fetcher backfill` and `fetcher get`: the commands that fetch from Graph."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import run_async
from fetcher.cli.group import main, tune_long_run
from fetcher.cli.options import alerts_option, shard_option, tenant_option
from fetcher.cli.running import check_usage, discover_stoppably, execute, resume_args, shard_and_tenants, summarise
from fetcher.text import printable


@main.command("run")
@tenant_option
@shard_option
@alerts_option
@click.pass_obj
def run_command(ctx: Context, tenants: Sequence[str], shard: str | None, no_alerts: bool) -> None:
    """Fetch what is new since the last run (for cron): per tenant, the days since its newest stored day, and
    its control profiles once they are [fetch] profiles_max_age_hours old. With tenants_source = "partner",
    the tenants are the partner's customers, discovered first (reused for [partner] refresh_hours)."""
    from fetcher.alerts.after_run import evaluate_after_run
    from fetcher.plan import plan_incremental, profiles_policy
    from fetcher.runner import Run
    from fetcher.signin import refuse_what_cannot_sign_in

    tune_long_run()

    async def action() -> int:
        now = datetime.now(UTC)
        configured = ctx.config()
        check_usage(configured, shard, tenants)
        refuse_what_cannot_sign_in(configured, None, "run")
        config, stopped_by = await discover_stoppably(ctx, configured, now)
        slice_, chosen = shard_and_tenants(config, shard, tenants)
        refuse_what_cannot_sign_in(config, chosen, "run")
        planner = plan_incremental(
            chosen, config.fetch.history_days, now.date(), profiles=profiles_policy(config), now=now
        )
        report = await execute(
            ctx, Run(config, "run", planner, observer=ctx.observer(), prompt=ctx.prompt, shard=slice_), stopped_by
        )
        code = summarise(ctx, report)
        if not no_alerts:
            await evaluate_after_run(config, report, slice_)
        return code

    run_async(ctx, action())


@main.command("backfill")
@click.option("--days", type=int, help="Window in days, 1 to 90 (default: [fetch] history_days; Graph keeps 90).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Fetch from this date (YYYY-MM-DD) on.")
@click.option(
    "--resume", is_flag=True, help="Skip tenants already done by the latest interrupted backfill (of this shard)."
)
@tenant_option
@shard_option
@alerts_option
@click.pass_obj
def backfill_command(
    ctx: Context,
    days: int | None,
    since: datetime | None,
    resume: bool,
    tenants: Sequence[str],
    shard: str | None,
    no_alerts: bool,
) -> None:
    """Fetch the whole window for every tenant, and its control profiles, and upsert them (safe to repeat).
    With tenants_source = "partner", the tenants are the partner's customers, discovered first."""
    from fetcher.alerts.after_run import evaluate_after_run
    from fetcher.plan import plan_backfill, profiles_policy, window_days
    from fetcher.runner import Run
    from fetcher.signin import refuse_what_cannot_sign_in

    tune_long_run()

    async def action() -> int:
        configured = ctx.config()
        window = window_days(
            days=days,
            since=since.date() if since else None,
            today=datetime.now(UTC).date(),
            default=configured.fetch.history_days,
        )
        check_usage(configured, shard, tenants)
        refuse_what_cannot_sign_in(configured, None, "backfill")
        config, stopped_by = await discover_stoppably(ctx, configured, datetime.now(UTC))
        slice_, chosen = shard_and_tenants(config, shard, tenants)
        refuse_what_cannot_sign_in(config, chosen, "backfill")
        planner = plan_backfill(
            chosen, window, resume=resume, today=datetime.now(UTC).date(), profiles=profiles_policy(config)
        )
        run = Run(config, "backfill", planner, observer=ctx.observer(), prompt=ctx.prompt, shard=slice_)
        report = await execute(ctx, run, stopped_by)
        code = summarise(ctx, report, resume=resume_args(days, since, tenants, shard, no_alerts))
        if not no_alerts:
            await evaluate_after_run(config, report, slice_)
        return code

    run_async(ctx, action())


@main.command("get")
@click.argument("score_id")
@click.option(
    "--tenant", "tenant_id", metavar="ID", help="Tenant (default, and the only one allowed: SCORE_ID's own tenant)."
)
@click.pass_obj
def get_command(ctx: Context, score_id: str, tenant_id: str | None) -> None:
    """Fetch one secureScore by id ({tenantId}_{yyyy-mm-dd}), store it and print it as JSON. With
    tenants_source = "partner", its tenant must be one of the partner's customers, discovered first (reused
    for [partner] refresh_hours)."""
    import orjson
    from rich.markup import escape

    from fetcher.output import LogObserver
    from fetcher.partner import with_discovered_tenants
    from fetcher.plan import get_target, plan_get, score_tenant
    from fetcher.runner import Run
    from fetcher.signin import refuse_what_cannot_sign_in

    async def action() -> int:
        configured = ctx.config()
        score_tenant(score_id, tenant_id)  # a mistyped id is said before discovery asks anything
        refuse_what_cannot_sign_in(configured, None, "get")
        config, _ = await with_discovered_tenants(configured, datetime.now(UTC))
        tenant = get_target(config, score_id, tenant_id)
        refuse_what_cannot_sign_in(config, [tenant], "get")
        run = Run(
            config, "get", plan_get(tenant, score_id), observer=LogObserver(), keep_objects=True, prompt=ctx.prompt
        )
        report = await execute(ctx, run)
        for outcome in report.outcomes:
            for obj in outcome.objects:
                ctx.console.print_json(orjson.dumps(obj).decode())
            if outcome.error_message:
                ctx.err.print(
                    f"[bold red]error:[/bold red] {escape(printable(outcome.error_message))}", highlight=False
                )
        return report.exit_code

    run_async(ctx, action())
