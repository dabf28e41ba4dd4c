"""3. Peer: the CPU-bound workload fetched with Microsoft's official `msgraph-sdk`, parsed into its models and
stored nowhere, beside the fetcher's full job (fetch, normalize, archive, upsert into SQLite, default
configuration) on the same workload in the same invocation.

    ratio = fetcher fetch-and-store wall seconds / msgraph-sdk fetch-and-parse wall seconds

No target is set by the issue; the row says how the full job compares with the SDK's fetch alone. CPU seconds
are shown beside it. `msgraph-sdk` is in the `bench` extra (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import importlib.util

from benchmarks import cpu
from benchmarks.harness import client_argv, measure, seconds, sqlite_url
from benchmarks.session import Session
from benchmarks.table import Row, skipped

NAME = "peer"


def run(session: Session) -> list[Row]:
    if importlib.util.find_spec("msgraph") is None:
        return [skipped("peer msgraph-sdk", "msgraph-sdk is not installed: pip install -e '.[bench]'")]
    sizes = session.sizes
    with cpu.simulator(session, "peer-sim") as sim:
        cpu.warm_up(session, sim)
        ours = session.shared.get("fetcher-sqlite")
        if ours is None:
            path = session.directory(NAME) / "fetcher.db"
            ours = cpu.run_fetcher(session, sim, sqlite_url(path), "peer-fetcher-sqlite", keep_raw=True)
        session.log(f"{NAME}: msgraph-sdk ({sizes.cpu_tenants} tenants x {sizes.cpu_days} days)")
        theirs = measure(client_argv("msgraph_peer", *sim.client_args(), "--days", str(sizes.cpu_days))).check()
    report = theirs.json()
    if (report["score_days"], report["control_rows"]) != (ours.score_days, ours.control_rows):
        raise RuntimeError(
            f"peer: msgraph-sdk parsed {report['score_days']} score-days and {report['control_rows']}"
            f" control scores, the fetcher stored {ours.score_days} and {ours.control_rows}"
        )
    theirs_rate = report["score_days"] / theirs.wall
    return [
        Row(
            "peer: fetcher fetch+store vs msgraph-sdk fetch+parse",
            f"{ours.rate:.0f} score-days/s ({seconds(ours.run.wall)}, {ours.run.cpu:.0f} CPU s)",
            f"msgraph-sdk {theirs_rate:.0f} score-days/s ({seconds(theirs.wall)}, {theirs.cpu:.0f} CPU s)",
            ours.run.wall / theirs.wall,
        ),
    ]
