"""What a run produced, as it goes: each tenant's outcome, the run's counters and status, and the observer
that progress displays implement. No I/O: the scheduler fills these, `fetcher.output` shows them, the
ledger stores them (`ledger_row`, `totals`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from fetcher.models import RequestStats, Status, TenantRef
from fetcher.store import ledger
from fetcher.store.archive import Rejection


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class TenantOutcome:
    """How one tenant fared; becomes its `tenant_runs` row."""

    tenant: TenantRef
    status: Status
    started_at: datetime
    finished_at: datetime
    stats: RequestStats
    scores_upserted: int = 0
    rejected: int = 0
    partial_days: int = 0
    error_kind: str | None = None
    error_message: str | None = None
    objects: list[Any] = field(default_factory=list)  # kept for `get` only

    def ledger_row(self, run_id: str) -> ledger.TenantRun:
        return ledger.TenantRun(
            run_id=run_id,
            tenant_id=self.tenant.tenant_id,
            status=self.status,
            started_at=self.started_at,
            finished_at=self.finished_at,
            scores_upserted=self.scores_upserted,
            requests=self.stats.requests,
            retries=self.stats.retries,
            throttled=self.stats.throttled,
            rejected=self.rejected,
            partial_days=self.partial_days,
            error_kind=self.error_kind,
            error_message=self.error_message,
        )

    @property
    def failed(self) -> bool:
        return self.status.failed


@dataclass
class Counters:
    """Live totals for progress displays; `throttled` includes tenants still in flight."""

    tenants_total: int = 0
    tenants_done: int = 0
    failures: int = 0
    score_days: int = 0
    finished_throttled: int = 0
    live: dict[str, RequestStats] = field(default_factory=dict)

    @property
    def throttled(self) -> int:
        return self.finished_throttled + sum(s.throttled for s in list(self.live.values()))


@dataclass
class RunReport:
    """A run as it goes and as it ended. `outcomes` keeps the tenants worth showing (all but plain
    successes, unless `keep_all`), so a run over ten thousand tenants keeps counters, not rows."""

    run_id: str
    command: str
    started_at: datetime
    counters: Counters = field(default_factory=Counters)
    outcomes: list[TenantOutcome] = field(default_factory=list)
    status: Status = Status.RUNNING
    finished_at: datetime | None = None
    stopped_by: int | None = None  # signal number
    # Outcomes of tenants that stored nothing and whose ledger row could not be written either
    # (the database was locked or gone at that moment); written with the run's end.
    unrecorded: list[tuple[ledger.TenantRun, list[Rejection]]] = field(default_factory=list)
    keep_all: bool = False
    partial: int = 0

    def add(self, outcome: TenantOutcome) -> None:
        counters = self.counters
        counters.live.pop(outcome.tenant.tenant_id, None)
        counters.tenants_done += 1
        counters.failures += outcome.failed
        counters.score_days += outcome.scores_upserted
        counters.finished_throttled += outcome.stats.throttled
        self.partial += outcome.status == Status.PARTIAL
        if self.keep_all or outcome.status != Status.SUCCEEDED:
            self.outcomes.append(outcome)

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return 1 if self.counters.failures else 0

    def final_status(self) -> Status:
        """Interrupted when stopped; else succeeded, partial (some tenants failed or were partial) or failed (all)."""
        if self.stopped_by is not None:
            return Status.INTERRUPTED
        failed, done = self.counters.failures, self.counters.tenants_done
        if failed == 0:
            return Status.PARTIAL if self.partial else Status.SUCCEEDED
        return Status.FAILED if failed == done else Status.PARTIAL

    def totals(self) -> ledger.RunTotals:
        failed = self.counters.failures
        return ledger.RunTotals(
            status=self.status,
            finished_at=self.finished_at or utcnow(),
            tenants_succeeded=self.counters.tenants_done - failed,
            tenants_failed=failed,
            scores_upserted=self.counters.score_days,
        )


class Observer(Protocol):
    """Told about a run as it goes (progress bars, logs)."""

    def started(self, report: RunReport) -> None: ...

    def tenant_done(self, report: RunReport, outcome: TenantOutcome) -> None: ...

    def finished(self, report: RunReport) -> None: ...


class QuietObserver:
    def started(self, report: RunReport) -> None:
        pass

    def tenant_done(self, report: RunReport, outcome: TenantOutcome) -> None:
        pass

    def finished(self, report: RunReport) -> None:
        pass
