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
from datetime import UTC, date, datetime, timedelta
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
    "INSERT INTO control_score_rows (tenant_key, score_date, control_key, status_key, score, score_in_percentage, "
    'last_synced, "count", total, is_on, extra) VALUES ({})'
)
# The keys of control_score_rows' texts (migration 0011): table, text column, key column.
KEY_TABLES = (
    ("tenant_keys", "tenant_id", "tenant_key"),
    ("control_keys", "control_name", "control_key"),
    ("status_texts", "implementation_status", "status_key"),
)
EPOCH = datetime(1970, 1, 1)
DAY_KEY = "INSERT INTO day_keys (day_key, score_date) VALUES (?, ?) ON CONFLICT DO NOTHING"  # SQLite (0014)
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

    def synced(self, text: str | None) -> Any:
        """control_score_rows.last_synced: microseconds since 1970 on SQLite, the time on PostgreSQL."""
        if text is None:
            return None
        moment = datetime.fromisoformat(text)
        return (
            (moment.astimezone(UTC).replace(tzinfo=None) - EPOCH) // timedelta(microseconds=1)
            if self.sqlite
            else moment
        )

    def texts(self) -> list[set[str]]:
        """The tenant ids, control names and statuses of the control scores (KEY_TABLES' order)."""
        found: list[set[str]] = [set(), set(), set()]
        for row in self.control_scores:
            found[0].add(row[0])
            found[1].add(row[2])
            if row[3] is not None:
                found[2].add(row[3])
        return found

    def keyed(self, keys: list[dict[str, int]]) -> list[tuple[Any, ...]]:
        """The control scores with their texts replaced by keys (the texts' keys resolved)."""
        tenants, controls, statuses = keys
        day = _day_key if self.sqlite else _same
        return [(tenants[r[0]], day(r[1]), controls[r[2]], statuses.get(r[3]), *r[4:]) for r in self.control_scores]

    def days(self) -> set[str]:
        """SQLite: the days of the control scores, as text (migration 0014's day_keys holds their keys)."""
        return {row[1] for row in self.control_scores}

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
                    item.get("implementationStatus"),
                    item.get("score"),
                    item.get("scoreInPercentage"),
                    self.synced(item.get("lastSynced")),
                    _int(item.get("count")),
                    _int(item.get("total")),
                    None if on is None else on == "true",
                    _json({k: v for k, v in item.items() if k not in CONTROL_KEYS and v is not None} or None),
                )
            )
            if name not in self.controls:
                self.controls[name] = (name, item.get("controlCategory"), item.get("description"), day, day)


def _day_key(text: str) -> int:
    """SQLite's control_score_rows.score_date: days since 1970 (migration 0014)."""
    return (date.fromisoformat(text) - EPOCH.date()).days


def _same(value: Any) -> Any:
    return value


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
        self._keys: list[dict[str, int]] = [{} for _ in KEY_TABLES]
        self._days: set[str] = set()

    async def save_tenants(self, tenants: list[tuple[str, str]], now: datetime) -> None:
        rows = [(t, n, now.replace(tzinfo=None).isoformat(" ")) for t, n in tenants]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, [(INSERT_TENANT, rows)])

    async def save(self, rows: Rows) -> None:
        batches = [
            (INSERT_SCORE, rows.scores),
            (INSERT_CONTROL, list(rows.controls.values())),
            (INSERT_COMPARATIVE, rows.comparatives),
        ]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batches, rows)

    def _write(self, batches: list[tuple[str, list[tuple[Any, ...]]]], rows: Rows | None = None) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        for template, values in batches:
            if values:
                self._conn.executemany(self._sql[template], values)
        if rows is not None and rows.control_scores:
            self._resolve(rows.texts())
            days = sorted(rows.days() - self._days)
            self._conn.executemany(DAY_KEY, [(_day_key(d), d) for d in days])
            self._days.update(days)
            self._conn.executemany(self._sql[INSERT_CONTROL_SCORE], rows.keyed(self._keys))
        self._conn.execute("COMMIT")

    def _resolve(self, wanted: list[set[str]]) -> None:
        """Insert the texts without a key and read their keys (kept once committed: one writer, no failures)."""
        for (table, text, key), known, texts in zip(KEY_TABLES, self._keys, wanted, strict=True):
            missing = sorted(texts - known.keys())
            if missing:
                insert = f"INSERT INTO {table} ({text}) VALUES (?) ON CONFLICT DO NOTHING"
                self._conn.executemany(insert, [(t,) for t in missing])
                marks = ", ".join("?" * len(missing))
                known.update(
                    self._conn.execute(f"SELECT {text}, {key} FROM {table} WHERE {text} IN ({marks})", missing)
                )

    async def close(self) -> None:
        self._conn.close()
        self._executor.shutdown()


class PostgresStore:
    """asyncpg, four pooled writers (as the fetcher allows on PostgreSQL)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._sql = {template: statement(template, "numeric") for template in WIDTHS}
        self._keys: list[dict[str, int]] = [{} for _ in KEY_TABLES]

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
                (INSERT_COMPARATIVE, rows.comparatives),
            ):
                if values:
                    await conn.executemany(self._sql[template], values)
            if rows.control_scores:
                keys = await self._resolve(conn, rows.texts())
                await conn.executemany(self._sql[INSERT_CONTROL_SCORE], rows.keyed(keys))

    async def _resolve(self, conn: Any, wanted: list[set[str]]) -> list[dict[str, int]]:
        """The texts' keys, inserting the missing ones; cached only after their transaction commits (here:
        keys read back already committed), as in the fetcher, since another writer may roll back."""
        keys = [dict(known) for known in self._keys]
        for (table, text, key), known, found, texts in zip(KEY_TABLES, self._keys, keys, wanted, strict=True):
            missing = sorted(texts - found.keys())
            if missing:
                committed = await conn.fetch(f"SELECT {text}, {key} FROM {table} WHERE {text} = ANY($1)", missing)
                known.update((r[0], r[1]) for r in committed)
                found.update((r[0], r[1]) for r in committed)
                missing = sorted(texts - found.keys())
            if missing:
                insert = f"INSERT INTO {table} ({text}) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"
                await conn.execute(insert, missing)
                found.update(
                    (r[0], r[1])
                    for r in await conn.fetch(f"SELECT {text}, {key} FROM {table} WHERE {text} = ANY($1)", missing)
                )
        return keys

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
