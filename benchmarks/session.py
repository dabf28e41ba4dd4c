"""What one invocation of the benchmarks shares: the sizes (full or `--quick`), a work directory, the
PostgreSQL server (or why there is none), progress messages, and measurements one benchmark makes that
another may reuse (the peer comparison reuses the CPU-bound benchmark's SQLite run of the same workload)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import Postgres


@dataclass(frozen=True)
class Sizes:
    """The workloads. Full size is what the issue asks for; `QUICK` validates the harness in minutes."""

    latency_tenants: int = 1000
    latency_days: int = 30
    latency_ms: float = 100.0
    latency_controls: int = 10  # small days: the benchmark measures scheduling, not parsing (see docs)
    latency_concurrency: int = 16
    cpu_tenants: int = 200
    cpu_days: int = 90
    controls: int = 230
    memory_tenants: tuple[int, int] = (1000, 10_000)
    memory_days: int = 2
    first_night_tenants: int = 48  # the 90-day row: 3 x concurrency 16, so the day budget has tenants to hold back
    storage_tenants: int = 100
    storage_days: int = 90
    storage_daily_days: int = 20  # runs of the daily (cron) storage scenario, one a simulated day
    page_size: int = 20  # the simulator's default; Graph's own is not documented
    overhead_tenants: tuple[int, int] = (50, 300)
    overhead_days: int = 2  # an incremental (nightly) run
    small_tenants: int = 300
    small_days: int = 10
    small_controls: int = 10
    startup_repeats: int = 7


FULL = Sizes()
QUICK = Sizes(
    latency_tenants=100,
    cpu_tenants=20,
    memory_tenants=(100, 1000),
    first_night_tenants=16,
    storage_tenants=10,
    storage_daily_days=5,
    overhead_tenants=(20, 100),
    startup_repeats=3,
)


@dataclass
class Session:
    sizes: Sizes
    quick: bool
    workdir: Path
    postgres: Postgres
    postgres_missing: str | None  # why PostgreSQL rows are skipped, or None
    shared: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f} s] {message}", file=sys.stderr, flush=True)

    def directory(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path
