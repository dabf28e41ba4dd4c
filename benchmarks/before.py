"""Older code against this checkout's, alternated in one run: what a change did to the per-tenant cost.

    python -m benchmarks.before ../pre17              # 3 rounds: 4 took 9.7 minutes at a load of 7, 2 cores
    python -m benchmarks.before ../pre17 --rounds 5 --no-span --workdir /tmp/before

CHECKOUT is another checkout of the project (for issue 17's "today": `git worktree add ../pre17 c870f28^`)
with its own virtualenv `.venv` holding it (`python3 -m venv .venv && .venv/bin/pip install -e .`); its
`fetcher` script is run, its bytecode written first, as this checkout's is. Its migrations make its own
databases; the floor client writes this checkout's schema. Each round measures, with the two fetchers' order
alternating from round to round (old then new, new then old, ...) and the floor last:

- the overhead benchmark's nightly run (`benchmarks.overhead`: `fetcher run` with `history_days = 2`, days of
  230 controls, latency 0, a warm-up run of other tenants first, at the smaller and the larger count) for each
  fetcher and for the floor client;
- unless `--no-span`, the overhead benchmark's small tenants under latency at concurrency 32 (300 tenants x
  10 days of 10 controls, every request answered after 100 ms): each fetcher's span over its ideal, and the
  floor's (`benchmarks.latency.floor_scenario`).

Printed, each round's figures, then each figure's median with the lowest and highest round:

    CPU per tenant = (CPU s at the larger count - CPU s at the smaller) / difference in tenants
    new / old      = this checkout's CPU per tenant / the older checkout's, taken within each round
    span / ideal   = as in benchmark 6

CPU seconds vary about 15 % from run to run on a shared 2-core machine, hence the rounds and their spread.
Not part of `python -m benchmarks` or of CI: a one-off comparison, documented in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import latency, overhead
from benchmarks.harness import OWN_FETCHER, Fetcher, Measured, Postgres, SimServer, compile_sources
from benchmarks.session import FULL, Session

NAME = "before"
SPAN_CONCURRENCY = 32


def per_tenant_ms(small: float, large: float, tenants: int) -> float:
    """CPU milliseconds a tenant: the CPU seconds of two runs' difference, over the difference in tenants."""
    return (large - small) / tenants * 1000


def order(round_index: int) -> tuple[str, str]:
    """Which fetcher goes first in a round: the older in even rounds (0, 2, ...), this checkout's in odd."""
    return ("old", "new") if round_index % 2 == 0 else ("new", "old")


@dataclass
class Round:
    """One round's figures, by program ("old", "new", "floor")."""

    cpu_ms: dict[str, float] = field(default_factory=dict)
    span: dict[str, float] = field(default_factory=dict)  # span / ideal at SPAN_CONCURRENCY

    @property
    def new_over_old(self) -> float:
        return self.cpu_ms["new"] / self.cpu_ms["old"]


def median_range(values: Sequence[float]) -> tuple[float, float, float]:
    """The median (the lower middle one of an even count: a figure that was measured), lowest, highest."""
    return statistics.median_low(values), min(values), max(values)


def _figure(values: Sequence[float], spec: str) -> str:
    middle, low, high = median_range(values)
    return f"{middle:{spec}} ({low:{spec}}–{high:{spec}})"


def round_line(index: int, found: Round) -> str:
    """One round's figures; `index` counts from 0."""
    cpu = ", ".join(f"{kind} {found.cpu_ms[kind]:.1f} ms" for kind in ("old", "new", "floor"))
    span = ", ".join(f"{kind} {found.span[kind]:.2f}" for kind in ("old", "new", "floor") if kind in found.span)
    line = f"  {index + 1} ({' then '.join(order(index))}): {cpu}; new / old {found.new_over_old:.2f}"
    return line + (f"; span / ideal at {SPAN_CONCURRENCY}: {span}" if span else "")


def report(rounds: Sequence[Round], small: int, large: int) -> str:
    lines = [f"CPU per tenant, nightly run (2 days x 230 controls, {small} -> {large} tenants), by round:"]
    lines += [round_line(index, found) for index, found in enumerate(rounds)]
    lines.append(f"over {len(rounds)} rounds, median (lowest–highest):")
    for kind in ("old", "new"):
        values = [r.cpu_ms[kind] for r in rounds]
        over_floor = [r.cpu_ms[kind] / r.cpu_ms["floor"] for r in rounds]
        lines.append(f"  {kind:5} {_figure(values, '.1f')} ms a tenant, ÷ floor {_figure(over_floor, '.2f')}")
    lines.append(f"  floor {_figure([r.cpu_ms['floor'] for r in rounds], '.1f')} ms a tenant")
    lines.append(f"  new / old {_figure([r.new_over_old for r in rounds], '.2f')}")
    for kind in ("old", "new", "floor"):
        spans = [r.span[kind] for r in rounds if kind in r.span]
        if spans:
            lines.append(f"  span / ideal at concurrency {SPAN_CONCURRENCY}, {kind:5} {_figure(spans, '.2f')}")
    return "\n".join(lines)


class Comparison:
    """The simulators, kept for every round, and the programs each round measures."""

    def __init__(self, session: Session, old: Fetcher, cpu_sim: SimServer, span_sim: SimServer | None) -> None:
        self.session = session
        self.fetchers = {"old": old, "new": OWN_FETCHER}
        self.cpu_sim = cpu_sim
        self.span_sim = span_sim

    def round(self, index: int) -> Round:
        small, large = self.session.sizes.overhead_tenants
        found = Round()
        for kind in (*order(index), "floor"):
            cpu = {count: self.nightly(kind, count).cpu for count in (small, large)}
            found.cpu_ms[kind] = per_tenant_ms(cpu[small], cpu[large], large - small)
            if self.span_sim is not None:
                found.span[kind] = self.span(kind)
        return found

    def nightly(self, kind: str, tenants: int) -> Measured:
        if kind == "floor":  # reads the tenants file the fetchers' runs of `tenants` wrote
            return overhead._floor(self.session, self.cpu_sim, tenants)
        return overhead._fetcher(self.session, self.cpu_sim, tenants, (), self.fetchers[kind])

    def span(self, kind: str) -> float:
        assert self.span_sim is not None
        sizes, label = self.session.sizes, f"span-{kind}"
        tenants, days = sizes.small_tenants, sizes.small_days
        if kind == "floor":
            outcome = latency.floor_scenario(
                self.session, self.span_sim, label, concurrency=SPAN_CONCURRENCY, tenants=tenants, days=days, name=NAME
            )
        else:
            outcome = latency.scenario(
                self.session,
                self.span_sim,
                label,
                concurrency=SPAN_CONCURRENCY,
                tenants=tenants,
                days=days,
                name=NAME,
                fetcher=self.fetchers[kind],
            )
        return outcome.span / outcome.ideal


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.before", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkout", type=Path, help="the older checkout, with its own .venv")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3); the order alternates")
    parser.add_argument(
        "--tenants", type=int, nargs=2, default=FULL.overhead_tenants, metavar=("SMALL", "LARGE"), help="the two counts"
    )
    parser.add_argument("--no-span", action="store_true", help="CPU per tenant only, no span under latency")
    parser.add_argument("--workdir", type=Path, help="keep databases, configurations and logs here")
    args = parser.parse_args(argv)
    if not 0 < args.tenants[0] < args.tenants[1]:
        parser.error("--tenants: SMALL must be at least 1 and less than LARGE")
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    compile_sources()
    old = Fetcher.of_checkout(args.checkout.resolve())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="securescore-before-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = dataclasses.replace(FULL, overhead_tenants=tuple(args.tenants))
    session = Session(sizes, False, workdir, Postgres(""), "not used")
    sim_tenants = sizes.overhead_tenants[1] + overhead.warm_tenants(sizes.overhead_days)
    rounds: list[Round] = []
    try:
        with contextlib.ExitStack() as stack:
            cpu_sim = stack.enter_context(
                SimServer(session.directory("cpu-sim"), tenants=sim_tenants, controls=sizes.controls)
            )
            span_sim = None if args.no_span else stack.enter_context(_span_sim(session))
            comparison = Comparison(session, old, cpu_sim, span_sim)
            for index in range(args.rounds):
                rounds.append(comparison.round(index))
                session.log(f"{NAME}: round{round_line(index, rounds[-1])}")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(rounds, *sizes.overhead_tenants))
    return 0


def _span_sim(session: Session) -> SimServer:
    sizes = session.sizes
    return SimServer(
        session.directory("span-sim"),
        tenants=sizes.small_tenants,
        latency_ms=sizes.latency_ms,
        controls=sizes.small_controls,
        page_size=sizes.page_size,
    )


if __name__ == "__main__":
    sys.exit(main())
