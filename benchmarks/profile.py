"""Profile the fetcher on the CPU-bound benchmark's workload and print where its time goes.

    python -m benchmarks.profile                       # 20 tenants x 90 days x 230 controls, SQLite
    python -m benchmarks.profile --tenants 200 --database postgres --keep-raw --top 40
    python -m benchmarks.profile --tenants 1000 --days 30 --controls 10 --latency-ms 100 --keep-raw  # benchmark 1

The simulator runs in its own process (warmed up first, so its cache serves every page); the fetcher runs
`backfill` under py-spy (a sampling profiler: it barely slows the process, and it sees every thread,
aiosqlite's writer included). Printed: the functions with the most samples of their own ("self", where
the CPU actually went) and with the most samples anywhere on the stack ("total", what each call costs with
everything it calls), as shares of all samples. The raw samples stay in the work directory for
flamegraph.pl or speedscope (`--format speedscope` there). `--profile-floor` profiles the floor client
instead, for comparison.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from benchmarks.harness import REPO, Postgres, SimServer, client_argv, fetcher_argv, measure, migrate, sqlite_url

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
PROJECT_FOLDERS = ("(fetcher/", "(clients/")
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else "py-spy"


def _frame_name(frame: str) -> str:
    """`function (path/file.py:123)` -> `function (path/file.py)`: lines of one function count together."""
    match = _FRAME.match(frame.strip())
    return f"{match['function']} ({match['file']})" if match else frame.strip()


def summarize(lines: Iterable[str]) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """Total samples, and samples per function on its own (leaf) and anywhere on the stack (inclusive)."""
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")[1:]]  # the first entry names the thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    return total, own, anywhere


def _ours(name: str) -> bool:
    return any(folder in name for folder in PROJECT_FOLDERS)


def report(raw: Path, top: int) -> str:
    with raw.open(encoding="utf-8", errors="replace") as file:
        total, own, anywhere = summarize(file)
    if not total:
        return f"{raw}: no samples"
    ours = collections.Counter({name: n for name, n in anywhere.items() if _ours(name)})
    lines = [f"{total} samples ({raw})", "", f"top {top} functions by own samples (where the CPU went):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", f"top {top} project functions by samples anywhere on the stack (a call with all it calls):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in ours.most_common(top)]
    return "\n".join(lines)


def _database(workdir: Path, postgres: Postgres, name: str | None) -> tuple[str, str]:
    """(the fetcher's URL, the floor's argument)."""
    if name is None:
        path = workdir / "profile.db"
        path.unlink(missing_ok=True)
        return sqlite_url(path), str(path)
    return postgres.database_url(name, driver="sqlalchemy"), postgres.database_url(name)


def profile(args: argparse.Namespace, workdir: Path, postgres: Postgres, database: str | None) -> Path:
    raw = workdir / ("floor.raw" if args.profile_floor else "fetcher.raw")
    cache_mb = 64 + args.tenants * args.days * 0.06
    with SimServer(
        workdir / "sim", tenants=args.tenants, controls=args.controls, cache_mb=cache_mb, latency_ms=args.latency_ms
    ) as sim:
        measure(client_argv("floor", *sim.client_args(), "--days", str(args.days), "--database", "none")).check()
        url, floor_database = _database(workdir, postgres, database)
        config = sim.write_config(
            workdir / "fetcher.toml", database_url=url, keep_raw=args.keep_raw, concurrency=args.concurrency
        )
        migrate(config)
        if args.profile_floor:
            target = client_argv("floor", *sim.client_args(), "--days", str(args.days), "--database", floor_database)
        else:
            target = fetcher_argv(config, "backfill", "--days", str(args.days))
        command = [
            py_spy(),
            "record",
            "--format",
            "raw",
            "--rate",
            str(args.rate),
            "--threads",
            "-o",
            str(raw),
            "--",
            *target,
        ]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"py-spy or the profiled process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return raw


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--controls", type=int, default=230)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a server where a scratch database is made")
    parser.add_argument("--keep-raw", action="store_true", help="archive raw payloads (the default config does)")
    parser.add_argument("--profile-floor", action="store_true", help="profile the floor client instead")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--workdir", type=Path, help="keep the raw samples here (default: a temporary folder)")
    parser.add_argument("--raw", type=Path, help="only summarize this raw py-spy file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.raw is not None:
        print(report(args.raw, args.top))
        return
    with tempfile.TemporaryDirectory(prefix="securescore-profile-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        postgres = Postgres(args.postgres)
        if args.database == "postgres":
            with postgres.scratch("profile") as name:
                raw = profile(args, workdir, postgres, name)
        else:
            raw = profile(args, workdir, postgres, None)
        print(report(raw, args.top))
        if args.workdir is None:
            print("\n(pass --workdir DIR to keep the raw samples)")


if __name__ == "__main__":
    main()
