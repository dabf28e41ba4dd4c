"""The tenant list's own size: a process that imports what the fetcher imports, loads a configuration and
selects its tenants, and holds them. Its peak RSS is the yardstick for the fetcher's; with `--trace` it
also prints the bytes the loaded list holds (tracemalloc: what stays allocated after loading).

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import orjson

import fetcher.cli
import fetcher.plan
from fetcher.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients.tenant_list", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    assert fetcher.cli.main is not None
    if args.trace:
        tracemalloc.start()
    config = load_config(args.config)
    tenants = fetcher.plan.select_tenants(config, [])
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if args.trace else None
    print(orjson.dumps({"tenants": len(tenants), "traced_bytes": traced}).decode())


if __name__ == "__main__":
    main()
