"""The floor: the fetcher's job done with no framework, to show what the fetcher's own machinery costs.

The same HTTP requests (a client-credentials token per tenant by a plain POST, then `$top=days` and the
`@odata.nextLink`s until `days` objects came), the same concurrency (`2 x concurrency` tenants at a time,
`concurrency` requests in flight), orjson parsing, and each object flattened into the same tables' rows
(the schema made by the project's migrations) with plain driver `executemany` in one transaction per
tenant: sqlite3 in one writer thread, or asyncpg with four pooled writers. Nothing else: no validation, no
retries, no upsert semantics, no archive, no ledger. `--database none` fetches and parses only (a warm-up).

Prints one JSON line: what it stored and the requests it made.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.clients.common import read_tenants, simulator_arguments

SCORE_KEYS = frozenset(
    {
        "id",
        "azureTenantId",
        "createdDateTime",
        "currentScore",
        "maxScore",
        "activeUserCount",
        "licensedUserCount",
        "enabledServices",
        "vendorInformation",
        "averageComparativeScores",
        "controlScores",
    }
)
CONTROL_KEYS = frozenset(
    {
        "controlName",
        "controlCategory",
        "description",
        "score",
        "scoreInPercentage",
        "implementationStatus",
        "lastSynced",
        "on",
        "count",
        "total",
    }
)
COMPARATIVE_KEYS = frozenset({"basis", "averageScore", "SeatSizeRangeLowerValue", "SeatSizeRangeUpperValue"})

INSERT_SCORE = (
    "INSERT INTO secure_scores (tenant_id, score_date, id, created_at, current_score, max_score, active_user_count, "
    "licensed_user_count, enabled_services, vendor, provider, provider_version, sub_provider, partial, warning, "
    "extra, fetched_at, run_id) VALUES ({})"
)
INSERT_CONTROL = (
    "INSERT INTO controls (control_name, control_category, description, first_seen_date, last_seen_date) "
    "VALUES ({}) ON CONFLICT (control_name) DO NOTHING"
)
INSERT_CONTROL_SCORE = (
    "INSERT INTO control_scores (tenant_id, score_date, control_name, score, score_in_percentage, "
    'implementation_status, last_synced, is_on, "count", total, extra) VALUES ({})'
)
INSERT_COMPARATIVE = (
    "INSERT INTO comparative_scores (tenant_id, score_date, basis, average_score, seat_size_lower, "
    "seat_size_upper, extra) VALUES ({})"
)
INSERT_TENANT = "INSERT INTO tenants (tenant_id, name, updated_at) VALUES ({}) ON CONFLICT (tenant_id) DO NOTHING"
WIDTHS = {INSERT_SCORE: 18, INSERT_CONTROL: 5, INSERT_CONTROL_SCORE: 11, INSERT_COMPARATIVE: 7, INSERT_TENANT: 3}


def statement(template: str, style: str) -> str:
    count = WIDTHS[template]
    marks = ", ".join("?" if style == "qmark" else f"${i}" for i in range(1, count + 1))
    return template.format(marks)


# ------------------------------------------------------------------------------------------ flattening


class Rows:
    """One tenant's rows, in the binding form of one driver."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self.scores: list[tuple[Any, ...]] = []
        self.controls: dict[str, tuple[Any, ...]] = {}
        self.control_scores: list[tuple[Any, ...]] = []
        self.comparatives: list[tuple[Any, ...]] = []

    def when(self, text: str | None) -> Any:
        if text is None:
            return None
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=None).isoformat(" ") if self.sqlite else moment

    def day(self, moment: date) -> Any:
        return moment.isoformat() if self.sqlite else moment

    def add(self, obj: dict[str, Any], fetched_at: datetime, run_id: str) -> None:
        tenant = obj["azureTenantId"].lower()
        created = datetime.fromisoformat(obj["createdDateTime"])
        day = self.day(created.astimezone(UTC).date())
        vendor = obj.get("vendorInformation") or {}
        extra = {k: v for k, v in obj.items() if k not in SCORE_KEYS and v is not None}
        stamp = fetched_at.replace(tzinfo=None).isoformat(" ") if self.sqlite else fetched_at
        self.scores.append(
            (
                tenant,
                day,
                obj["id"],
                self.when(obj["createdDateTime"]),
                obj.get("currentScore"),
                obj.get("maxScore"),
                obj.get("activeUserCount"),
                obj.get("licensedUserCount"),
                _json(obj.get("enabledServices")),
                vendor.get("vendor"),
                vendor.get("provider"),
                vendor.get("providerVersion"),
                vendor.get("subProvider"),
                False,
                None,
                _json(extra),
                stamp,
                run_id,
            )
        )
        for item in obj.get("averageComparativeScores") or ():
            self.comparatives.append(
                (
                    tenant,
                    day,
                    item["basis"],
                    item.get("averageScore"),
                    _int(item.get("SeatSizeRangeLowerValue")),
                    _int(item.get("SeatSizeRangeUpperValue")),
                    _json({k: v for k, v in item.items() if k not in COMPARATIVE_KEYS and v is not None}),
                )
            )
        for item in obj.get("controlScores") or ():
            name = item["controlName"]
            on = item.get("on")
            self.control_scores.append(
                (
                    tenant,
                    day,
                    name,
                    item.get("score"),
                    item.get("scoreInPercentage"),
                    item.get("implementationStatus"),
                    self.when(item.get("lastSynced")),
                    None if on is None else on == "true",
                    _int(item.get("count")),
                    _int(item.get("total")),
                    _json({k: v for k, v in item.items() if k not in CONTROL_KEYS and v is not None}),
                )
            )
            if name not in self.controls:
                self.controls[name] = (name, item.get("controlCategory"), item.get("description"), day, day)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


# ---------------------------------------------------------------------------------------------- stores


class SqliteStore:
    """sqlite3 in one thread (SQLite has one writer), with the fetcher's pragmas."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 30000"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._sql = {template: statement(template, "qmark") for template in WIDTHS}

    async def save_tenants(self, tenants: list[tuple[str, str]], now: datetime) -> None:
        rows = [(t, n, now.replace(tzinfo=None).isoformat(" ")) for t, n in tenants]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, [(INSERT_TENANT, rows)])

    async def save(self, rows: Rows) -> None:
        batches = [
            (INSERT_SCORE, rows.scores),
            (INSERT_CONTROL, list(rows.controls.values())),
            (INSERT_CONTROL_SCORE, rows.control_scores),
            (INSERT_COMPARATIVE, rows.comparatives),
        ]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batches)

    def _write(self, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        for template, values in batches:
            if values:
                self._conn.executemany(self._sql[template], values)
        self._conn.execute("COMMIT")

    async def close(self) -> None:
        self._conn.close()
        self._executor.shutdown()


class PostgresStore:
    """asyncpg, four pooled writers (as the fetcher allows on PostgreSQL)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._sql = {template: statement(template, "numeric") for template in WIDTHS}

    @classmethod
    async def open(cls, url: str, writers: int) -> PostgresStore:
        import asyncpg

        return cls(await asyncpg.create_pool(url, min_size=writers, max_size=writers))

    async def save_tenants(self, tenants: list[tuple[str, str]], now: datetime) -> None:
        async with self._pool.acquire() as conn:
            await conn.executemany(self._sql[INSERT_TENANT], [(t, n, now) for t, n in tenants])

    async def save(self, rows: Rows) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            for template, values in (
                (INSERT_SCORE, rows.scores),
                (INSERT_CONTROL, sorted(rows.controls.values())),
                (INSERT_CONTROL_SCORE, rows.control_scores),
                (INSERT_COMPARATIVE, rows.comparatives),
            ):
                if values:
                    await conn.executemany(self._sql[template], values)

    async def close(self) -> None:
        await self._pool.close()


class NoStore:
    async def save_tenants(self, tenants: list[tuple[str, str]], now: datetime) -> None:
        pass

    async def save(self, rows: Rows) -> None:
        pass

    async def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- fetching


class Floor:
    def __init__(self, args: argparse.Namespace, session: aiohttp.ClientSession, store: Any) -> None:
        self.args = args
        self.session = session
        self.store = store
        self.secret = Path(args.client_secret_file).read_text(encoding="utf-8").strip()
        self.gate = asyncio.Semaphore(args.concurrency)
        self.requests = {"token": 0, "list": 0}
        self.totals = {"score_days": 0, "control_rows": 0, "comparative_rows": 0}
        self.run_id = "00000000-0000-4000-8000-00000000f100"

    async def token(self, tenant_id: str) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.args.client_id,
            "client_secret": self.secret,
            "scope": f"{self.args.origin}/.default",
        }
        async with self.gate:
            self.requests["token"] += 1
            async with self.session.post(f"{self.args.origin}/{tenant_id}/oauth2/v2.0/token", data=form) as answer:
                body = await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"token for {tenant_id}: {answer.status} {body[:200]!r}")
        token: str = orjson.loads(body)["access_token"]
        return token

    async def tenant(self, tenant_id: str) -> None:
        headers = {"Authorization": f"Bearer {await self.token(tenant_id)}", "Accept": "application/json"}
        days = self.args.days
        url: str | None = f"{self.args.origin}/v1.0/security/secureScores?$top={days}"
        objects: list[Any] = []
        while url is not None and len(objects) < days:
            async with self.gate:
                self.requests["list"] += 1
                async with self.session.get(url, headers=headers) as answer:
                    body = await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"list for {tenant_id}: {answer.status} {body[:200]!r}")
            page = orjson.loads(body)
            objects.extend(page["value"])
            url = page.get("@odata.nextLink")
        rows = Rows(isinstance(self.store, SqliteStore))
        fetched_at = datetime.now(UTC)
        for obj in objects[:days]:
            rows.add(obj, fetched_at, self.run_id)
        await self.store.save(rows)
        self.totals["score_days"] += len(rows.scores)
        self.totals["control_rows"] += len(rows.control_scores)
        self.totals["comparative_rows"] += len(rows.comparatives)

    async def run(self, tenants: list[tuple[str, str]]) -> None:
        await self.store.save_tenants(tenants, datetime.now(UTC))
        queue = [t for t, _ in reversed(tenants)]

        async def worker() -> None:
            while queue:
                await self.tenant(queue.pop())

        await asyncio.gather(*(worker() for _ in range(min(len(tenants), 2 * self.args.concurrency))))


async def open_store(database: str, writers: int) -> Any:
    if database == "none":
        return NoStore()
    if database.startswith("postgresql://"):
        return await PostgresStore.open(database, writers)
    return SqliteStore(Path(database))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    tenants = read_tenants(args.tenants_file)
    context = ssl.create_default_context(cafile=args.ca_file)
    store = await open_store(args.database, args.writers)
    connector = aiohttp.TCPConnector(ssl=context, limit=args.concurrency + 8)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            floor = Floor(args, session, store)
            await floor.run(tenants)
    finally:
        await store.close()
    return {**floor.totals, "requests": floor.requests, "seconds": time.perf_counter() - started}


def arguments() -> argparse.Namespace:
    parser = simulator_arguments("floor", __doc__)
    parser.add_argument("--writers", type=int, default=4, help="PostgreSQL connections writing at once")
    parser.add_argument("--database", required=True, help="a SQLite file, postgresql://..., or none")
    return parser.parse_args()


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(main(arguments()))).decode())
