"""The `fetcher` group: its global options, its process, and the collector and malloc tuning of its commands."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from typing import IO, Any, NoReturn, cast

import click

from fetcher import __version__
from fetcher.cli.context import Context, StandardError, StandardOutput
from fetcher.cli.hoist import given_log_format, hoist
from fetcher.errors import FetcherError
from fetcher.heap import fix_mmap_threshold


def _print_version(ctx: click.Context, value: bool) -> None:
    """`fetcher, version 0.1.0 (schema 0014)`: the package version moves only at a release, so the schema
    revision it expects (`fetcher migrate` upgrades to it) is what tells two installs apart in between."""
    if not value or ctx.resilient_parsing:
        return
    from fetcher.store.engine import schema_head

    click.echo(f"fetcher, version {__version__} (schema {schema_head()})")
    ctx.exit()


THRESHOLD = (100_000, 50, 100)  # the collector's, in a command run from the process's own command line


def hold_collections() -> None:
    """Collect cycles every 100,000 net allocations rather than 700, for the rest of the command.

    Every command imports what it uses in its body, and those imports are most of a short command's
    allocations: with the default threshold `fetcher status` ran 189 collections that freed little, 57 M of
    its 2,360 M instructions (callgrind; peak RSS the same). Called by `_Fetcher.main`, only when the
    command line is the process's own (see `tune_long_run`).
    """
    gc.set_threshold(*THRESHOLD)


def tune_long_run() -> None:
    """Collect cycles less often, and keep malloc's large blocks mapped on their own.

    A run allocates millions of short-lived, acyclic rows: collecting cycles less often saves CPU (below).
    It also frees large blocks (HTTP bodies, a dictionary's training samples, zstd's workspaces), after which
    glibc would serve blocks up to their size from its heaps, where freed memory stays resident:
    `fetcher.heap.fix_mmap_threshold` stops that (the memory benchmark's backfill of 1,000 tenants peaked
    about 10 MB lower, docs/benchmarks.md), and keeps the heaps' free tops rather than giving them back to be
    faulted in again.

    With the default thresholds the collector ran every 700 allocations and kept rescanning the JSON and
    rows of every tenant in flight: a quarter of the CPU of a backfill (measured: 6.1 against 4.6 CPU
    seconds for 1,800 score-days). Reference counting frees those rows anyway; the objects made while
    importing and starting up are frozen out of the scans for good.

    Only `run`, `backfill` and `rebuild` call this, after importing what they use and before any thread
    starts, and only when the command line is the process's own (`_Fetcher.main` read `sys.argv`): a test
    that invokes a command in its own process keeps that process's collector and malloc as they were.
    """
    if not _own_process:
        return
    gc.freeze()
    gc.set_threshold(*THRESHOLD)
    fix_mmap_threshold()


_own_process = False  # set by _Fetcher.main: True when the arguments came from sys.argv


class _Fetcher(click.Group):
    """The `fetcher` group, which notes whether it was started from the process's own command line, and
    accepts its options (`--config`, `-v`, `-q`, `--log-format`, `--log-sql`) after the command too."""

    def main(self, args: Sequence[str] | None = None, *rest: Any, **extra: Any) -> Any:
        """Standard output is a StandardOutput while the command runs, so that click's help and version too
        end in one line (exit 3) when it cannot be written, or in silence (141) when its reader went away; standard
        error a StandardError, so that one that cannot be written changes no exit status."""
        global _own_process
        _own_process = args is None
        if _own_process:
            hold_collections()
        given = list(sys.argv[1:] if args is None else args)
        stdout, sys.stdout = sys.stdout, cast(IO[str], StandardOutput(sys.stdout))
        stderr, sys.stderr = sys.stderr, cast(IO[str], StandardError(sys.stderr))
        try:
            return super().main(args, *rest, **extra)
        except FetcherError as error:  # raised outside any command: writing click's help or version
            from fetcher.cli.exits import fail

            sys.exit(fail(start(None, None, 0, False, given_log_format(given), False), error))
        finally:
            sys.stdout, sys.stderr = stdout, stderr

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """A usage error in the group's own options (`fetcher --bogus run`) is found before they are read:
        `--log-format json` is looked for in the command line itself."""
        given = list(args)  # click's parser consumes `args`
        try:
            return super().parse_args(ctx, hoist(self, ctx, args))
        except click.UsageError as error:
            if given_log_format(given) != "json" or isinstance(error, _HELP_ERRORS):
                raise
            _json_usage_error(start(ctx, None, 0, False, "json", False), error)

    def invoke(self, ctx: click.Context) -> Any:
        """Every command's usage errors pass here (a value click refused, an unknown option or command), once
        the global options are read: with `--log-format json` one JSON record, as `fail` says any other."""
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            if ctx.params.get("log_format") != "json" or isinstance(error, _HELP_ERRORS):
                raise  # click's own: the usage line, the --help hint, the error (or the help)
            _json_usage_error(ctx.obj if isinstance(ctx.obj, Context) else start(ctx, **ctx.params), error)


def _json_usage_error(context: Context, error: click.UsageError) -> NoReturn:
    """A usage error as `fail` says any error with `--log-format json`: one record, error_kind config, exit 2."""
    from fetcher.cli.exits import fail
    from fetcher.errors import ConfigError

    sys.exit(fail(context, ConfigError(error.format_message())))


# A group given no command shows its help through a usage error (click 8.2 on): help, not an error to log.
_HELP_ERRORS: tuple[type[Exception], ...] = tuple(
    e for e in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if isinstance(e, type)
)


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
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _print_version(ctx, value),
    help="Show the version and the schema revision it migrates to, and exit.",
)
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
      141  the reader of standard output went away (| head): nothing said
    """
    click_ctx.obj = start(click_ctx, config_path, verbose, quiet, log_format, log_sql)


def start(
    click_ctx: click.Context | None,
    config_path: str | None,
    verbose: int,
    quiet: bool,
    log_format: str,
    log_sql: bool,
) -> Context:
    """What every command is given: logging set up, and the consoles it writes to (None: no command yet)."""
    from fetcher import logfields
    from fetcher.output import setup_logging
    from fetcher.tables import console_for

    err = console_for(stderr=True)
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity=verbosity, log_format=log_format, console=err, log_sql=log_sql)
    logfields.set_for_process(command=click_ctx.invoked_subcommand if click_ctx else None)
    stdout = sys.stdout if isinstance(sys.stdout, StandardOutput) else StandardOutput(sys.stdout)
    out = console_for(cast(IO[str], stdout))  # the one place commands write their output
    return Context(config_path, verbosity, log_format, out, err)
