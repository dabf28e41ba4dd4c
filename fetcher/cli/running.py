"""What the fetching commands share: the shard and tenants of a run, signals wired to a clean stop, the
summary and exit code, and the arguments that resume a backfill."""

from __future__ import annotations

import logging
import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from fetcher.cli.context import Context

if TYPE_CHECKING:
    from fetcher.config import Config, TenantConfig
    from fetcher.models import Shard
    from fetcher.outcome import RunReport
    from fetcher.runner import Run

log = logging.getLogger("fetcher.cli")


def run_shard(config: Config, option: str | None, tenants: Sequence[str]) -> Shard | None:
    """The run's shard: `--shard`, else the environment's, which a run of named tenants ignores."""
    from fetcher.plan import shard_from

    environ: Mapping[str, str] = os.environ if option is not None or not tenants else {}
    return shard_from(option, environ, config.fetch.shards)


def check_usage(config: Config, option: str | None, tenants: Sequence[str]) -> None:
    """The command line's own mistakes (a bad shard, a `--tenant` that is not a GUID or comes with a shard),
    said before partner discovery or a token asks anything of Entra ID or Graph."""
    from fetcher.plan import check_tenant_options

    check_tenant_options(tenants, run_shard(config, option, tenants))


def shard_and_tenants(
    config: Config, option: str | None, tenants: Sequence[str]
) -> tuple[Shard | None, list[TenantConfig]]:
    """The run's shard (`run_shard`) and its tenants."""
    from fetcher.plan import select_tenants

    shard = run_shard(config, option, tenants)
    chosen = select_tenants(config, tenants, shard)
    if shard is not None:
        log.info("shard %s: %d of the %d enabled tenants", shard, len(chosen), len(config.enabled_tenants))
    return shard, chosen


async def discover_stoppably(ctx: Context, configured: Config, now: datetime) -> tuple[Config, int | None]:
    """The partner's customers (`with_discovered_tenants`) with SIGINT/SIGTERM wired: a signal abandons the
    discovery, says so as a stop later in the run does, and the run then starts stopped (its ledger row and
    summary: interrupted, every tenant not started) with the customers last discovered. Returns the signal."""
    import asyncio

    from fetcher.cli.exits import stop_signals
    from fetcher.errors import FetcherError
    from fetcher.partner import with_discovered_tenants, with_known_tenants

    with stop_signals() as received:
        try:
            config, _ = await with_discovered_tenants(configured, now)
            return config, None
        except asyncio.CancelledError:
            if not received:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
    ctx.err.print(stop_notice(received[0], terminal=ctx.err.is_terminal), markup=False, highlight=False)
    try:
        return await with_known_tenants(configured), received[0]
    except FetcherError:  # no database yet: nothing was discovered before either
        return configured, received[0]


async def execute(ctx: Context, run: Run, stopped_by: int | None = None) -> RunReport:
    """Run with SIGINT/SIGTERM wired to a clean stop; a second signal exits at once. `stopped_by`: a signal that
    came before the run (during discovery): it starts stopped, and the next signal exits at once."""
    import asyncio

    loop = asyncio.get_running_loop()
    received: list[int] = []
    if stopped_by is not None:
        received.append(stopped_by)
        run.stop(stopped_by)

    def on_signal(number: int) -> None:
        if received:
            os._exit(128 + number)  # the databases roll back the open transaction; the lease is reclaimed
        received.append(number)
        ctx.err.print(stop_notice(number, terminal=ctx.err.is_terminal), markup=False, highlight=False)
        run.stop(number)

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    try:
        return await run.execute()
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def stop_notice(number: int, *, terminal: bool) -> str:
    """What a fetching command says when a signal stops it. "Press again" only for Ctrl-C at a terminal: a
    SIGTERM comes from systemd, Kubernetes or `kill`, where nobody is there to press anything."""
    name = signal.Signals(number).name
    if number == signal.SIGINT and terminal:
        return f"\n{name}: finishing the writes in progress; press again to quit at once"
    return f"{name}: finishing the writes in progress; a second signal quits at once"


def summarise(ctx: Context, report: RunReport, resume: Sequence[str] | None = None) -> int:
    """The run's summary (grouped failures; per tenant with -v), and how to continue an interrupted backfill."""
    from fetcher.output import summary_table
    from fetcher.tables import terminal_width

    if ctx.verbosity >= 0 and ctx.log_format == "text" and report.counters.tenants_done:
        ctx.err.print(summary_table(report, width=terminal_width(ctx.err), verbose=ctx.verbosity > 0))
    if resume is not None and report.stopped_by is not None:
        command = shlex.join(["fetcher", *(["--config", ctx.config_path] if ctx.config_path else []), *resume])
        if ctx.log_format == "text":
            ctx.err.print(f"to continue: {command}", markup=False, highlight=False)
        else:
            log.warning("to continue: %s", command)
    return report.exit_code


def resume_args(
    days: int | None, since: datetime | None, tenants: Sequence[str], shard: str | None, no_alerts: bool
) -> list[str]:
    """`fetcher backfill --resume` with the window, tenants and shard an interrupted backfill was given."""
    args = ["backfill", "--resume"]
    args += ["--days", str(days)] if days is not None else []
    args += ["--since", f"{since:%Y-%m-%d}"] if since is not None else []
    args += [part for tenant in tenants for part in ("--tenant", tenant)]
    args += ["--shard", shard] if shard else []
    return args + (["--no-alerts"] if no_alerts else [])
