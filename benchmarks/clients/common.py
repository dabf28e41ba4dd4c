"""What the floor and the peer clients share: how they are pointed at the simulator, and its tenants."""

from __future__ import annotations

import argparse
import csv


def simulator_arguments(module: str, doc: str | None) -> argparse.ArgumentParser:
    """A client's parser with the simulator's address, trust, credentials, tenants and workload."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.clients.{module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--origin", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret-file", required=True)
    parser.add_argument("--tenants-file", required=True)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--concurrency", type=int, default=16)
    return parser


def read_tenants(path: str) -> list[tuple[str, str]]:
    """The simulator's tenants CSV as (tenant_id, name) pairs."""
    with open(path, newline="", encoding="utf-8") as file:
        return [(row["tenant_id"].lower(), row["name"]) for row in csv.DictReader(file)]
