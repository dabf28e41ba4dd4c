"""How long the reports take at MSP scale: 1,000 tenants × 90 days × 230 controls (~20 million control_scores).

    python -m tests.report.bench_reports sqlite+aiosqlite:////tmp/bench.db [--tenants 1000] [--base 50]
    python -m tests.report.bench_reports postgresql+asyncpg://postgres@127.0.0.1:5432/bench

Filling: `--base` tenants of the simulator go through normalize_score and the store's own upserts
(save_score_days), 90 days each; the rest are copies of those, made with INSERT ... SELECT under new
tenant ids (scores, controls and comparatives as the base tenant's). An existing filled database is
reused. On PostgreSQL the tables are analyzed after the load, as autovacuum would. Then each report is
produced in-process through `fetcher.report.produce`, the way `fetcher report` does, and timed.
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import DatabaseConfig, load_config
from fetcher.models import FetchContext
from fetcher.normalize import normalize_score
from fetcher.report import Format, ReportRequest, produce
from fetcher.simulator import Simulator, generate_tenants
from fetcher.store.engine import create_engine, ensure_schema, migrate, transaction
from fetcher.store.schema import comparative_scores, control_score_rows, control_scores, secure_scores, tenants
from fetcher.store.scores import save_score_days, save_tenants
from tests.report.conftest import write_report_config

DAYS = 90
SEED = 5


def clone_id(dialect: str, column: str, copy: int) -> str:
    """A new 36-character tenant id: the base id with its last 8 characters replaced by the copy number."""
    if dialect == "sqlite":
        return f"substr({column}, 1, 28) || printf('%08d', {copy})"
    return f"substr({column}, 1, 28) || lpad('{copy}', 8, '0')"


async def fill_base(engine: AsyncEngine, sim: Simulator, tenant_ids: list[str]) -> None:
    context = FetchContext("bench", datetime.now(UTC))
    for tenant_id in tenant_ids:
        days = [normalize_score(o, context) for o in sim.expected_objects(tenant_id, DAYS)]
        async with transaction(engine) as conn:
            await save_tenants(conn, [(tenant_id, sim.tenants[tenant_id].name)], context.fetched_at)
            await save_score_days(conn, days, context.fetched_at)


async def clone(engine: AsyncEngine, base: list[str], copies: int) -> None:
    """INSERT ... SELECT every base tenant's rows `copies` times under new tenant ids."""
    dialect = engine.dialect.name
    quoted = ", ".join(f"'{t}'" for t in base)
    for copy in range(1, copies + 1):
        new = clone_id(dialect, "tenant_id", copy)
        statements = [
            f"INSERT INTO tenants (tenant_id, name, updated_at) SELECT {new}, name || ' #{copy}', updated_at "
            f"FROM tenants WHERE tenant_id IN ({quoted})",
            _copy(secure_scores, new, quoted, {"id": f"{new} || substr(id, 37)"}),
            _copy(comparative_scores, new, quoted),
            f"INSERT INTO tenant_keys (tenant_id) SELECT {new} FROM tenant_keys WHERE tenant_id IN ({quoted})",
            _copy_control_rows(clone_id(dialect, "o.tenant_id", copy), quoted),
        ]
        async with transaction(engine) as conn:
            if dialect == "postgresql":
                # Copies of consistent rows: skip the per-row foreign-key triggers, which dominate the load.
                await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                await conn.execute(sa.text(statement))
        print(f"  copy {copy}/{copies} done", flush=True)


def _copy(table: sa.Table, new: str, quoted: str, override: dict[str, str] | None = None) -> str:
    names = [c.name for c in table.columns]
    values = [new if n == "tenant_id" else (override or {}).get(n, n) for n in names]
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(values)} FROM {table.name} "
        f"WHERE tenant_id IN ({quoted})"
    )


def _copy_control_rows(new: str, quoted: str) -> str:
    """The base tenants' control_score_rows under the copies' tenant keys."""
    names = [c.name for c in control_score_rows.columns]
    values = ["n.tenant_key" if name == "tenant_key" else f"r.{name}" for name in names]
    return (
        f"INSERT INTO control_score_rows ({', '.join(names)}) SELECT {', '.join(values)} "
        "FROM control_score_rows AS r JOIN tenant_keys AS o ON o.tenant_key = r.tenant_key "
        f"JOIN tenant_keys AS n ON n.tenant_id = {new} WHERE o.tenant_id IN ({quoted})"
    )


async def fill(url: str, n_tenants: int, n_base: int) -> list[tuple[str, str]]:
    engine = create_engine(DatabaseConfig(url=url, busy_timeout_seconds=60))
    await migrate(engine)
    sim = Simulator(generate_tenants(n_base, seed=SEED), seed=SEED, controls_per_day=230)
    base = list(sim.tenants)
    async with engine.connect() as conn:
        stored = int((await conn.execute(sa.select(sa.func.count()).select_from(tenants))).scalar_one())
    if stored < n_tenants:
        started = time.perf_counter()
        await fill_base(engine, sim, base)
        print(f"base: {n_base} tenants through the store's upserts in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        await clone(engine, base, n_tenants // n_base - 1)
        print(f"copies: INSERT ... SELECT in {time.perf_counter() - started:.0f} s")
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(sa.text("VACUUM ANALYZE"))
    async with engine.connect() as conn:
        names = [(t, n) for t, n in (await conn.execute(sa.select(tenants.c.tenant_id, tenants.c.name))).all()]
        counts = {
            t.name: int((await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one())
            for t in (tenants, secure_scores, control_scores)
        }
    await engine.dispose()
    print("rows:", counts)
    return names


async def timed(label: str, work: Any, results: dict[str, float]) -> None:
    started = time.perf_counter()
    await work
    results[label] = time.perf_counter() - started
    print(f"{label:<44} {results[label]:7.2f} s", flush=True)


async def queries(url: str, tenant_id: str, results: dict[str, float]) -> None:
    """The obvious questions a BI tool asks of the views, straight."""
    engine = create_engine(DatabaseConfig(url=url))
    await ensure_schema(engine)
    newest = datetime.now(UTC).date()
    asked = {
        "SELECT * FROM latest_scores": "SELECT * FROM latest_scores",
        "score_history, one tenant": f"SELECT * FROM score_history WHERE tenant_id = '{tenant_id}'",
        "score_history, all tenants, 90 days": (
            f"SELECT * FROM score_history WHERE score_date >= '{newest - timedelta(days=89)}'"
        ),
        "control_changes, one tenant, 90 days": f"SELECT * FROM control_changes WHERE tenant_id = '{tenant_id}' "
        f"AND score_date > '{newest - timedelta(days=90)}'",
        "control_changes, all tenants, newest day": f"SELECT * FROM control_changes WHERE score_date = '{newest}'",
        "control_changes, all tenants, 7 days, per tenant sum": "SELECT tenant_id, SUM(change) FROM control_changes "
        f"WHERE score_date > '{newest - timedelta(days=7)}' GROUP BY tenant_id",
    }
    for label, sql in asked.items():

        async def run(sql: str = sql) -> None:
            async with engine.connect() as conn:
                (await conn.execute(sa.text(sql))).all()

        await timed(f"query: {label}", run(), results)
    await engine.dispose()


async def reports(config: Path, tenant_id: str, out: Path, results: dict[str, float]) -> None:
    cfg = load_config(config, {"REPORT_SECRET": "unused"})
    quiet = Console(file=open(out / "console.txt", "w"), width=200)  # noqa: SIM115 - closed at exit
    for label, request in (
        ("report: portfolio table", ReportRequest(fmt=Format.TABLE, output=out / "portfolio.txt")),
        ("report: portfolio json", ReportRequest(fmt=Format.JSON, output=out / "portfolio.json")),
        ("report: tenant (90 days) table", ReportRequest(tenant_id=tenant_id, output=out / "tenant.txt")),
        ("report: portfolio html (1 chart per tenant)", ReportRequest(html=out / "portfolio.html")),
        ("report: tenant html", ReportRequest(tenant_id=tenant_id, html=out / "tenant.html")),
    ):
        await timed(label, produce(cfg, request, quiet, lambda *_: None), results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--base", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    names = asyncio.run(fill(args.url, args.tenants, args.base))
    config = write_report_config(args.out / "fetcher.toml", args.url, names)
    tenant_id = sorted(names)[len(names) // 2][0]
    results: dict[str, float] = {}
    asyncio.run(queries(args.url, tenant_id, results))
    asyncio.run(reports(config, tenant_id, args.out, results))


if __name__ == "__main__":
    main()
