"""Instructions per tenant of a nightly run, counted by valgrind's callgrind (issue 17): a steady measure.

    python -m benchmarks.instructions                      # 10 and 40 tenants: about 20 minutes, 2-core Xeon
    python -m benchmarks.instructions --tenants 20 80 --annotate 30 --workdir /tmp/instr
    python -m benchmarks.instructions --only fetcher --checkout ../pre17   # older code, from its own .venv

The overhead benchmark's nightly run (`benchmarks.overhead`: `fetcher run` with `history_days = 2`, days of
230 controls, latency 0, into a SQLite database whose archive dictionary a warm-up run of other tenants has
trained) is run under `valgrind --tool=callgrind` at two tenant counts, for the fetcher and for the floor
client; the warm-up and the simulator run natively. Printed:

    instructions per tenant = (Ir of the larger run - Ir of the smaller) / (difference in tenants)
    ratio                   = the fetcher's / the floor's

Ir counts the instructions the process executed, every thread's (aiosqlite's writer included), so it does not
vary with the machine's load as CPU seconds do (those vary by about 15 % run to run on this machine): it can
see a change of 1 %. It is not time (a cache miss costs no Ir), so it is informational, not a target. The
calls of `SSL_do_handshake` a tenant are shown beside (two calls a TLS connection, about 2.8 M instructions
each): how many connections a run opened varied with timing (0.9 or 1.3 calls a tenant) while the pool's idle
connections expired after 15 s, which valgrind's slowdown reached; they are kept 60 s now (docs/benchmarks.md).
`--annotate N` also prints the N C functions with the most exclusive Ir a tenant (the larger fetcher run's
minus the smaller's, over the difference in tenants); py-spy
(`benchmarks.profile`) or cProfile attribute the interpreter's share to Python functions. Runs about 65 times
slower than natively; `PYTHONHASHSEED` is fixed at 0 for every child so that dict and set orders repeat. Needs
valgrind on PATH.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks import overhead
from benchmarks.harness import OWN_FETCHER, Fetcher, Postgres, SimServer, compile_sources
from benchmarks.session import FULL, Session

KINDS = ("fetcher", "floor")
DEFAULT_TENANTS = (10, 40)
# Lines of a callgrind profile that name things (`fn=(7) name`, later `fn=(7)`) rather than count them.
_RECURSION = re.compile(r"'\d+$")  # callgrind's `name'2`: the same function, called recursively
_NAMES = {
    "ob": "ob",
    "cob": "ob",
    "fn": "fn",
    "cfn": "fn",
    "fl": "fl",
    "fi": "fl",
    "fe": "fl",
    "cfi": "fl",
    "cfl": "fl",
}


HANDSHAKE = "SSL_do_handshake"  # its calls (a TLS handshake takes one or more) tell run-to-run noise apart


@dataclass(frozen=True)
class Profile:
    """One callgrind profile: total instructions (Ir), each function's own, keyed `function [object]`, and
    the calls of `HANDSHAKE`."""

    total: int
    own: collections.Counter[str]
    handshakes: int = 0


def callgrind(out: Path) -> list[str]:
    """The command prefix that runs a child under callgrind, its profile written to `out`."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--trace-children=no"]


def parse(lines: Iterable[str]) -> Profile:
    """A callgrind profile (format version 1, name compression, first event Ir) read into a `Profile`.

    A cost line right after `calls=` is the inclusive cost of that call, charged to the callee, so it is
    not the caller's own. The total is the `totals:` (or `summary:`) line; `ValueError` if there is none."""
    names: dict[tuple[str, str], str] = {}
    current = {"ob": "?", "fn": "?", "cfn": "?"}
    own: collections.Counter[str] = collections.Counter()
    total: int | None = None
    after_call = False
    handshakes = 0
    for line in lines:
        head = line[:1]
        if head.isdigit() or head in "+-*":
            fields = line.split()
            if not after_call and len(fields) > 1:
                own[f"{current['fn']} [{current['ob']}]"] += int(fields[1])
            after_call = False
        elif line.startswith("calls="):
            after_call = True
            if current["cfn"] == HANDSHAKE:
                handshakes += int(line[6:].split()[0])
        elif line.startswith(("totals:", "summary:")):
            total = int(line.split()[1])
        elif "=" in line:
            _naming(line, names, current)
    if total is None:
        raise ValueError("not a callgrind profile: no totals: line")
    return Profile(total, own, handshakes)


def _naming(line: str, names: dict[tuple[str, str], str], current: dict[str, str]) -> None:
    """A line naming an object, file or function: `current` takes the object, function and callee named."""
    key, _, value = line.rstrip("\n").partition("=")
    if key in _NAMES:
        name = _name(names, _NAMES[key], value)
        if key in current:
            current[key] = name


def _name(names: dict[tuple[str, str], str], space: str, value: str) -> str:
    """`(7) name` defines id 7 of `space` and is `name`; `(7)` is what id 7 was defined as."""
    if not value.startswith("("):
        return os.path.basename(value) if space == "ob" else _RECURSION.sub("", value)
    ident, _, name = value.partition(")")
    if name.strip():
        names[space, ident] = os.path.basename(name.strip()) if space == "ob" else _RECURSION.sub("", name.strip())
    return names.get((space, ident), "?")


def read(path: Path) -> Profile:
    with path.open(encoding="utf-8", errors="replace") as file:
        return parse(file)


def per_tenant(small: Profile, large: Profile, tenants: int) -> float:
    """Instructions a tenant: the larger run's total minus the smaller's, over the difference in tenants."""
    return (large.total - small.total) / tenants


def top_functions(small: Profile, large: Profile, tenants: int, count: int) -> list[tuple[str, float]]:
    """The `count` functions with the most own instructions a tenant (the runs' difference, over `tenants`)."""
    grown = collections.Counter({name: large.own[name] - small.own.get(name, 0) for name in large.own})
    return [(name, ir / tenants) for name, ir in grown.most_common(count)]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--tenants", type=int, nargs=2, default=DEFAULT_TENANTS, metavar=("SMALL", "LARGE"), help="the two counts"
    )
    parser.add_argument("--annotate", type=int, default=0, metavar="N", help="also the top N C functions a tenant")
    parser.add_argument("--only", choices=KINDS, help="count only the fetcher's runs or only the floor's")
    parser.add_argument("--workdir", type=Path, help="keep databases, configurations and profiles here")
    parser.add_argument(
        "--checkout",
        type=Path,
        help="count another checkout's fetcher (its .venv's `fetcher` script), e.g. older code; the floor is ours",
    )
    args = parser.parse_args(argv)
    if not 0 < args.tenants[0] < args.tenants[1]:
        parser.error("--tenants: SMALL must be at least 1 and less than LARGE")
    return args


def count(session: Session, kinds: Iterable[str], fetcher: Fetcher = OWN_FETCHER) -> Iterator[tuple[str, int, Path]]:
    """Each kind's measured runs under callgrind at both counts; yields (kind, tenants, profile path). The
    fetcher's are `fetcher`'s (another checkout's with `--checkout`)."""
    small, large = session.sizes.overhead_tenants
    directory = session.directory(overhead.NAME)
    sim_tenants = large + overhead.warm_tenants(session.sizes.overhead_days)
    with SimServer(session.directory("overhead-sim"), tenants=sim_tenants, controls=session.sizes.controls) as sim:
        for tenants in (small, large):  # the fetcher's runs write the tenants files the floor's read
            out = directory / f"fetcher-{tenants}.callgrind"
            overhead._fetcher(session, sim, tenants, callgrind(out), fetcher)
            if "fetcher" in kinds:
                yield "fetcher", tenants, out
        if "floor" in kinds:
            for tenants in (small, large):
                out = directory / f"floor-{tenants}.callgrind"
                overhead._floor(session, sim, tenants, callgrind(out))
                yield "floor", tenants, out


def report(profiles: dict[tuple[str, int], Profile], small: int, large: int, annotate: int) -> str:
    days, controls = FULL.overhead_days, FULL.controls
    lines = [f"instructions per tenant, nightly run ({days} days x {controls} controls, {small} -> {large} tenants):"]
    figures = {}
    for kind in KINDS:
        if (kind, small) in profiles:
            low, high = profiles[kind, small], profiles[kind, large]
            figures[kind] = per_tenant(low, high, large - small)
            handshakes = (high.handshakes - low.handshakes) / (large - small)
            lines.append(
                f"  {kind:8} {figures[kind] / 1e6:8.2f} M  (Ir {low.total / 1e6:,.1f} M -> {high.total / 1e6:,.1f} M; "
                f"{handshakes:.2f} {HANDSHAKE} calls a tenant)"
            )
    if len(figures) == 2:
        lines.append(f"  ratio    {figures['fetcher'] / figures['floor']:8.3f}")
    if annotate and "fetcher" in figures:
        share = figures["fetcher"]
        lines += ["", f"top {annotate} functions of the fetcher by own instructions a tenant:"]
        for name, ir in top_functions(profiles["fetcher", small], profiles["fetcher", large], large - small, annotate):
            lines.append(f"  {ir / 1e3:9.1f} k  {100 * ir / share:5.1f}%  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH (apt-get install valgrind)")
    os.environ["PYTHONHASHSEED"] = "0"  # every child inherits it
    compile_sources()  # start-up without compiling the project from source: about 1,000 M instructions a run
    small, large = args.tenants
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="securescore-instr-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = dataclasses.replace(FULL, overhead_tenants=(small, large))
    session = Session(sizes, False, workdir, Postgres(""), "not used")
    kinds = [args.only] if args.only else list(KINDS)
    try:
        fetcher = OWN_FETCHER if args.checkout is None else Fetcher.of_checkout(args.checkout.resolve())
        profiles = {(kind, tenants): read(path) for kind, tenants, path in count(session, kinds, fetcher)}
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(profiles, small, large, args.annotate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
