"""What a run tells cron: its exit code, its failures grouped by cause, interrupted tenants apart from failed
ones, and log lines that say what the command does."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from fetcher.models import RequestStats, Status, TenantRef
from fetcher.outcome import RunReport, TenantOutcome, failure_groups
from fetcher.output import LogObserver
from fetcher.pipeline import _stopped_while

NOW = datetime(2026, 11, 30, 6, tzinfo=UTC)
TENANTS = [TenantRef(f"{i}{i}{i}{i}{i}{i}{i}{i}-0000-4000-8000-000000000000", f"Customer {i}") for i in range(1, 5)]
SECRET_REFUSED = "Entra ID refused the client secret (AADSTS7000215: invalid client secret) for [auth] client_id"


def outcome(
    tenant: TenantRef, status: Status, message: str | None = None, kind: str = "authentication"
) -> TenantOutcome:
    done = TenantOutcome(tenant, status, NOW, NOW, RequestStats())
    if message is not None:
        done.error_kind, done.error_message = kind, message
    return done


def report(command: str, *outcomes: TenantOutcome, stopped_by: int | None = None) -> RunReport:
    run = RunReport("run-1", command, NOW)
    run.counters.tenants_total = len(outcomes)
    for o in outcomes:
        run.add(o)
    run.stopped_by = stopped_by
    run.status = run.final_status()
    return run


def refused(tenant: TenantRef) -> TenantOutcome:
    return outcome(tenant, Status.FAILED, f"tenant {tenant.label}: {SECRET_REFUSED}")


@pytest.mark.parametrize(
    ("command", "statuses", "code"),
    [
        ("run", [Status.FAILED, Status.FAILED], 4),
        ("rebuild", [Status.FAILED], 4),
        ("backfill", [Status.FAILED, Status.SUCCEEDED], 1),
        ("run", [Status.SUCCEEDED, Status.PARTIAL], 0),
        ("get", [Status.FAILED], 1),  # one score asked for: not "every tenant of a run"
    ],
)
def test_every_tenant_failed_is_exit_4_some_is_1(command: str, statuses: list[Status], code: int) -> None:
    run = report(
        command,
        *(outcome(t, s, "boom" if s is Status.FAILED else None) for t, s in zip(TENANTS, statuses, strict=False)),
    )

    assert run.exit_code == code


def test_interrupted_tenants_are_counted_apart_from_failed_ones() -> None:
    run = report(
        "backfill",
        outcome(TENANTS[0], Status.SUCCEEDED),
        outcome(TENANTS[1], Status.INTERRUPTED, "stopped", kind="interrupted"),
        refused(TENANTS[2]),
        stopped_by=15,
    )

    totals = run.totals()
    assert (totals.tenants_succeeded, totals.tenants_failed, totals.tenants_interrupted) == (1, 1, 1)
    assert run.exit_code == 143
    assert run.status is Status.INTERRUPTED


def test_failures_sharing_a_cause_are_one_group_with_the_tenants_left_out() -> None:
    other = outcome(TENANTS[3], Status.FAILED, f"tenant {TENANTS[3].label}: Graph denied access (403)", "permission")

    groups = failure_groups([refused(t) for t in TENANTS[:3]] + [other])

    assert [(g.kind, g.line()) for g in groups] == [
        ("authentication", f"3 tenants: {SECRET_REFUSED}"),
        ("permission", f"tenant {TENANTS[3].label}: Graph denied access (403)"),
    ]


def test_bodies_cut_at_different_offsets_are_one_cause() -> None:
    """orjson's message carries where the body broke off; the offset is not the cause, and a lone tenant keeps it."""
    from fetcher.errors import InvalidResponse
    from fetcher.graph import decode_json

    def cut_short(tenant: TenantRef, size: int) -> TenantOutcome:
        with pytest.raises(InvalidResponse) as caught:
            decode_json(b'{"value": ["' + b"x" * size, tenant=tenant, status=200, url="https://graph.test/")
        return outcome(tenant, Status.FAILED, f"{caught.value}; gave up after 6 attempts", "invalid_response")

    [group] = failure_groups([cut_short(TENANTS[0], 10), cut_short(TENANTS[1], 20)])
    [alone] = failure_groups([cut_short(TENANTS[0], 10)])

    assert group.line() == (
        "2 tenants: Graph answered 200 with a body that is not valid JSON (unexpected end of data); "
        "gave up after 6 attempts"
    )
    assert "line 1 column 23 (char 22)" in alone.line()


def test_a_grouped_cause_that_names_each_tenant_says_so_and_keeps_no_placeholder() -> None:
    """`az login --tenant {tenant}` for 2 tenants was no command to paste: it says `<tenant ID>` and what that is."""
    from azure.identity import CredentialUnavailableError

    from fetcher.config import AuthConfig
    from fetcher.signin import signin_refusal

    def signed_out(tenant: TenantRef) -> TenantOutcome:
        error = signin_refusal(CredentialUnavailableError("Please run 'az login'"), tenant, AuthConfig("azure_cli"))
        return outcome(tenant, Status.FAILED, str(error))

    [group] = failure_groups([signed_out(t) for t in TENANTS[:2]])

    assert group.line() == (
        "2 tenants: the Azure CLI is not signed in: run `az login --tenant <tenant ID>` and try again "
        "(<tenant ID>: each tenant's own id; -v lists them)"
    )
    assert failure_groups([signed_out(TENANTS[0])])[0].line() == (
        f"tenant {TENANTS[0].label}: the Azure CLI is not signed in: run `az login --tenant {TENANTS[0].tenant_id}` "
        "and try again"
    )


def test_the_log_says_each_cause_once_and_what_a_rebuild_does(caplog: pytest.LogCaptureFixture) -> None:
    observer = LogObserver()
    run = report("rebuild", *(refused(t) for t in TENANTS))

    with caplog.at_level(logging.INFO, logger="fetcher.run"):
        observer.started(run)
        observer.finished(run)

    messages = [r.getMessage() for r in caplog.records]
    assert "tenant(s) to rebuild from the archive" in messages[0]
    assert [m for m in messages if SECRET_REFUSED in m] == [f"4 tenants: {SECRET_REFUSED}"]
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert getattr(warning, "error_kind", None) == "authentication"


def test_an_interrupted_tenant_says_how_many_requests_it_had_made() -> None:
    stats = RequestStats()
    assert _stopped_while(stats) == "the run was stopped before this tenant was fetched"
    stats.requests = 4
    assert _stopped_while(stats) == "the run was stopped while this tenant was being fetched, after 4 request(s)"


def test_migration_progress_off_a_terminal_is_a_line_per_tenth(caplog: pytest.LogCaptureFixture) -> None:
    """Batches of 7 % of the rows: a line each time another tenth is reached, the last at 100 %, each with
    the share moved (it said the tenth: 40 % for 48 %)."""
    from fetcher.output import MoveProgressLog

    progress = MoveProgressLog()
    with caplog.at_level(logging.INFO, logger="fetcher.migrate"):
        for done in [*range(7, 100, 7), 100]:
            progress(done, 100)
    shares = [record.getMessage().split(":")[1].split("%")[0].strip() for record in caplog.records]
    assert shares == ["7", "14", "21", "35", "42", "56", "63", "70", "84", "91", "100"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fetcher.migrate"):
        MoveProgressLog()(50223, 103631)
    assert caplog.records[0].getMessage() == (
        "control_scores: 48% moved into the compact layout (50223 of 103631 rows)"
    )


def test_migration_progress_names_each_move_and_counts_its_tenths_afresh(caplog: pytest.LogCaptureFixture) -> None:
    """0011's move, then 0014's in the same `fetcher migrate`: each line names the table its rows leave."""
    from fetcher.output import MoveProgressLog
    from fetcher.store.convert import COMPACT, DAY_KEYS, Labelled

    progress = MoveProgressLog()
    assert isinstance(progress, Labelled)
    with caplog.at_level(logging.INFO, logger="fetcher.migrate"):
        for move in (COMPACT, DAY_KEYS):
            progress.label(move.shown(), move.done)
            progress(100, 100)
    assert [record.getMessage() for record in caplog.records] == [
        "control_scores: 100% moved into the compact layout (100 of 100 rows)",
        "control_score_rows: 100% moved to day keys (100 of 100 rows)",
    ]
