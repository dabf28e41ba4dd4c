"""Hostile answers end to end, through `fetcher` against the simulator: each is refused or coerced with a
clear message; never a crash, a hang, or a token sent where it does not belong. An answer that is still
not JSON after its retries is quarantined, capped, and shows in `fetcher status`."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from fetcher.simulator import Fault, Hostile, Simulator, generate_tenants, running_simulator
from fetcher.simulator.hostile import DEPTH, truncated
from fetcher.simulator.pages import context_url, entity_body, page_body
from fetcher.store.save import REJECTED_BODY_CAP
from fetcher.store.schema import secure_scores
from tests.reliability.conftest import Figures
from tests.reliability.harness import (
    CLIENT_SECRET,
    Rig,
    StoredDay,
    Transcripts,
    all_rows,
    assert_equals_truth,
    essence,
    ledger,
    rejections,
    rig,
    truth,
)

pytestmark = pytest.mark.slow

SEED = 59
DAYS = 25  # more than a page: the next link matters
YEAR = 365 * 24 * 3600.0
NOT_FOLLOWED = "was not followed and no token was sent"


def first_page(
    r: Rig, tenant_id: str, change: Callable[[list[bytes]], list[bytes]] = lambda o: o, next_link: str | None = None
) -> bytes:
    """The tenant's real first page, its objects changed by `change`, pointing at `next_link`."""
    days = r.sim.available_days(tenant_id)[:20]
    objects = change([r.sim.day_bytes(tenant_id, day) for day in days])
    return page_body(context_url(r.running.origin), next_link, objects)


def raw_number(name: str, literal: bytes) -> Callable[[list[bytes]], list[bytes]]:
    """The newest object's `name` replaced by a raw JSON literal no strict parser accepts (NaN, 1e309)."""
    pattern = re.compile(rb'"' + name.encode() + rb'":[^,]+')
    return lambda objects: [pattern.sub(b'"' + name.encode() + b'":' + literal, objects[0], count=1), *objects[1:]]


def strings_for_numbers(objects: list[bytes]) -> list[bytes]:
    newest: dict[str, Any] = orjson.loads(objects[0])
    newest.update(currentScore="high", maxScore="1e309", activeUserCount="many")
    newest["controlScores"][0]["score"] = "NaN"
    return [orjson.dumps(newest), *objects[1:]]


def outcomes(r: Rig) -> dict[str, tuple[str, str | None, str | None]]:
    rows = ledger(r.database_url)[1]
    return {row["tenant_id"]: (row["status"], row["error_kind"], row["error_message"]) for row in rows}


def test_a_next_link_to_another_origin_is_never_requested(
    tmp_path: Path, transcripts: Transcripts, figures: Figures
) -> None:
    """Links to another port, another name for the same server, plain http, or with user info: none is
    followed, so nothing (a token least of all) reaches the other server, which records every request."""
    tenants = generate_tenants(6, seed=SEED)
    evil = Simulator(tenants, seed=SEED, client_secret=CLIENT_SECRET)
    with (
        running_simulator(evil, tls_dir=tmp_path / "evil-tls") as elsewhere,
        rig(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'links.db'}",
            tenants,
            transcripts,
            seed=SEED,
            controls_per_day=40,
            fetch={"history_days": DAYS},
        ) as r,
    ):
        port, path = r.running.port, "/v1.0/security/secureScores?$top=25&$skiptoken=stolen"
        links = {
            "another port": f"{elsewhere.origin}{path}",
            "another name for this server": f"https://localhost:{port}{path}",
            "plain http": f"http://127.0.0.1:{port}{path}",
            "user info": f"https://someone:secret@127.0.0.1:{port}{path}",
        }
        hostile = dict(zip(list(r.sim.tenants)[:5], [*links.values(), None], strict=True))
        names = [*links, "evil.example.invalid"]
        for (tenant_id, link), name in zip(hostile.items(), names, strict=True):
            fault = (
                Fault.status(200, body=first_page(r, tenant_id, next_link=link), endpoint="list")
                if link
                else Fault.hostile(Hostile.FOREIGN_NEXT_LINK)
            )
            r.sim.add_fault(tenant_id, fault)
            figures.faults[f"foreign next link: {name}"] += 1

        done = r.fetcher("backfill")

        assert done.returncode == 1, essence(done.stderr)
        # The other server's certificate is one the fetcher trusts: only the refusal kept it from being asked.
        assert elsewhere.ca_file.read_bytes() == r.running.ca_file.read_bytes()
        assert elsewhere.simulator.requests == []
        assert {t: o[:2] for t, o in outcomes(r).items() if t in hostile} == dict.fromkeys(
            hostile, ("failed", "unsafe_response")
        )
        assert all(NOT_FOLLOWED in outcomes(r)[t][2] for t in hostile)
        for tenant_id in hostile:
            lists = [q for q in r.sim.requests if q.tenant_id == tenant_id and q.endpoint == "list"]
            assert [q.query.get("$skiptoken") for q in lists] == [None]
        assert all(q.authorization for q in r.sim.requests if q.endpoint in ("list", "get"))
        assert not [q for q in r.sim.requests if q.endpoint == "other"]
        healthy = list(r.sim.tenants)[5]
        assert_equals_truth(r.database_url, r.sim, {**dict.fromkeys(hostile, 0), healthy: DAYS})


@dataclass(frozen=True)
class HostileRun:
    """One backfill in which each tenant but the last meets one hostile answer."""

    rig: Rig
    tenants: dict[str, str]  # name -> tenant id
    done: subprocess.CompletedProcess[str]
    took: float
    garbage: bytes


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, transcripts: Transcripts) -> Iterator[HostileRun]:
    tmp_path = tmp_path_factory.mktemp("hostile")
    names = (
        "huge",
        "deep",
        "NaN",
        "1e309",
        "strings for numbers",
        "Retry-After a year",
        "Retry-After date a year",
        "not JSON, above the quarantine cap",
        "healthy",
    )
    graph = {"max_response_bytes": 1024 * 1024, "timeout_seconds": 2}
    with rig(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'hostile.db'}",
        generate_tenants(len(names), seed=SEED + 1),
        transcripts,
        seed=SEED + 1,
        controls_per_day=40,
        fetch={"history_days": DAYS},
        graph=graph,
    ) as r:
        ids = dict(zip(names, r.sim.tenants, strict=True))
        garbage = b'{"value": [' + b"\x00\xff not json " * 40_000
        faults = {
            "huge": Fault.hostile(Hostile.HUGE, megabytes=3),
            "deep": Fault.hostile(Hostile.DEEP),
            "NaN": Fault.status(
                200, body=first_page(r, ids["NaN"], raw_number("currentScore", b"NaN")), endpoint="list"
            ),
            "1e309": Fault.status(
                200, body=first_page(r, ids["1e309"], raw_number("maxScore", b"1e309")), endpoint="list"
            ),
            "strings for numbers": Fault.status(
                200, body=first_page(r, ids["strings for numbers"], strings_for_numbers), endpoint="list", times=1
            ),
            "Retry-After a year": Fault.status(429, retry_after=YEAR),
            "Retry-After date a year": Fault.status(503, retry_after=YEAR, retry_after_as_date=True),
            "not JSON, above the quarantine cap": Fault.status(200, body=garbage, endpoint="list"),
        }
        for name, fault in faults.items():
            r.sim.add_fault(ids[name], fault)
        started = time.monotonic()
        done = r.fetcher("backfill", "--days", "20")
        yield HostileRun(r, ids, done, time.monotonic() - started, garbage)


def test_each_hostile_answer_is_refused_or_coerced_with_a_clear_message(hostile: HostileRun, figures: Figures) -> None:
    r, ids, done = hostile.rig, hostile.tenants, hostile.done
    figures.faults.update(f"hostile: {name}" for name in ids if name != "healthy")

    assert done.returncode == 1, essence(done.stderr)
    assert "Traceback" not in done.stderr
    assert hostile.took < 30, "a hostile answer stalled the run"
    got = outcomes(r)
    assert {name: got[t][:2] for name, t in ids.items()} == {
        "huge": ("failed", "unsafe_response"),
        "deep": ("failed", "invalid_response"),
        "NaN": ("failed", "invalid_response"),
        "1e309": ("failed", "invalid_response"),
        "strings for numbers": ("succeeded", None),
        "Retry-After a year": ("failed", "retry_wait_too_long"),
        "Retry-After date a year": ("failed", "retry_wait_too_long"),
        "not JSON, above the quarantine cap": ("failed", "invalid_response"),
        "healthy": ("succeeded", None),
    }
    assert "[graph] max_response_bytes = 1048576" in str(got[ids["huge"]][2])
    assert "max_retry_wait_seconds = 5" in str(got[ids["Retry-After a year"]][2])
    assert "max_retry_wait_seconds = 5" in str(got[ids["Retry-After date a year"]][2])
    for name in ("huge", "Retry-After a year", "Retry-After date a year"):  # refused at once, not retried
        assert len([q for q in r.sim.requests if q.tenant_id == ids[name] and q.endpoint == "list"]) == 1
    assert_equals_truth(
        r.database_url,
        r.sim,
        {
            **dict.fromkeys(ids.values(), 0),
            ids["healthy"]: 20,
            ids["strings for numbers"]: coerced_truth(hostile),
        },
    )


def test_answers_still_not_json_are_quarantined_capped_and_shown_in_status(hostile: HostileRun) -> None:
    r, ids = hostile.rig, hostile.tenants
    unreadable = ("deep", "NaN", "1e309", "not JSON, above the quarantine cap")

    quarantine = {row["tenant_id"]: row for row in rejections(r.database_url)}

    assert set(quarantine) == {ids[name] for name in unreadable}
    assert all("not valid JSON" in quarantine[ids[name]]["reason"] for name in unreadable)
    deep = quarantine[ids["deep"]]
    assert deep["size"] == len(deep["body"]) > 2 * DEPTH
    assert b"NaN" in quarantine[ids["NaN"]]["body"]
    assert b"1e309" in quarantine[ids["1e309"]]["body"]
    big, garbage = quarantine[ids["not JSON, above the quarantine cap"]], hostile.garbage
    assert (big["size"], big["truncated"], big["body"]) == (len(garbage), True, garbage[:REJECTED_BODY_CAP])
    status = r.fetcher("status", "--format", "json", "--max-age", "10000")
    shown = {s["tenant_id"]: s["rejected_payloads"] for s in json.loads(status.stdout)}
    assert shown == {t: int(t in quarantine) for t in ids.values()}


def test_strings_where_numbers_belong_leave_the_column_null_and_are_kept_in_extra(hostile: HostileRun) -> None:
    r, tenant = hostile.rig, hostile.tenants["strings for numbers"]
    newest = r.sim.expected_objects(tenant, 1)[0]["id"]

    row = next(row for row in all_rows(r.database_url, secure_scores)["secure_scores"] if row["id"] == newest)

    assert (row["current_score"], row["max_score"], row["active_user_count"]) == (None, None, None)
    assert {k: row["extra"][k] for k in ("currentScore", "maxScore", "activeUserCount")} == {
        "currentScore": "high",
        "maxScore": "1e309",
        "activeUserCount": "many",
    }


def coerced_truth(hostile: HostileRun) -> dict[str, StoredDay]:
    """The truth of the tenant whose newest day had strings for numbers: that day's score is null."""
    r, tenant = hostile.rig, hostile.tenants["strings for numbers"]
    days = truth(r.sim, tenant, 20)
    newest = next(iter(days))
    days[newest] = dataclasses.replace(days[newest], current_score=None)
    return days


def test_a_get_answer_still_not_json_after_its_retries_is_quarantined(
    tmp_path: Path, transcripts: Transcripts, figures: Figures
) -> None:
    tenant = generate_tenants(1, seed=SEED + 2)[0]
    with rig(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'get.db'}",
        [tenant],
        transcripts,
        seed=SEED + 2,
        controls_per_day=40,
    ) as r:
        r.sim.add_fault(tenant.tenant_id, Fault.malformed_json(endpoint="get"))
        figures.faults["malformed JSON on get"] += 1
        score_id = r.sim.expected_objects(tenant.tenant_id, 1)[0]["id"]

        done = r.fetcher("get", score_id)

        assert done.returncode == 1, essence(done.stderr)
        assert "not valid JSON" in done.stderr
        gets = [q for q in r.sim.requests if q.endpoint == "get"]
        assert len(gets) == 3  # [fetch] max_attempts
        assert {t: o[:2] for t, o in outcomes(r).items()} == {tenant.tenant_id: ("failed", "invalid_response")}
        sent = truncated(
            entity_body(context_url(r.running.origin, entity=True), r.sim.day_bytes(tenant.tenant_id, r.sim.newest_day))
        )
        (quarantined,) = rejections(r.database_url)
        assert (quarantined["body"], quarantined["size"], quarantined["truncated"]) == (sent, len(sent), False)
        assert all_rows(r.database_url, secure_scores)["secure_scores"] == []


@pytest.mark.parametrize("keep_raw", [True, False], ids=["archive", "no-archive"])
def test_an_object_nested_deeper_than_can_be_stored_is_quarantined(
    tmp_path: Path, transcripts: Transcripts, figures: Figures, keep_raw: bool
) -> None:
    """orjson reads JSON 1024 levels deep but writes only 254: such an object is refused alone, the rest stored."""
    tenant = generate_tenants(1, seed=SEED + 3)[0]
    with rig(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'nested.db'}",
        [tenant],
        transcripts,
        seed=SEED + 3,
        controls_per_day=40,
        database={"keep_raw": keep_raw},
    ) as r:

        def nest(objects: list[bytes]) -> list[bytes]:
            return [objects[0][:-1] + b',"nested":' + b"[" * 300 + b"]" * 300 + b"}", *objects[1:]]

        r.sim.add_fault(
            tenant.tenant_id, Fault.status(200, body=first_page(r, tenant.tenant_id, nest), endpoint="list", times=1)
        )
        figures.faults["object nested 300 levels deep"] += 1

        done = r.fetcher("backfill", "--days", "20")

        assert done.returncode == 0, essence(done.stderr)
        assert "Traceback" not in done.stderr
        assert [o[:2] for o in outcomes(r).values()] == [("partial", None)]
        (quarantined,) = rejections(r.database_url)
        assert "nested" in quarantined["reason"]
        assert quarantined["body"].startswith(b'{"id":"' + tenant.tenant_id.encode())
        newest = r.sim.expected_objects(tenant.tenant_id, 1)[0]["id"]
        days = {day: value for day, value in truth(r.sim, tenant.tenant_id, 20).items() if day != newest}
        if keep_raw:
            assert_equals_truth(r.database_url, r.sim, {tenant.tenant_id: days})
        else:
            assert {row["id"] for row in all_rows(r.database_url, secure_scores)["secure_scores"]} == set(days)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_an_object_holding_a_nul_character_is_quarantined_alone(
    tmp_path: Path, transcripts: Transcripts, figures: Figures, backend: str, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL's text and jsonb refuse U+0000; one such string must not cost the tenant its other days."""
    tenant = generate_tenants(1, seed=SEED + 4)[0]
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'nul.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("reliability_postgres")
    )
    with rig(tmp_path, url, [tenant], transcripts, seed=SEED + 4, controls_per_day=40) as r:

        def nul(objects: list[bytes]) -> list[bytes]:
            newest = objects[0].replace(b'"controlName":"', b'"controlName":"\\u0000', 1)
            return [newest.replace(b'"vendor":"Microsoft"', b'"vendor":"Micro\\u0000soft"'), *objects[1:]]

        def escaped_backslash(objects: list[bytes]) -> list[bytes]:  # \\u0000: a backslash, then "u0000"
            return [
                objects[0],
                objects[1].replace(b'"vendor":"Microsoft"', b'"vendor":"Micro\\\\u0000soft"'),
                *objects[2:],
            ]

        page = first_page(r, tenant.tenant_id, lambda objects: escaped_backslash(nul(objects)))
        r.sim.add_fault(tenant.tenant_id, Fault.status(200, body=page, endpoint="list", times=1))
        figures.faults["NUL character in a string"] += 1

        done = r.fetcher("backfill", "--days", "20")

        assert done.returncode == 0, essence(done.stderr)
        assert [o[:2] for o in outcomes(r).values()] == [("partial", None)]
        (quarantined,) = rejections(r.database_url)
        newest = r.sim.expected_objects(tenant.tenant_id, 1)[0]["id"]
        assert quarantined["reason"].startswith(f"object {newest}: controlScores[0].controlName holds a NUL")
        assert b"Micro\\u0000soft" in quarantined["body"]
        days = {day: value for day, value in truth(r.sim, tenant.tenant_id, 20).items() if day != newest}
        assert_equals_truth(r.database_url, r.sim, {tenant.tenant_id: days})


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_values_longer_than_their_columns_are_quarantined_alike_on_every_database(
    tmp_path: Path, transcripts: Transcripts, figures: Figures, backend: str, request: pytest.FixtureRequest
) -> None:
    """An `id` over 100 characters, a `controlName` over 256, a `basis` over 128: PostgreSQL refuses them
    (`value too long for type character varying`), SQLite would keep them. Both quarantine exactly those
    objects, with the field and the limit named, and store the tenant's other days."""
    tenant = generate_tenants(1, seed=SEED + 5)[0]
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'long.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("reliability_postgres")
    )
    with rig(tmp_path, url, [tenant], transcripts, seed=SEED + 5, controls_per_day=40) as r:
        # The simulator leaves averageComparativeScores empty on some days (which ones depends on the
        # date), so the over-long basis goes to the newest day that has one.
        expected = r.sim.expected_objects(tenant.tenant_id, 20)
        with_basis = next(i for i, o in enumerate(expected) if o.get("averageComparativeScores"))
        i_id, i_name = [i for i in range(20) if i != with_basis][:2]
        chosen = {i_id, i_name, with_basis}

        def over_long(objects: list[bytes]) -> list[bytes]:
            decoded = [orjson.loads(o) for o in objects]
            decoded[i_id]["id"] += "x" * (101 - len(decoded[i_id]["id"]))
            decoded[i_name]["controlScores"][1]["controlName"] = "N" * 257
            decoded[with_basis]["averageComparativeScores"][0]["basis"] = "B" * 129
            return [orjson.dumps(o) if i in chosen else objects[i] for i, o in enumerate(decoded)]

        page = first_page(r, tenant.tenant_id, over_long)
        r.sim.add_fault(tenant.tenant_id, Fault.status(200, body=page, endpoint="list", times=1))
        figures.faults["values longer than their columns"] += 3

        done = r.fetcher("backfill", "--days", "20")

        assert done.returncode == 0, essence(done.stderr)
        assert [o[:2] for o in outcomes(r).values()] == [("partial", None)]
        reasons = sorted(row["reason"] for row in rejections(r.database_url))
        assert reasons == [
            "averageComparativeScores[0].basis is 129 characters long; the column holds at most 128",
            "controlScores[1].controlName is 257 characters long; the column holds at most 256",
            "id is 101 characters long; the column holds at most 100",
        ]
        refused = {expected[i]["id"] for i in chosen}
        days = {day: value for day, value in truth(r.sim, tenant.tenant_id, 20).items() if day not in refused}
        assert len(days) == 17
        assert_equals_truth(r.database_url, r.sim, {tenant.tenant_id: days})
