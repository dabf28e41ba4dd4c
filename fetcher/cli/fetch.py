"""The `fetcher` command: parse, load the configuration, call the library, map errors to exit codes.

Exit codes: 0 every tenant succeeded; 1 some failed (the others' data is stored) or, for `status`,
some tenant's data is stale; 2 usage or configuration error; 3 the database cannot be reached or
another run holds its lock; 4 every tenant failed (often one shared cause: credentials, network);
130/143 stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fetcher import __version__
from fetcher.errors import ConfigError, FetcherError
from fetcher.text import printable

# Each command imports what it uses, in its own body: `fetcher --help` then loads click and little else
# (issue 17: start-up was 1.1 s of imports), and the simulator and the report's HTML code load only for
# the commands that use them. tests/test_cli_startup.py holds the line.
if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.ext.asyncio import AsyncConnection

    from fetcher.config import Config, Purpose, TenantConfig
    from fetcher.models import Shard
    from fetcher.outcome import Observer, RunReport
    from fetcher.output import MoveProgressBar, MoveProgressLog
    from fetcher.runner import Run
    from fetcher.store.convert import StopRequest
    from fetcher.store.partition import Conversion

log = logging.getLogger("fetcher.cli")


@dataclass
class Context:
    """Options given before the subcommand."""

    config_path: str | None
    verbosity: int
    log_format: str
    console: Console
    err: Console

    def config(self, purpose: Purpose | None = None) -> Config:
        """The configuration, by default for fetching; `Purpose.DATABASE` for commands that never authenticate."""
        from fetcher.config import Purpose, find_config_file, load_config
        from fetcher.output import REDACTOR

        config = load_config(find_config_file(self.config_path), purpose=purpose or Purpose.FETCH)
        auths = [t.auth for t in config.tenants] + ([config.partner.auth] if config.partner else [])
        for auth in auths:
            for secret in (auth.client_secret, auth.certificate_password):
                if secret is not None and secret.reveal():
                    REDACTOR.add(secret.reveal())
        for channel in config.alerts.channels:
            for value in channel.secrets:
                REDACTOR.add(value)
        for warning in config.warnings:
            log.warning("%s: %s", config.path, warning)
        return config

    def prompt(self, text: str) -> None:
        """A device-code sign-in's URL and code, on standard error (above any progress bar)."""
        self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def observer(self) -> Observer:
        from fetcher.output import LogObserver, ProgressObserver

        if self.log_format == "text" and self.err.is_terminal and self.verbosity >= 0:
            return ProgressObserver(self.err)
        return LogObserver()


def _fail(err: Console, error: FetcherError) -> int:
    from rich.markup import escape

    err.print(
        f"[bold red]error:[/bold red] {escape(printable(str(error)))}", markup=True, highlight=False, soft_wrap=True
    )
    return error.exit_code


def _run_async(ctx: Context, coro: Coroutine[Any, Any, int]) -> None:
    """Run a command's coroutine; a FetcherError becomes its one line and exit code."""
    import asyncio

    try:
        code = asyncio.run(coro)
    except FetcherError as error:
        code = _fail(ctx.err, error)
    except KeyboardInterrupt:
        code = 130
    except Exception as error:
        failure = _database_failure(error)
        if failure is None:
            raise
        code = _fail(ctx.err, failure)
    sys.exit(code)


def _database_failure(error: Exception) -> FetcherError | None:
    """A database failure no command put in its own words (still one line, exit 3); None for anything else.

    A command that never loaded SQLAlchemy cannot have one, and is not made to load it here.
    """
    if "sqlalchemy.exc" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    from fetcher.store.engine import unexpected_database_error

    return unexpected_database_error(error) if isinstance(error, DBAPIError) else None


def _sync(ctx: Context, action: Callable[[], int]) -> None:
    try:
        code = action()
    except FetcherError as error:
        code = _fail(ctx.err, error)
    sys.exit(code)


def _tune_garbage_collector() -> None:
    """Collect cycles less often: a run allocates millions of short-lived, acyclic rows.

    With the default thresholds the collector ran every 700 allocations and kept rescanning the JSON and
    rows of every tenant in flight: a quarter of the CPU of a backfill (measured: 6.1 against 4.6 CPU
    seconds for 1,800 score-days). Reference counting frees those rows anyway; the objects made while
    importing and starting up are frozen out of the scans for good.

    Only `run`, `backfill` and `rebuild` call this, after importing what they use, and only when the
    command line is the process's own (`_Fetcher.main` read `sys.argv`): a test that invokes a command in
    its own process keeps that process's collector as it was.
    """
    if not _own_process:
        return
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


_own_process = False  # set by _Fetcher.main: True when the arguments came from sys.argv


GLOBAL_VALUE_OPTIONS = frozenset({"--config", "--log-format"})
GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet", "--log-sql"})


class _Fetcher(click.Group):
    """The `fetcher` group, which notes whether it was started from the process's own command line, and
    accepts its options (`--config`, `-v`, `-q`, `--log-format`, `--log-sql`) after the command too."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **extra: Any) -> Any:
        global _own_process
        _own_process = args is None
        return super().main(args, *rest, **extra)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _hoist(self, ctx, args))


def _global_option(token: str, command: click.Command) -> int:
    """How many tokens `token` (found after the command) takes as a global option: 0 if it is not one.

    A command's own option of the same name wins (so `config check --verbose` stays the command's).
    """
    name = token.split("=", 1)[0]
    own = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    if name in own:
        return 0
    if name in GLOBAL_VALUE_OPTIONS:
        return 1 if "=" in token else 2
    if token in GLOBAL_FLAGS or (len(token) > 2 and token[0] == "-" and set(token[1:]) == {"v"}):
        return 1
    return 0


def _value_options(command: click.Command) -> frozenset[str]:
    """The command's options that take a value (whose value must not be taken for a global option)."""
    return frozenset(
        opt
        for param in command.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for opt in param.opts
    )


def _hoist(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """`args` with the global options given after the (sub)command moved before it."""
    command: click.Command = group
    position = 0
    while position < len(args) and isinstance(command, click.Group):  # skip globals, find the command
        token = args[position]
        if token == "--":
            return args
        if token.startswith("-"):
            position += 2 if token in GLOBAL_VALUE_OPTIONS else 1
            continue
        found = command.get_command(ctx, token)
        if found is None:
            return args
        command, position = found, position + 1
    hoisted: list[str] = []
    rest = args[:position]
    values = _value_options(command)
    while position < len(args):
        token = args[position]
        if token == "--":
            rest += args[position:]
            break
        taken = _global_option(token, command)
        if taken:
            hoisted += args[position : position + taken]
            position += taken
            continue
        step = 2 if token in values else 1
        rest += args[position : position + step]
        position += step
    return hoisted + rest


@click.group(
    cls=_Fetcher,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar=None,
    help="Configuration file (default: $FETCHER_CONFIG, else ./fetcher.toml).",
)
@click.option("-v", "--verbose", count=True, help="More detail in logs (-vv: also the Azure SDK's).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per log line, for cron and log shippers.",
)
@click.option(
    "--log-sql",
    is_flag=True,
    envvar="FETCHER_LOG_SQL",
    help="Log every SQL statement the fetcher sends (never its parameters). Also $FETCHER_LOG_SQL=1.",
)
@click.version_option(__version__, prog_name="fetcher")
@click.pass_context
def main(
    click_ctx: click.Context, config_path: str | None, verbose: int, quiet: bool, log_format: str, log_sql: bool
) -> None:
    """Fetch Microsoft Secure Score history for many tenants into your own SQL database.

    The options below may also follow the command (`fetcher run --config x.toml -v`).

    \b
    Exit codes:
      0    every tenant succeeded
      1    some tenants failed (the others' data is stored); for status: an
           enabled tenant has no data or stale data
      2    usage or configuration error
      3    the database cannot be used, or another run holds its lock
      4    every tenant of the run failed (often one shared cause: a wrong
           secret, the network)
      130  stopped by SIGINT (143: SIGTERM)
    """
    from fetcher import logfields
    from fetcher.output import setup_logging
    from fetcher.tables import console_for

    err = console_for(stderr=True)
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity=verbosity, log_format=log_format, console=err, log_sql=log_sql)
    logfields.set_for_process(command=click_ctx.invoked_subcommand)
    click_ctx.obj = Context(config_path, verbosity, log_format, console_for(), err)


# --------------------------------------------------------------------------------------------- config


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

    _sync(ctx, action)


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
    from fetcher.onboarding import check_online, summary_lines

    verbose = detail or ctx.verbosity > 0

    async def action() -> int:
        config = ctx.config()
        if fmt == "json":
            ctx.console.print_json(orjson.dumps(redacted(config)).decode())
        else:
            for line in summary_lines(config, verbose=verbose):
                ctx.console.print(line, markup=False, highlight=False, soft_wrap=True)
        if not online:
            return 0
        _refuse_without_terminal(config, config.enabled_tenants, "config check --online")
        result = await check_online(config, datetime.now(UTC))
        for line in result.lines(verbose=verbose):
            ctx.console.print(line, markup=False, highlight=False, soft_wrap=True)
        passed = sum(check.ok for check in result.checks)
        database = "database FAILED" if result.database_problem else "database ok"
        database = "database not created yet" if result.database_missing else database
        ctx.err.print(f"online: {database}, {passed} of {len(result.checks)} tenant(s) ok", highlight=False)
        return 0 if result.ok else 1

    _run_async(ctx, action())


# ------------------------------------------------------------------------------------------- database


@main.command("migrate")
@click.option(
    "--skip-disk-check",
    is_flag=True,
    help="Start migration 0011 even if the disk seems to lack the free space it needs (also "
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
            with _migration_signals(stop) as received:
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

    _run_async(ctx, action())


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


@main.command("vacuum")
@click.option("--skip-disk-check", is_flag=True, help="Start even if the disks seem to lack the space VACUUM needs.")
@click.pass_obj
def vacuum_command(ctx: Context, skip_disk_check: bool) -> None:
    """SQLite: give the file's free pages back to the disk (VACUUM), e.g. after migration 0011 or `archive compact`.
    Needs about the live data's size free beside the database and in SQLite's temporary folder ($SQLITE_TMPDIR),
    and refuses to start without it; holds the run lock, so it never runs during a fetch (exit 3 if one is
    running). PostgreSQL: says why there is nothing to do (VACUUM FULL or pg_repack are your DBA's call)."""
    from fetcher.config import Purpose
    from fetcher.store.engine import create_engine, ensure_schema, is_sqlite
    from fetcher.store.vacuum import POSTGRESQL_ADVICE, vacuum, vacuumed_line

    async def action() -> int:
        engine = create_engine(ctx.config(Purpose.DATABASE).database)
        try:
            if not is_sqlite(engine):
                ctx.err.print(POSTGRESQL_ADVICE, markup=False, highlight=False, soft_wrap=True)
                return 0
            await ensure_schema(engine, create=False)
            done = await vacuum(engine, check_disk=not skip_disk_check)
        finally:
            await engine.dispose()
        ctx.err.print(vacuumed_line(engine, done), markup=False, highlight=False, soft_wrap=True)
        return 0

    _run_async(ctx, action())


@contextlib.contextmanager
def _migration_signals(stop: StopRequest) -> Iterator[list[int]]:
    """SIGINT/SIGTERM during `fetcher migrate`: during the batched move, a stop after the batch in progress
    (`stop`); otherwise the step in progress (one transaction) is rolled back at once, as before. A second
    signal exits at once. Yields the signals received."""
    import asyncio

    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    received: list[int] = []

    def on_signal(number: int) -> None:
        if received:
            os._exit(128 + number)  # the database rolls back the batch in progress
        received.append(number)
        if stop.moving:
            stop.signal_number = number
        elif task is not None:
            task.cancel()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    try:
        yield received
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def _interrupted(ctx: Context, progress: MoveProgressBar | MoveProgressLog, message: str, code: int) -> int:
    """The one line an interrupted `fetcher migrate` ends with, below its progress bar."""
    progress.close()
    ctx.err.print(message, markup=False, highlight=False, soft_wrap=True)
    return code


# ---------------------------------------------------------------------------------------------- runs


def _tenant_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--tenant", "tenants", multiple=True, metavar="ID", help="Only this tenant (repeat for several)."
    )(fn)


def _alerts_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--no-alerts", is_flag=True, help="Do not evaluate the [alerts] rules after the run.")(fn)


def _shard_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--shard",
        metavar="K/N",
        help="Only shard K of N: the tenants whose hashed id falls in slice K (also $FETCHER_SHARD=K/N, or "
        "$JOB_COMPLETION_INDEX with [fetch] shards = N). Shards run side by side on PostgreSQL; alerts are left "
        "to `fetcher alerts`.",
    )(fn)


def _shard(config: Config, option: str | None, tenants: Sequence[str]) -> Shard | None:
    """The run's shard: `--shard`, else the environment's, which a run of named tenants ignores."""
    from fetcher.plan import shard_from

    environ: Mapping[str, str] = os.environ if option is not None or not tenants else {}
    return shard_from(option, environ, config.fetch.shards)


def _check_usage(config: Config, option: str | None, tenants: Sequence[str]) -> None:
    """The command line's own mistakes (a bad shard, a `--tenant` that is not a GUID or comes with a shard),
    said before partner discovery or a token asks anything of Entra ID or Graph."""
    from fetcher.plan import check_tenant_options

    check_tenant_options(tenants, _shard(config, option, tenants))


def _shard_and_tenants(
    config: Config, option: str | None, tenants: Sequence[str]
) -> tuple[Shard | None, list[TenantConfig]]:
    """The run's shard (`_shard`) and its tenants."""
    from fetcher.plan import select_tenants

    shard = _shard(config, option, tenants)
    chosen = select_tenants(config, tenants, shard)
    if shard is not None:
        log.info("shard %s: %d of the %d enabled tenants", shard, len(chosen), len(config.enabled_tenants))
    return shard, chosen


async def _execute(ctx: Context, run: Run) -> RunReport:
    """Run with SIGINT/SIGTERM wired to a clean stop; a second signal exits at once."""
    import asyncio

    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(number: int) -> None:
        if received:
            os._exit(128 + number)  # the databases roll back the open transaction; the lease is reclaimed
        received.append(number)
        ctx.err.print(f"\n{signal.Signals(number).name}: finishing the writes in progress; press again to quit at once")
        run.stop(number)

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    try:
        return await run.execute()
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def _refuse_without_terminal(config: Config, tenants: Sequence[TenantConfig] | None, command: str) -> None:
    """device_code needs a person to answer its prompt: under cron (no terminal) refuse before anything starts.

    `tenants` None: before discovery, when only the partner's own sign-in is known.
    """
    from fetcher.models import TenantRef
    from fetcher.signin import has_terminal, no_terminal_refusal

    if tenants is None:
        partner = config.partner
        waiting = [TenantRef(partner.tenant_id)] if partner and partner.auth.method == "device_code" else []
    else:
        waiting = [TenantRef.of(t) for t in tenants if t.auth.method == "device_code"]
    if waiting and not has_terminal():
        raise ConfigError(no_terminal_refusal(waiting[0], command))


def _report(ctx: Context, report: RunReport, resume: Sequence[str] | None = None) -> int:
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


def _resume_args(
    days: int | None, since: datetime | None, tenants: Sequence[str], shard: str | None, no_alerts: bool
) -> list[str]:
    """`fetcher backfill --resume` with the window, tenants and shard an interrupted backfill was given."""
    args = ["backfill", "--resume"]
    args += ["--days", str(days)] if days is not None else []
    args += ["--since", f"{since:%Y-%m-%d}"] if since is not None else []
    args += [part for tenant in tenants for part in ("--tenant", tenant)]
    args += ["--shard", shard] if shard else []
    return args + (["--no-alerts"] if no_alerts else [])


@main.command("run")
@_tenant_option
@_shard_option
@_alerts_option
@click.pass_obj
def run_command(ctx: Context, tenants: Sequence[str], shard: str | None, no_alerts: bool) -> None:
    """Fetch what is new since the last run (for cron): per tenant, the days since its newest stored day, and
    its control profiles once they are [fetch] profiles_max_age_hours old. With tenants_source = "partner",
    the tenants are the partner's customers, discovered first (reused for [partner] refresh_hours)."""
    from fetcher.partner import with_discovered_tenants
    from fetcher.plan import plan_incremental, profiles_policy
    from fetcher.runner import Run

    _tune_garbage_collector()

    async def action() -> int:
        now = datetime.now(UTC)
        configured = ctx.config()
        _check_usage(configured, shard, tenants)
        _refuse_without_terminal(configured, None, "run")
        config, _ = await with_discovered_tenants(configured, now)
        slice_, chosen = _shard_and_tenants(config, shard, tenants)
        _refuse_without_terminal(config, chosen, "run")
        planner = plan_incremental(
            chosen, config.fetch.history_days, now.date(), profiles=profiles_policy(config), now=now
        )
        report = await _execute(
            ctx, Run(config, "run", planner, observer=ctx.observer(), prompt=ctx.prompt, shard=slice_)
        )
        code = _report(ctx, report)
        if not no_alerts:
            await _evaluate_after_run(config, report, slice_)
        return code

    _run_async(ctx, action())


@main.command("backfill")
@click.option("--days", type=int, help="Window in days, 1 to 90 (default: [fetch] history_days; Graph keeps 90).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), help="Fetch from this date (YYYY-MM-DD) on.")
@click.option(
    "--resume", is_flag=True, help="Skip tenants already done by the latest interrupted backfill (of this shard)."
)
@_tenant_option
@_shard_option
@_alerts_option
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
    from fetcher.partner import with_discovered_tenants
    from fetcher.plan import plan_backfill, profiles_policy, window_days
    from fetcher.runner import Run

    _tune_garbage_collector()

    async def action() -> int:
        configured = ctx.config()
        window = window_days(
            days=days,
            since=since.date() if since else None,
            today=datetime.now(UTC).date(),
            default=configured.fetch.history_days,
        )
        _check_usage(configured, shard, tenants)
        _refuse_without_terminal(configured, None, "backfill")
        config, _ = await with_discovered_tenants(configured, datetime.now(UTC))
        slice_, chosen = _shard_and_tenants(config, shard, tenants)
        _refuse_without_terminal(config, chosen, "backfill")
        planner = plan_backfill(
            chosen, window, resume=resume, today=datetime.now(UTC).date(), profiles=profiles_policy(config)
        )
        report = await _execute(
            ctx, Run(config, "backfill", planner, observer=ctx.observer(), prompt=ctx.prompt, shard=slice_)
        )
        code = _report(ctx, report, resume=_resume_args(days, since, tenants, shard, no_alerts))
        if not no_alerts:
            await _evaluate_after_run(config, report, slice_)
        return code

    _run_async(ctx, action())


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

    async def action() -> int:
        configured = ctx.config()
        score_tenant(score_id, tenant_id)  # a mistyped id is said before discovery asks anything
        _refuse_without_terminal(configured, None, "get")
        config, _ = await with_discovered_tenants(configured, datetime.now(UTC))
        tenant = get_target(config, score_id, tenant_id)
        _refuse_without_terminal(config, [tenant], "get")
        run = Run(
            config, "get", plan_get(tenant, score_id), observer=LogObserver(), keep_objects=True, prompt=ctx.prompt
        )
        report = await _execute(ctx, run)
        for outcome in report.outcomes:
            for obj in outcome.objects:
                ctx.console.print_json(orjson.dumps(obj).decode())
            if outcome.error_message:
                ctx.err.print(
                    f"[bold red]error:[/bold red] {escape(printable(outcome.error_message))}", highlight=False
                )
        return report.exit_code

    _run_async(ctx, action())


@main.command("rebuild")
@_tenant_option
@click.pass_obj
def rebuild_command(ctx: Context, tenants: Sequence[str]) -> None:
    """Derive the normalized tables again from the raw archive (after a normalization fix or a new column)."""
    from fetcher.config import Purpose
    from fetcher.plan import plan_rebuild
    from fetcher.runner import Run

    _tune_garbage_collector()

    async def action() -> int:
        config = ctx.config(Purpose.DATABASE)
        run = Run(config, "rebuild", plan_rebuild(config, tenants), observer=ctx.observer())
        return _report(ctx, await _execute(ctx, run))

    _run_async(ctx, action())


@main.group("archive")
def archive_group() -> None:
    """The raw archive (raw_payloads, raw_control_profiles): its compression."""


@archive_group.command("compact")
@click.pass_obj
def archive_compact_command(ctx: Context) -> None:
    """Train the archive's zstd dictionaries once it holds enough objects, and recompress every body still
    zlib with them, in batches, each its own transaction: safe to stop and run again. Every body is read
    (zstd ones too), so a body that cannot be read is named (tenant and day): exit 3. A run or backfill
    recompresses after it too, for a bounded number of bodies, without reading the zstd ones."""
    from fetcher.config import Purpose
    from fetcher.output import compaction_line, progress_bar
    from fetcher.store.compaction import ARCHIVES, compact, count_bodies, unreadable
    from fetcher.store.engine import create_engine, ensure_schema
    from fetcher.store.vacuum import free_pages_hint

    async def action() -> int:
        engine = create_engine(ctx.config(Purpose.DATABASE).database)
        try:
            await ensure_schema(engine, create=False)
            failures = []
            for archive in ARCHIVES:
                total = await count_bodies(engine, archive)
                with progress_bar(ctx.err, archive.table.name, total, shown=ctx.verbosity >= 0) as advance:
                    done = await compact(engine, archive, datetime.now(UTC), progress=advance, verify=True)
                ctx.err.print(compaction_line(archive.table.name, total, done), markup=False, highlight=False)
                for error in done.errors:
                    log.debug("archive: %s", error)
                failure = unreadable(done)
                if failure is not None:
                    failures.append(failure)
            hint = await free_pages_hint(engine)  # rewritten bodies leave free pages in a SQLite file
            if hint is not None:
                ctx.err.print(hint, markup=False, highlight=False, soft_wrap=True)
        finally:
            await engine.dispose()
        if failures:
            raise failures[0]
        return 0

    _run_async(ctx, action())


@main.command("status")
@click.option(
    "--max-age",
    type=float,
    default=48.0,
    show_default=True,
    metavar="HOURS",
    help="A tenant whose newest day (counted from its midnight UTC) is older than this is stale. Graph keeps "
    "one score a day, so under 24 hours every tenant is always stale.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_tenant_option
@click.pass_obj
def status_command(ctx: Context, max_age: float, fmt: str, tenants: Sequence[str]) -> None:
    """A row per tenant: newest day, last success, state (no data, stale, failing: as `report` says), last error.
    Exit 1 when an enabled tenant has no data or stale data."""
    from fetcher.config import Purpose
    from fetcher.output import status_json, status_table
    from fetcher.partner import with_known_tenants
    from fetcher.plan import select_tenants
    from fetcher.status import read_status
    from fetcher.tables import terminal_width

    async def action() -> int:
        config = await with_known_tenants(ctx.config(Purpose.DATABASE))
        chosen = select_tenants(config, tenants) if tenants else None
        status = await read_status(config, chosen, now=datetime.now(UTC), max_age=timedelta(hours=max_age))
        if fmt == "json":
            ctx.console.out(status_json(status).decode(), highlight=False)
        else:
            ctx.console.print(status_table(status, width=terminal_width(ctx.console)))
        if status.without_data:
            ctx.err.print(f"{len(status.without_data)} enabled tenant(s) have no data")
        if status.stale:
            ctx.err.print(f"{len(status.stale)} enabled tenant(s) have no data newer than {max_age:g} hours")
        if status.short:
            ctx.err.print(
                f"{len(status.short)} enabled tenant(s) hold fewer days than [fetch] history_days = "
                f"{status.history_days}: `fetcher backfill --tenant ID` fetches what Graph still has",
                markup=False,
                highlight=False,
            )
        return 1 if status.out_of_date else 0

    _run_async(ctx, action())


@main.command("report")
@click.option(
    "--tenant",
    "tenant_id",
    metavar="ID",
    help="One tenant: its trend, the controls that moved it (by title, Microsoft's changes told apart), its next "
    "best actions, state changes, score by category, standing; with --actions, that tenant's actions only.",
)
@click.option(
    "--actions",
    is_flag=True,
    help="Improvement actions across the portfolio: each control's points available in all tenants, biggest "
    "total gain first.",
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Window start for --tenant and the HTML charts (default: 90 days up to the newest day).",
)
@click.option(
    "--sort",
    type=click.Choice(["percent", "name", "change"]),
    default="percent",
    show_default=True,
    help="percent: weakest first; change: largest 7-day slip first; name: A to Z.",
)
@click.option(
    "--max-age",
    type=float,
    default=48.0,
    show_default=True,
    metavar="HOURS",
    help="A tenant whose newest day is older than this is marked stale.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table", show_default=True
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the report to FILE instead of the terminal.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write a self-contained HTML page with charts to FILE (then text only with --output).",
)
@click.option(
    "--zoom",
    is_flag=True,
    help="HTML charts: fit each chart's y axis to its own values instead of the shared 0-100 % axis "
    "(small moves look large; charts no longer compare by eye).",
)
@click.pass_obj
def report_command(
    ctx: Context,
    tenant_id: str | None,
    actions: bool,
    since: datetime | None,
    sort: str,
    max_age: float,
    fmt: str,
    output: Path | None,
    html_path: Path | None,
    zoom: bool,
) -> None:
    """A row per tenant, weakest first, with 7- and 30-day changes; with --tenant, why one tenant moved and what
    to fix next; with --actions, which changes would raise the most tenants."""
    from fetcher.config import Purpose
    from fetcher.partner import with_known_tenants
    from fetcher.report import Format, ReportRequest, Sort, produce

    async def action() -> int:
        request = ReportRequest(
            tenant_id=tenant_id,
            actions=actions,
            since=since.date() if since else None,
            sort=Sort(sort),
            max_age=timedelta(hours=max_age),
            fmt=Format(fmt),
            output=output,
            html=html_path,
            zoom=zoom,
        )
        return await produce(await with_known_tenants(ctx.config(Purpose.DATABASE)), request, ctx.console, ctx.err)

    _run_async(ctx, action())


# ----------------------------------------------------------------------------------------------- alerts


async def _evaluate_after_run(config: Config, report: RunReport, shard: Shard | None = None) -> None:
    """The [alerts] rules after a run or backfill, unless it is a shard: the rules see every tenant, so they
    are evaluated once after all shards, by `fetcher alerts`. Whatever happens here, the exit code stands."""
    if not config.alerts.rules or report.stopped_by is not None:
        return
    if shard is not None:
        log.info("shard %s: alerts not evaluated by a shard; run `fetcher alerts` once every shard is done", shard)
        return
    from fetcher.alerts.engine import evaluate_alerts

    try:
        evaluation = await evaluate_alerts(config, config.alerts, now=datetime.now(UTC))
    except FetcherError as error:
        log.warning("alerts not evaluated: %s", error)
        return
    except Exception as error:  # the run's data is stored: a fault in alerting must not change its outcome
        log.error("alerts not evaluated: %s: %s", type(error).__name__, error)
        return
    change = evaluation.change
    log.info(
        "alerts: %d opened, %d resolved, %d message(s) sent, %d failed (kept for the next evaluation)",
        len(change.opened),
        len(change.resolved),
        len(evaluation.sent),
        len(evaluation.failed),
    )


@main.command("alerts")
@click.option("--dry-run", is_flag=True, help="Evaluate and show what would be sent; change and send nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def alerts_command(ctx: Context, dry_run: bool, fmt: str) -> None:
    """Evaluate the [alerts] rules now: what is open, what is sent (or would be) and to whom.

    Exit 1 when a message could not be delivered (it stays owed for the next evaluation).
    """
    from fetcher.alerts.engine import evaluate_alerts
    from fetcher.alerts.show import as_json, as_table
    from fetcher.config import Purpose

    async def action() -> int:
        config = ctx.config(purpose=Purpose.DATABASE if dry_run else Purpose.ALERTS)
        if not config.alerts.rules:
            raise ConfigError(f"{config.path}: no [[alerts.rules]] to evaluate (see config.example.toml)")
        evaluation = await evaluate_alerts(config, config.alerts, now=datetime.now(UTC), dry_run=dry_run)
        if fmt == "json":
            ctx.console.out(as_json(evaluation, config.alerts).decode(), highlight=False, end="")
        else:
            ctx.console.print(as_table(evaluation, config.alerts))
        return 1 if evaluation.failed else 0

    _run_async(ctx, action())


@main.command("metrics")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write to FILE, replaced atomically (node_exporter's textfile collector), instead of standard output.",
)
@click.pass_obj
def metrics_command(ctx: Context, output: Path | None) -> None:
    """Scores, runs and open alerts in the OpenMetrics text format, for Prometheus."""
    from fetcher.config import Purpose
    from fetcher.metrics import exposition, read_snapshot, write_atomically
    from fetcher.store.engine import create_engine, ensure_schema

    async def action() -> int:
        config = ctx.config(Purpose.DATABASE)
        engine = create_engine(config.database, read_only=True)
        try:
            await ensure_schema(engine, create=False)  # reads: a missing database is an error
            snapshot = await read_snapshot(engine, config, datetime.now(UTC))
        finally:
            await engine.dispose()
        text = exposition(snapshot)
        if output is None:
            click.echo(text.decode(), nl=False)
        else:
            write_atomically(output, text)
        return 0

    _run_async(ctx, action())


# ---------------------------------------------------------------------------------------- simulator


@main.command("demo")
@click.option(
    "--tenants",
    "n_tenants",
    type=click.IntRange(1, 1000),
    default=25,
    show_default=True,
    help="How many simulated tenants.",
)
@click.option(
    "--database",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("fetcher-demo.db"),
    show_default=True,
    help="SQLite file to fill.",
)
@click.pass_obj
def demo_command(ctx: Context, n_tenants: int, db_path: Path) -> None:
    """No configuration needed: simulate Graph and Entra ID, backfill 90 days into SQLite, show the result."""
    from fetcher.demo import run_demo

    demo = run_demo(ctx.console, ctx.err, n_tenants=n_tenants, db_path=db_path.absolute(), observer=ctx.observer())
    _run_async(ctx, demo)


@main.command("simulate")
@click.option("--tenants", "n_tenants", type=click.IntRange(1, 100_000), default=25, show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True, help="0: any free port.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same data.")
@click.option(
    "--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True, help="Added to every Graph answer."
)
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("simulator"),
    show_default=True,
    help="Where the CA file and the ready configuration are written.",
)
@click.option(
    "--consent-states",
    is_flag=True,
    help="Add one customer in each state `fetcher tenants check` tells apart (no consent, permission missing, "
    "app disabled, ...), named after its state.",
)
@click.pass_obj
def simulate_command(
    ctx: Context, n_tenants: int, port: int, seed: int, latency_ms: float, out_dir: Path, consent_states: bool
) -> None:
    """Serve the Graph + Entra ID simulator until Ctrl-C, and write a configuration that points at it."""
    from fetcher.simulator import run_standalone

    try:
        run_standalone(
            tenants=n_tenants,
            port=port,
            seed=seed,
            latency_ms=latency_ms,
            out_dir=out_dir,
            consent_states=consent_states,
        )
    except OSError as error:
        _fail(ctx.err, ConfigError(f"cannot serve on port {port}: {error.strerror}"))
        sys.exit(2)


# ------------------------------------------------------------------------------------------- tenants


@main.group("tenants")
def tenants_group() -> None:
    """Discover the partner's customer tenants and keep the tenants file in sync."""


@tenants_group.command("discover")
@click.option(
    "--write",
    "write_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Merge into this CSV tenants file (default: the configured tenants_file).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def tenants_discover_command(ctx: Context, write_to: Path | None, dry_run: bool, fmt: str) -> None:
    """List the partner's customers ([partner] source: GDAP relationships and/or contracts) and merge them
    into the tenants file: new ones added, your names and enabled flags kept, missing ones marked gone."""
    from fetcher.config import Purpose
    from fetcher.discovery import merge, read_tenants_file, render_tenants_file, write_atomically
    from fetcher.output import discovery_json, discovery_summary, discovery_table
    from fetcher.partner import discover, open_partner_graph

    async def action() -> int:
        config = ctx.config(Purpose.DISCOVER)
        target = write_to or config.tenants_file
        if target is None and not dry_run:
            raise ConfigError("tenants discover: no file to write: give --write FILE or set tenants_file")
        existing = read_tenants_file(target) if target else []  # a malformed file stops us before Graph
        assert config.partner is not None  # Purpose.DISCOVER requires [partner]
        async with open_partner_graph(config, config.partner) as client:
            found = await discover(client, config.partner)
        merged = merge(existing, found.customers, datetime.now(UTC).date())
        if target and not dry_run:
            write_atomically(target, render_tenants_file(merged.rows))
        if fmt == "json":
            ctx.console.out(discovery_json(found, merged, target, written=not dry_run).decode(), highlight=False)
        else:
            ctx.console.print(discovery_table(merged))
            ctx.err.print(discovery_summary(found, merged, target, written=bool(target) and not dry_run))
        return 0

    _run_async(ctx, action())


@tenants_group.command("check")
@_tenant_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def tenants_check_command(ctx: Context, tenants: Sequence[str], fmt: str) -> None:
    """Per tenant, get a token and ask for one day ($top=1), and say what the answer means, with the fix.

    States: ok, no consent (with the admin-consent link), permission missing, app disabled, tenant not
    found / wrong cloud, no data yet, throttled, unreachable (and credential refused, failed). Uses the
    run's limits, concurrency and retries. With tenants_source = "partner", the discovered customers.
    Exit 0 only when every tenant is ok, else 1.
    """
    from fetcher.check import check_line, check_tenants, checks_json, checks_summary
    from fetcher.partner import with_discovered_tenants
    from fetcher.plan import check_tenant_options, select_tenants

    async def action() -> int:
        configured = ctx.config()
        check_tenant_options(tenants, None)  # before discovery asks Graph for the tenants
        _refuse_without_terminal(configured, None, "tenants check")
        config, _ = await with_discovered_tenants(configured, datetime.now(UTC))  # tenants_source = "partner"
        chosen = select_tenants(config, tenants)
        _refuse_without_terminal(config, chosen, "tenants check")
        checks = await check_tenants(config, chosen)
        if fmt == "json":
            ctx.console.out(checks_json(checks).decode(), highlight=False)
        else:
            for check in checks:
                ctx.console.print(check_line(check), markup=False, highlight=False, soft_wrap=True)
        ctx.err.print(checks_summary(checks), markup=False, highlight=False, soft_wrap=True)
        return 0 if all(check.ok for check in checks) else 1

    _run_async(ctx, action())
