"""The views' definitions again, in plain Python over whole tables: what every report figure must equal."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.store.schema import comparative_scores, control_scores, secure_scores, tenants
from tests.dbutil import rows

Row = dict[str, Any]


async def tables(engine: AsyncEngine) -> dict[str, list[Row]]:
    return {t.name: await rows(engine, t) for t in (tenants, secure_scores, comparative_scores, control_scores)}


async def view(engine: AsyncEngine, table: sa.Table, **where: Any) -> list[Row]:
    query = sa.select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(query)).all()]


def percent(row: Row | None) -> float | None:
    if row is None or row["max_score"] is None or row["current_score"] is None or not row["max_score"] > 0:
        return None
    return 100.0 * row["current_score"] / row["max_score"]


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def latest_scores(t: dict[str, list[Row]], today: date) -> dict[str, Row]:
    days: dict[str, dict[date, Row]] = defaultdict(dict)
    for r in t["secure_scores"]:
        days[r["tenant_id"]][r["score_date"]] = r
    averages: dict[tuple[str, str], dict[date, Row]] = defaultdict(dict)
    for c in t["comparative_scores"]:
        if c["average_score"] is not None:
            averages[c["tenant_id"], c["basis"]][c["score_date"]] = c
    out = {}
    for tenant in t["tenants"]:
        tid = tenant["tenant_id"]
        out[tid] = _latest_row(tid, tenant["name"], days.get(tid, {}), averages, today)
    return out


def _baseline(days: dict[date, Row], newest: date, back: int) -> Row | None:
    older = [d for d in days if d <= newest - timedelta(days=back)]
    return days[max(older)] if older else None


def _latest_row(
    tid: str, name: str, days: dict[date, Row], averages: dict[tuple[str, str], dict[date, Row]], today: date
) -> Row:
    if not days:
        return {
            "tenant_id": tid,
            "tenant_name": name,
            "score_date": None,
            "current_score": None,
            "max_score": None,
            "percent": None,
            "baseline_7d_date": None,
            "change_7d_points": None,
            "change_7d_percent": None,
            "baseline_30d_date": None,
            "change_30d_points": None,
            "change_30d_percent": None,
            "all_tenants_average": None,
            "all_tenants_date": None,
            "total_seats_average": None,
            "total_seats_date": None,
            "total_seats_lower": None,
            "total_seats_upper": None,
            "days_since_newest": None,
        }
    newest = max(days)
    now = days[newest]
    row: Row = {
        "tenant_id": tid,
        "tenant_name": name,
        "score_date": newest,
        "current_score": now["current_score"],
        "max_score": now["max_score"],
        "percent": percent(now),
    }
    for back in (7, 30):
        base = _baseline(days, newest, back)
        row[f"baseline_{back}d_date"] = base["score_date"] if base else None
        row[f"change_{back}d_points"] = _minus(now["current_score"], base["current_score"] if base else None)
        row[f"change_{back}d_percent"] = _minus(percent(now), percent(base))
    for basis, prefix in (("AllTenants", "all_tenants"), ("TotalSeats", "total_seats")):
        found = averages.get((tid, basis), {})
        chosen = found[max(found)] if found else None
        row[f"{prefix}_average"] = chosen["average_score"] if chosen else None
        row[f"{prefix}_date"] = chosen["score_date"] if chosen else None
        if basis == "TotalSeats":
            row["total_seats_lower"] = chosen["seat_size_lower"] if chosen else None
            row["total_seats_upper"] = chosen["seat_size_upper"] if chosen else None
    row["days_since_newest"] = (today - newest).days
    return row


def control_changes(t: dict[str, list[Row]]) -> list[Row]:
    """Every control whose score differs from the tenant's previous day with control scores."""
    by_day: dict[str, dict[date, dict[str, Row]]] = defaultdict(lambda: defaultdict(dict))
    for c in t["control_scores"]:
        by_day[c["tenant_id"]][c["score_date"]][c["control_name"]] = c
    changes = []
    for tid, days in by_day.items():
        ordered = sorted(days)
        for previous, day in itertools.pairwise(ordered):
            changes += _day_changes(tid, previous, day, days[previous], days[day])
    return changes


def _day_changes(tid: str, previous: date, day: date, before: dict[str, Row], after: dict[str, Row]) -> list[Row]:
    out = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        old_score, new_score = (old["score"] if old else None), (new["score"] if new else None)
        if old is not None and new is not None and old_score == new_score:
            continue
        kind = "appeared" if old is None else "disappeared" if new is None else "changed"
        out.append(
            {
                "tenant_id": tid,
                "score_date": day,
                "previous_date": previous,
                "control_name": name,
                "previous_score": old_score,
                "score": new_score,
                "change": (new_score or 0.0) - (old_score or 0.0),
                "kind": kind,
            }
        )
    return out


def key(row: Row, fields: Sequence[str] = ("tenant_id", "score_date", "control_name")) -> tuple[Any, ...]:
    return tuple(row[f] for f in fields)
