"""Real Graph answers that mislead (issue 12), as rewrites of a correct object, sans I/O.

- `placeholder_comparatives`: for some weeks Graph answered the TotalSeats and IndustryTypes comparatives
  with every number set to -1 while AllTenants stayed right;
- `inconsistent_ids`: one answer held two objects with different ids but the same `createdDateTime`;
- `shifted_days`: objects whose `createdDateTime` is a day before the day their id names;
- `type_changed`: a schema change, `createdDateTime` a number (Unix seconds) and `controlScores` an object,
  which the fetcher must quarantine as a validation failure, not retry or store. (A figure of another type,
  `currentScore` as "12.5", is read or kept in `extra` by design, not quarantined: see fetcher.normalize.)
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import orjson

PLACEHOLDER_BASES = ("TotalSeats", "IndustryTypes")
PLACEHOLDER = {"averageScore": -1.0, "seatSizeRangeLowerValue": -1, "seatSizeRangeUpperValue": -1, "categoryValue": -1}


def placeholder_comparatives(obj: bytes) -> bytes:
    """The object with TotalSeats and IndustryTypes comparatives that hold -1 for every number.

    A day without comparatives (older days often have none) gets them, so every answer shows the quirk.
    """
    document: dict[str, Any] = orjson.loads(obj)
    kept = [c for c in document.get("averageComparativeScores") or [] if c.get("basis") not in PLACEHOLDER_BASES]
    document["averageComparativeScores"] = [*kept, *({"basis": b, **PLACEHOLDER} for b in PLACEHOLDER_BASES)]
    return orjson.dumps(document)


def inconsistent_ids(objects: Sequence[bytes]) -> list[bytes]:
    """The objects, each after the first claiming the first's `createdDateTime` (ids left as they were)."""
    if len(objects) < 2:
        return list(objects)
    created = orjson.loads(objects[0])["createdDateTime"]
    rewritten = [objects[0]]
    for obj in objects[1:]:
        document = orjson.loads(obj)
        document["createdDateTime"] = created
        rewritten.append(orjson.dumps(document))
    return rewritten


def shifted_days(objects: Sequence[bytes]) -> list[bytes]:
    """The objects, each with a `createdDateTime` one day before the day its id names (ids unchanged)."""
    rewritten = []
    for obj in objects:
        document = orjson.loads(obj)
        created = datetime.datetime.fromisoformat(document["createdDateTime"])
        document["createdDateTime"] = (created - datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z")
        rewritten.append(orjson.dumps(document))
    return rewritten


def type_changed(obj: bytes) -> bytes:
    """The object with `createdDateTime` as Unix seconds, not an ISO 8601 string, and `controlScores` as an
    object, not a list."""
    document: dict[str, Any] = orjson.loads(obj)
    created = datetime.datetime.fromisoformat(document["createdDateTime"])
    document["createdDateTime"] = int(created.timestamp())
    document["controlScores"] = {"value": document.get("controlScores") or []}
    return orjson.dumps(document)
