"""Every fault the simulator can script, mixed across 100 tenants in one backfill: each tenant ends with the
status and error kind it deserves, every healthy day is stored exactly, and the run as a whole neither
crashes nor waits on its slowest trouble for longer than its retries allow."""

from __future__ import annotations

import dataclasses
import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from fetcher.simulator import Fault, Hostile, SimTenant, TokenRefusal, generate_client_certificate, generate_tenants
from fetcher.store.schema import comparative_scores, control_scores, controls, secure_scores
from tests.reliability.conftest import Figures
from tests.reliability.harness import (
    CERTIFICATE_PASSWORD,
    WRONG_PASSWORD,
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

SEED = 53
TENANTS = 100
DAYS = 25  # more than a page (20), so that second pages and next links are met
PAGE = 20
NORMALIZED = (secure_scores, comparative_scores, control_scores, controls)


@dataclass(frozen=True)
class Case:
    """One tenant's trouble and how it must end."""

    name: str
    faults: tuple[Fault, ...] = ()
    status: str = "succeeded"
    kind: str | None = None
    stored: str = "all"  # all | none | older (all but the newest day) | later (all but the first page)
    rejected: int = 0
    tenant: Mapping[str, Any] = field(default_factory=dict)  # SimTenant fields: consent, registered, ...
    auth: Mapping[str, Any] | None = None


def failed(kind: str, *, rejected: int = 0, stored: str = "none") -> dict[str, Any]:
    return {"status": "failed", "kind": kind, "rejected": rejected, "stored": stored}


YEAR = 365 * 24 * 3600.0
CASES = [
    Case("latency", (Fault.latency(400),)),
    Case("429 burst, Retry-After seconds", (Fault.status(429, retry_after=1, times=2),)),
    Case("429, Retry-After HTTP-date", (Fault.status(429, retry_after=1, retry_after_as_date=True, times=1),)),
    Case("429 always", (Fault.status(429, retry_after=0.2),), **failed("throttled")),
    Case("429, Retry-After of a year", (Fault.status(429, retry_after=YEAR),), **failed("retry_wait_too_long")),
    Case(
        "503, Retry-After HTTP-date a year away",
        (Fault.status(503, retry_after=YEAR, retry_after_as_date=True),),
        **failed("retry_wait_too_long"),
    ),
    *(Case(f"{status} once", (Fault.status(status, times=1),)) for status in (500, 502, 503, 504)),
    *(Case(f"{status} always", (Fault.status(status),), **failed("server_error")) for status in (500, 502, 503, 504)),
    Case("503 once on the second page", (Fault.status(503, skip=1, times=1),)),
    Case("timeout once", (Fault.timeout(5, times=1),)),
    Case("timeout always", (Fault.timeout(5),), **failed("timeout")),
    Case("malformed JSON once", (Fault.malformed_json(times=1),)),
    Case("malformed JSON always", (Fault.malformed_json(),), **failed("invalid_response", rejected=1)),
    Case(
        "malformed JSON always on the second page",
        (Fault.malformed_json(skip=1),),
        **failed("invalid_response", rejected=1),
    ),
    Case("206 partial content", (Fault.partial(times=1),), status="partial"),
    Case(
        "wrong tenant on the first page",
        (Fault.wrong_tenant(endpoint="list", times=1),),
        **failed("wrong_tenant", rejected=PAGE, stored="later"),
    ),
    Case("wrong tenant always", (Fault.wrong_tenant(endpoint="list"),), **failed("wrong_tenant", rejected=DAYS)),
    Case("hostile: huge", (Fault.hostile(Hostile.HUGE, megabytes=2),), **failed("unsafe_response")),
    Case("hostile: deep", (Fault.hostile(Hostile.DEEP),), **failed("invalid_response", rejected=1)),
    Case("hostile: NaN and 1e309", (Fault.hostile(Hostile.NAN),), **failed("invalid_response", rejected=1)),
    Case("hostile: foreign next link", (Fault.hostile(Hostile.FOREIGN_NEXT_LINK),), **failed("unsafe_response")),
    Case(
        "hostile: missing fields",
        (Fault.hostile(Hostile.MISSING_FIELDS, times=1),),
        status="partial",
        stored="older",
        rejected=1,
    ),
    Case(
        "hostile: not an object",
        (Fault.hostile(Hostile.NOT_OBJECT, times=1),),
        status="partial",
        stored="older",
        rejected=1,
    ),
    *(
        Case(f"token refusal: {refusal}", (Fault.token_refusal(refusal),), **failed("authentication"))
        for refusal in TokenRefusal
    ),
    Case("token endpoint 503 once", (Fault.status(503, endpoint="token", times=1),)),
    Case("token endpoint 429 once", (Fault.status(429, retry_after=1, endpoint="token", times=1),)),
    Case("token endpoint 500 always", (Fault.status(500, endpoint="token"),), **failed("server_error")),
    Case("token endpoint malformed JSON", (Fault.malformed_json(endpoint="token"),), **failed("authentication")),
    Case("Graph 401 once", (Fault.status(401, times=1),)),
    Case("Graph 401 always", (Fault.status(401),), **failed("authentication")),
    Case("Graph 400", (Fault.status(400),), **failed("bad_request")),
    Case("Graph 404 on the list", (Fault.status(404),), **failed("not_found")),
    Case("no consent", tenant={"consent": False}, **failed("permission")),
    Case("tenant not registered", tenant={"registered": False}, **failed("authentication")),
    Case("app not installed", tenant={"app_installed": False}, **failed("authentication")),
    Case("empty tenant", tenant={"empty": True}),
    Case("ten days of history", tenant={"days": 10}),
    Case("latency and a 429", (Fault.latency(300), Fault.status(429, retry_after=1, times=1))),
    Case("certificate with its password", auth={"method": "certificate", "certificate_password": "env:REL_CERT"}),
    Case(
        "certificate, wrong password",
        auth={"method": "certificate", "certificate_password": "env:REL_WRONG_CERT"},
        **failed("authentication"),
    ),
]


def plan(tenants: list[SimTenant]) -> dict[str, Case]:
    """Each case on a tenant of its own; the rest of the hundred are healthy."""
    assert len(CASES) < TENANTS
    cases = {t.tenant_id: case for t, case in zip(tenants, CASES, strict=False)}
    return {t.tenant_id: cases.get(t.tenant_id, Case("healthy")) for t in tenants}


def expected_days(r: Rig, tenant_id: str, case: Case) -> dict[str, StoredDay]:
    days = truth(r.sim, tenant_id, DAYS)
    ordered = list(days)  # newest first
    keep = {"all": ordered, "none": [], "older": ordered[1:], "later": ordered[PAGE:]}[case.stored]
    return {day: days[day] for day in keep}


@dataclass(frozen=True)
class MixedRun:
    rig: Rig
    cases: dict[str, Case]
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, transcripts: Transcripts) -> Iterator[MixedRun]:
    """One backfill of the hundred tenants, which the tests below examine."""
    tmp_path = tmp_path_factory.mktemp("mixed")
    certificate = generate_client_certificate(tmp_path / "cert", password=CERTIFICATE_PASSWORD)
    base = generate_tenants(TENANTS, seed=SEED)
    cases = plan(base)
    tenants = [dataclasses.replace(t, faults=cases[t.tenant_id].faults, **cases[t.tenant_id].tenant) for t in base]
    with rig(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'mixed.db'}",
        tenants,
        transcripts,
        seed=SEED,
        controls_per_day=40,
        client_certificate_pem=certificate.certificate_pem,
        fetch={"history_days": DAYS},
        graph={"timeout_seconds": 2, "max_response_bytes": 1024 * 1024},
    ) as r:
        r.extra_env.update(REL_CERT=CERTIFICATE_PASSWORD, REL_WRONG_CERT=WRONG_PASSWORD)
        auth = {
            t: {**c.auth, "certificate_path": str(certificate.password_pfx_file)} for t, c in cases.items() if c.auth
        }
        r.configure(tenant_auth=auth)
        yield MixedRun(r, cases, r.fetcher("backfill", timeout=240))


def test_every_fault_in_one_run_ends_each_tenant_as_it_should(mixed: MixedRun, figures: Figures) -> None:
    r, cases, done = mixed.rig, mixed.cases, mixed.done

    assert done.returncode == 1, essence(done.stderr)
    assert "Traceback" not in done.stderr
    for case in cases.values():
        if case.name != "healthy":
            figures.faults[f"mixed run: {case.name}"] += 1
    runs, rows = ledger(r.database_url)
    assert [run["status"] for run in runs] == ["partial"]
    outcome = {row["tenant_id"]: (row["status"], row["error_kind"], row["rejected"]) for row in rows}
    want = {t: (c.status, c.kind, c.rejected) for t, c in cases.items()}
    wrong = {cases[t].name: (outcome.get(t), want[t]) for t in want if outcome.get(t) != want[t]}
    assert not wrong, f"(got, wanted) per case: {wrong}"
    quarantined = Counter(row["tenant_id"] for row in rejections(r.database_url))
    assert quarantined == {t: c.rejected for t, c in cases.items() if c.rejected}
    figures.days_compared += assert_equals_truth(
        r.database_url, r.sim, {t: expected_days(r, t, c) for t, c in cases.items()}
    )
    messages = {row["tenant_id"]: row["error_message"] for row in rows if row["error_message"]}
    assert all("\n" not in m and len(m) < 1000 and t in m for t, m in messages.items())


def test_the_archive_of_a_faulty_run_rebuilds_what_it_stored(mixed: MixedRun) -> None:
    """Graph keeps 90 days: after them, the archive is the only copy, so it must hold every stored day."""
    r = mixed.rig
    before = all_rows(r.database_url, *NORMALIZED)

    rebuilt = r.fetcher("rebuild")

    assert rebuilt.returncode == 0, essence(rebuilt.stderr)
    assert all_rows(r.database_url, *NORMALIZED) == before
