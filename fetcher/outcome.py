"""What a run produced, as it goes: each tenant's outcome, the run's counters and status, and the observer
that progress displays implement. No I/O: the scheduler fills these, `fetcher.output` shows them, the
ledger stores them (`ledger_row`, `totals`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from fetcher.models import RequestStats, Status, TenantRef
from fetcher.store import ledger
from fetcher.store.archive import Rejection

EXIT_ALL_FAILED = 4  # every tenant of the run failed: likely one shared cause (credentials, network)


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

    @property
    def stored(self) -> bool:
        """Its data was stored (succeeded or partial), days or none."""
        return self.status in (Status.SUCCEEDED, Status.PARTIAL)


@dataclass
class Counters:
    """Live totals for progress displays; `throttled` includes tenants still in flight."""

    tenants_total: int = 0
    tenants_done: int = 0
    failures: int = 0
    interrupted: int = 0
    score_days: int = 0
    stored_none: int = 0  # tenants stored (succeeded or partial) with no score-day: Graph had none for them
    finished_throttled: int = 0
    finished_throttled_tenants: int = 0
    live: dict[str, RequestStats] = field(default_factory=dict)

    @property
    def throttled(self) -> int:
        """429 answers, not tenants: one tenant may be throttled many times."""
        return self.finished_throttled + sum(s.throttled for s in list(self.live.values()))

    @property
    def throttled_tenants(self) -> int:
        """Tenants with at least one 429 answer."""
        return self.finished_throttled_tenants + sum(s.throttled > 0 for s in list(self.live.values()))


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

    @property
    def asks_graph(self) -> bool:
        """False for `rebuild`, which replays the archive: requests, retries and 429s are not its figures."""
        return self.command not in ledger.ARCHIVE_COMMANDS

    def add(self, outcome: TenantOutcome) -> None:
        counters = self.counters
        counters.live.pop(outcome.tenant.tenant_id, None)
        counters.tenants_done += 1
        counters.failures += outcome.failed
        counters.interrupted += outcome.status == Status.INTERRUPTED
        counters.score_days += outcome.scores_upserted
        counters.stored_none += outcome.stored and not outcome.scores_upserted
        counters.finished_throttled += outcome.stats.throttled
        counters.finished_throttled_tenants += outcome.stats.throttled > 0
        self.partial += outcome.status == Status.PARTIAL
        if self.keep_all or outcome.status != Status.SUCCEEDED:
            self.outcomes.append(outcome)

    @property
    def stored(self) -> int:
        """Tenants whose data was stored (succeeded or partial)."""
        c = self.counters
        return c.tenants_done - c.failures - c.interrupted

    @property
    def exit_code(self) -> int:
        """128 + the signal when stopped; 4 when every tenant of a run (not `get`'s one) failed; 1 when some
        did; else 0."""
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        c = self.counters
        if c.failures and c.failures == c.tenants_done and self.command != "get":
            return EXIT_ALL_FAILED
        return 1 if c.failures else 0

    def final_status(self) -> Status:
        """Interrupted when stopped; else succeeded, partial (some tenants failed or were partial) or failed (all)."""
        if self.stopped_by is not None:
            return Status.INTERRUPTED
        failed, done = self.counters.failures, self.counters.tenants_done - self.counters.interrupted
        if failed == 0:
            return Status.PARTIAL if self.partial else Status.SUCCEEDED
        return Status.FAILED if failed == done else Status.PARTIAL

    def totals(self) -> ledger.RunTotals:
        return ledger.RunTotals(
            status=self.status,
            finished_at=self.finished_at or utcnow(),
            tenants_succeeded=self.stored,
            tenants_failed=self.counters.failures,
            scores_upserted=self.counters.score_days,
            tenants_interrupted=self.counters.interrupted,
        )

    def failure_groups(self) -> list[FailureGroup]:
        """The failed tenants kept in `outcomes`, grouped by cause, largest group first."""
        return failure_groups(o for o in self.outcomes if o.failed)


@dataclass(frozen=True)
class FailureGroup:
    """Failed tenants that share one cause: the same error kind and message apart from the tenant (and where a
    JSON body broke off)."""

    kind: str
    message: str  # the first tenant's message: as is for one tenant, with the tenant left out for several
    tenants: tuple[TenantRef, ...]

    def line(self) -> str:
        """One line: the message itself for one tenant, else "N tenants: message"."""
        return self.message if len(self.tenants) == 1 else f"{len(self.tenants)} tenants: {self.detail()}"

    def detail(self) -> str:
        """The message, and, where it names each tenant's id (a command to run for each), that it does."""
        if len(self.tenants) > 1 and TENANT_ID in self.message:
            return f"{self.message} ({TENANT_ID}: each tenant's own id; -v lists them)"
        return self.message


TENANT_ID = "<tenant ID>"  # where a grouped message named its tenant (`az login --tenant <tenant ID>`)


# Where a JSON parser says a body broke (orjson and json: "...: line 1 column 86940 (char 86939)"): bodies cut
# short at different lengths are one cause. The tenant's own line (-v, the ledger) keeps it.
_JSON_POSITION = re.compile(r":? line \d+ column \d+ \(char \d+\)")


def _without_tenant(message: str, tenant: TenantRef) -> str:
    """A tenant's error message with the tenant (and a JSON error's position) left out, so that one cause reads
    the same for all."""
    for prefix in (f"tenant {tenant.label}: ", f"tenant {tenant.tenant_id}: "):
        message = message.replace(prefix, "")
    message = _JSON_POSITION.sub("", message)
    return message.replace(tenant.label, TENANT_ID).replace(tenant.tenant_id, TENANT_ID)


def failure_groups(outcomes: Iterable[TenantOutcome]) -> list[FailureGroup]:
    """Failed outcomes grouped by (error kind, message without the tenant), largest group first."""
    groups: dict[tuple[str, str], list[TenantOutcome]] = {}
    for outcome in outcomes:
        cause = _without_tenant(outcome.error_message or "", outcome.tenant)
        groups.setdefault((outcome.error_kind or "error", cause), []).append(outcome)
    found = [
        FailureGroup(
            kind, (members[0].error_message or "") if len(members) == 1 else cause, tuple(o.tenant for o in members)
        )
        for (kind, cause), members in groups.items()
    ]
    return sorted(found, key=lambda g: (-len(g.tenants), g.kind, g.message))


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
