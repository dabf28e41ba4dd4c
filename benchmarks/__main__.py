"""Run the benchmarks and print one table.

    python -m benchmarks                     # full size (20 to 25 minutes on 2 cores); run on a quiet machine
    python -m benchmarks --quick             # reduced sizes, a few minutes: checks the harness
    python -m benchmarks --only cpu --only peer
    python -m benchmarks --repeat 3          # each benchmark three times: medians, with the range of the runs
    python -m benchmarks --markdown results.md   # also write the table and the machine as Markdown
    python -m benchmarks --record            # and put them into docs/benchmarks.md (between its markers)

Benchmarks: latency, cpu, peer, memory, storage, overhead, startup, profiles (see each module's docstring for
exactly what is measured).
PostgreSQL rows use scratch databases created (and dropped) on the server of `--postgres`
(default $FETCHER_BENCH_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/test); without a server they
are skipped and say why. Exit status: 0 when no row failed its target or broke, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import cpu, latency, machine, memory, overhead, peer, profiles, startup, storage
from benchmarks.harness import REPO, Postgres, compile_sources
from benchmarks.session import FULL, QUICK, Session
from benchmarks.table import Row, markdown_table, merge_runs, skipped, text_table

BENCHMARKS: dict[str, Callable[[Session], list[Row]]] = {
    "latency": latency.run,
    "cpu": cpu.run,
    "peer": peer.run,
    "memory": memory.run,
    "storage": storage.run,
    "overhead": overhead.run,
    "startup": startup.run,
    "profiles": profiles.run,
}
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS_DOC = REPO / "docs" / "benchmarks.md"
QUICK_NOTE = (
    "**quick** (`--quick`). These are not the benchmarks' figures: the sizes are reduced (latency 100 tenants, "
    "cpu and peer 20 tenants, memory 100 and 1,000 tenants, storage 10 tenants and 5 daily runs, "
    "overhead 20 and 100 tenants, startup 3 runs each), so fixed costs such as start-up weigh far more, and they "
    "only show that the harness works. Run `python -m benchmarks --record` "
    "on a quiet machine for the real ones."
)
START, END = "<!-- results:start -->", "<!-- results:end -->"


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="reduced sizes, to check the harness")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each benchmark N times and show each figure as the median run with the range of all N",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FETCHER_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL server for scratch databases (any database URL on it)",
    )
    parser.add_argument("--workdir", type=Path, help="keep databases, configurations and logs here")
    parser.add_argument("--markdown", type=Path, help="also write the table and the machine to this file")
    parser.add_argument(
        "--record",
        action="store_true",
        help=f"also replace the results in {RESULTS_DOC.relative_to(REPO)} with this run's",
    )
    return parser.parse_args(argv)


def run_repeated(name: str, session: Session, repeat: int) -> list[Row]:
    """`repeat` runs of one benchmark, merged into one row per figure."""
    runs = []
    for number in range(1, repeat + 1):
        if repeat > 1:
            session.log(f"{name}: run {number} of {repeat}")
        runs.append(run_one(name, session))
    return merge_runs(runs)


def run_one(name: str, session: Session) -> list[Row]:
    session.log(f"{name}: starting")
    try:
        rows = BENCHMARKS[name](session)
    except Exception as error:  # one benchmark's failure is reported in its row; the others go on
        traceback.print_exc()
        return [skipped(name, f"{type(error).__name__}: {' '.join(str(error).split())[:300]}", failed=True)]
    session.log(f"{name}: done")
    return rows


def repeats(count: int) -> str:
    return f", each benchmark {count} times (medians)" if count > 1 else ""


def render_markdown(rows: list[Row], facts: list[tuple[str, str]], header: str) -> str:
    lines = [header, "", markdown_table(rows), "", "| machine | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts]
    return "\n".join(lines) + "\n"


def record(text: str, doc: Path = RESULTS_DOC) -> None:
    """Put `text` between the results markers of `doc`."""
    current = doc.read_text(encoding="utf-8")
    head, start, rest = current.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{doc}: no {START} ... {END} section to replace")
    doc.write_text(f"{head}{START}\n{text}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat: at least 1")
    chosen = args.only or list(BENCHMARKS)
    postgres = Postgres(args.postgres)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="securescore-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    compile_sources()
    session = Session(QUICK if args.quick else FULL, args.quick, workdir, postgres, postgres.available())
    load_before = machine.load()
    session.log(
        f"{'quick' if args.quick else 'full-size'} run of {', '.join(chosen)} in {workdir}; load average {load_before}"
    )
    started = time.monotonic()
    try:
        rows = [row for name in chosen if name in BENCHMARKS for row in run_repeated(name, session, args.repeat)]
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    facts = [
        *machine.describe(postgres if session.postgres_missing is None else None),
        ("load average (1/5/15 min)", f"before {load_before}, after {machine.load()}"),
        ("run", f"{'--quick' if args.quick else 'full size'}{repeats(args.repeat)}, {elapsed / 60:.1f} min"),
    ]
    print(text_table(rows))
    print()
    for key, value in facts:
        print(f"{key}: {value}")
    header = f"Run of {time.strftime('%Y-%m-%d %H:%M %Z')}, " + (QUICK_NOTE if args.quick else "full size:")
    text = render_markdown(rows, facts, header)
    if args.markdown is not None:
        args.markdown.write_text(text, encoding="utf-8")
    if args.record:
        record(text)
    return 1 if any(row.verdict in ("FAIL", "error") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
