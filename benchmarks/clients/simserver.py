"""The simulator in its own process, so that it never shares a GIL or a core's time slice with the client
being measured.

    python -m benchmarks.clients.simserver --tenants 1000 --latency-ms 100 --dir /tmp/x

Once listening it writes the tenant list (`tenants.csv`), the client secret and the CA beside it and prints
one JSON line (`READY {...}`) with what a client needs. It then answers commands on standard input, one per
line, each with one JSON line on standard output:

    stats   requests seen since the last `clear`, by endpoint and status, and peaks in flight
    clear   forget the requests seen so far
    newest YYYY-MM-DD   move the simulator's "today" (its newest day) there, as the days of a cron job pass
    quit    stop (end of input does the same)
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime
import sys
from pathlib import Path
from typing import Any

import orjson

from fetcher.simulator import Simulator, generate_tenants, running_simulator


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.clients.simserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tenants", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--controls", type=int, default=230, help="controls per day")
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument("--cache-mb", type=float, default=256.0, help="the simulator's cache of serialized days")
    parser.add_argument(
        "--synced-groups",
        type=int,
        default=0,
        help="newest day's lastSynced shared by this many groups of controls (0: one per control)",
    )
    parser.add_argument("--dir", type=Path, required=True)
    return parser.parse_args(argv)


def write_tenants(path: Path, sim: Simulator) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["tenant_id", "name"])
        writer.writerows((t.tenant_id, t.name) for t in sim.tenants.values())


def stats(sim: Simulator) -> dict[str, Any]:
    by_endpoint: collections.Counter[str] = collections.Counter()
    by_status: collections.Counter[str] = collections.Counter()
    for record in list(sim.requests):
        by_endpoint[record.endpoint] += 1
        by_status[f"{record.endpoint} {record.status}"] += 1
    return {
        "requests": dict(by_endpoint),
        "statuses": dict(by_status),
        "peak_graph_in_flight": sim.peak_in_flight,
        "peak_token_in_flight": sim.peak_token_in_flight,
    }


def _reply(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    sim = Simulator(
        generate_tenants(args.tenants, seed=args.seed),
        seed=args.seed,
        latency_ms=args.latency_ms,
        controls_per_day=args.controls,
        page_size=args.page_size,
        cache_megabytes=args.cache_mb,
        synced_groups=args.synced_groups,
    )
    write_tenants(args.dir / "tenants.csv", sim)
    secret = args.dir / "client-secret"
    secret.write_text(sim.client_secret + "\n", encoding="utf-8")
    secret.chmod(0o600)
    with running_simulator(sim, tls_dir=args.dir / "tls") as running:
        sys.stdout.write(
            "READY "
            + orjson.dumps(
                {
                    "origin": running.origin,
                    "graph_base_url": running.graph_base_url,
                    "ca_file": str(running.ca_file),
                    "client_id": sim.client_id,
                    "client_secret_file": str(secret.resolve()),
                    "tenants_file": str((args.dir / "tenants.csv").resolve()),
                    "newest_day": sim.newest_day.isoformat(),
                }
            ).decode()
            + "\n"
        )
        sys.stdout.flush()
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                _reply(stats(sim))
            elif command == "clear":
                sim.clear_requests()
                _reply({"cleared": True})
            elif command.startswith("newest "):
                sim.newest_day = datetime.date.fromisoformat(command.split(maxsplit=1)[1])
                _reply({"newest_day": sim.newest_day.isoformat()})
            elif command == "quit":
                break
            else:
                _reply({"error": f"unknown command {command!r}"})


if __name__ == "__main__":
    main()
