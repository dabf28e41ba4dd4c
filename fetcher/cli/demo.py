"""`fetcher demo` and `fetcher simulate`: the Graph + Entra ID simulator."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fetcher.cli.context import Context
from fetcher.cli.exits import fail, run_async
from fetcher.cli.group import main
from fetcher.errors import ConfigError

if TYPE_CHECKING:
    from fetcher.simulator.faults import FaultOption


def _faults(ctx: Context, given: Sequence[str]) -> tuple[FaultOption, ...]:
    """`--fault KIND[:TENANT[:RATE]]` (fetcher.simulator.faults.parse_fault_option); a mistake is one line, exit 2
    (as every other refused option), not click's usage text."""
    from fetcher.simulator.faults import parse_fault_option

    try:
        return tuple(parse_fault_option(text) for text in given)
    except ValueError as error:
        sys.exit(fail(ctx, ConfigError(f"--fault: {error}")))


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
    run_async(ctx, demo)


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
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND[:TENANT[:RATE]]",
    help="Script trouble on the secureScores requests (repeatable). KIND: throttle (429, Retry-After 1), "
    "unavailable (503), partial (206 Partial Content with the data and a Warning), empty_partial (206 without "
    "data), bad_json (200, the body cut in half), type_change (200, createdDateTime a number and controlScores "
    "an object: the fetcher quarantines each object). TENANT: a customer's id, or * (every customer, the default; "
    "never the partner). RATE: the share of its requests, spread evenly (0.25: every fourth; default 1).",
)
@click.pass_obj
def simulate_command(
    ctx: Context,
    n_tenants: int,
    port: int,
    seed: int,
    latency_ms: float,
    out_dir: Path,
    consent_states: bool,
    faults: tuple[str, ...],
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
            faults=_faults(ctx, faults),
        )
    except KeyError as error:
        fail(ctx, ConfigError(str(error.args[0])))
        sys.exit(2)
    except OSError as error:
        fail(ctx, ConfigError(f"cannot serve on port {port}: {error.strerror}"))
        sys.exit(2)
