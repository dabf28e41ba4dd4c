"""What is wrong with a tenant's data, defined once for `fetcher status`, `fetcher report` (every format) and
the HTML page. Pure: the caller reads the facts (newest stored day, latest run's error) from the database.

    no data   no day of the tenant is stored
    stale     its newest day, counted from that day's midnight UTC, is older than `max_age`
    failing   its latest run from Graph failed (an interrupted run is not a failure; a `rebuild` is not a
              run from Graph: `fetcher.store.ledger.from_graph`)

"no data" and "stale" exclude each other; "failing" comes on top of either, or alone when the data is
still fresh. Graph keeps one score a day, so a `max_age` under 24 hours makes every tenant stale.

A tenant's row (`status`, `report`) adds how the configuration holds it (`tenant_marks`):

    not configured   in the database, in no [[tenants]] table nor the tenants file
    disabled         configured with `enabled = false` (or `gone since ...` in the tenants file)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

INTERRUPTED_KIND = "interrupted"  # fetcher.errors.Interrupted.kind: a stopped run, not a failing tenant


class Health(StrEnum):
    NO_DATA = "no data"
    STALE = "stale"
    FAILING = "failing"


class Mark(StrEnum):
    """What is wrong with a tenant's row: the `Health` marks, and how it is configured."""

    NO_DATA = Health.NO_DATA.value
    STALE = Health.STALE.value
    FAILING = Health.FAILING.value
    NOT_CONFIGURED = "not configured"
    DISABLED = "disabled"


@dataclass(frozen=True)
class LastError:
    """A tenant's latest run, where it did not end well: when, its error kind and one-line message."""

    at: datetime | None
    kind: str | None
    message: str | None

    def text(self) -> str:
        """`kind: message`, the tenant's own label left in."""
        return f"{self.kind}: {self.message}" if self.kind else self.message or ""


def is_stale(newest: date | None, now: datetime, max_age: timedelta) -> bool:
    """Whether a stored newest day, counted from its midnight UTC, is older than `max_age` (False: no data)."""
    if newest is None:
        return False
    return now - datetime.combine(newest, datetime.min.time(), UTC) > max_age


def is_failing(error: LastError | None) -> bool:
    return error is not None and error.kind is not None and error.kind != INTERRUPTED_KIND


def assess(newest: date | None, error: LastError | None, now: datetime, max_age: timedelta) -> tuple[Health, ...]:
    """The marks of a tenant, in `Health` order; () when its data is fresh and its latest run did not fail."""
    marks = []
    if newest is None:
        marks.append(Health.NO_DATA)
    elif is_stale(newest, now, max_age):
        marks.append(Health.STALE)
    if is_failing(error):
        marks.append(Health.FAILING)
    return tuple(marks)


def out_of_date(marks: Collection[str]) -> bool:
    """Whether the tenant has no data newer than `max_age` (`fetcher status` exits 1 for an enabled one)."""
    return Health.NO_DATA in marks or Health.STALE in marks


def tenant_marks(
    newest: date | None,
    error: LastError | None,
    now: datetime,
    max_age: timedelta,
    *,
    configured: bool,
    enabled: bool,
) -> tuple[Mark, ...]:
    """A tenant's row's marks: `assess`'s, then `not configured` or `disabled`."""
    marks = [Mark(h.value) for h in assess(newest, error, now, max_age)]
    if not configured:
        marks.append(Mark.NOT_CONFIGURED)
    elif not enabled:
        marks.append(Mark.DISABLED)
    return tuple(marks)


def discovery_problem(
    partner_tenant_id: str,
    attempted_at: datetime,
    discovered_at: datetime | None,
    customers: int,
    error: str | None,
    now: datetime,
) -> str | None:
    """One line on a partner's latest tenant discovery when it failed (None when it succeeded): its error, and
    the list the runs fetch instead, its size and age, or that there is none (`tenants_source = "partner"`)."""
    if error is None:
        return None
    failed = f"tenant discovery at partner tenant {partner_tenant_id} failed at {_minute(attempted_at)}: {error}"
    if discovered_at is None:
        return f"{failed}; no discovery ever succeeded, so no tenant is fetched"
    age = _age(now - discovered_at)
    return (
        f"{failed}; runs fetch the last known list: {customers} customer(s) discovered at {_minute(discovered_at)} "
        f"({age} old)"
    )


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(age: timedelta) -> str:
    hours = max(age.total_seconds(), 0) / 3600
    return f"{hours:.0f} hours" if hours < 48 else f"{hours / 24:.0f} days"
