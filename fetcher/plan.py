"""Planning, pure: which tenants a command works on, and what to ask Graph (or the archive) for each.

A command builds a `PlanRequest` (`plan_incremental`, `plan_backfill`, `plan_get`, `plan_rebuild`). The
scheduler reads the `Facts` the request `needs` from the database, in the transaction that starts the
run, and calls `request.plans(facts)`: no I/O here, so every rule is tested with plain data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum

from fetcher.config import GRAPH_HISTORY_DAYS, GUID, MAX_SHARDS, Config, TenantConfig
from fetcher.errors import ConfigError
from fetcher.models import HasTenantIdentity, Shard, TenantRef


@dataclass(frozen=True)
class Profiles:
    """How plans fetch control profiles: `[fetch] control_profiles`, `profiles_max_age_hours`, and the
    `[database] people_salt` that replaces people's names when `store_people = false` (None: kept)."""

    enabled: bool = True
    max_age: timedelta = timedelta(hours=24)
    salt: bytes | None = field(default=None, repr=False)


NO_PROFILES = Profiles(enabled=False)


@dataclass(frozen=True, slots=True)  # one per tenant: ten thousand of them
class Plan:
    """One tenant's work: the newest `days` secureScores, or one by `score_id` (a rebuild needs neither);
    and its control profiles too when `profiles` is given."""

    tenant: TenantRef
    days: int = 0
    score_id: str | None = None
    profiles: Profiles | None = None


class Fact(Enum):
    """What a request needs to know from the database before it can plan."""

    NEWEST_DAYS = "each tenant's newest stored day"
    RESUMABLE = "the tenants done by the latest interrupted backfill"
    OLDEST_DAYS = "each tenant's oldest stored day"
    ARCHIVED = "the tenants with an archive"
    PROFILES_FETCHED = "when each tenant's control profiles were last fetched"


@dataclass(frozen=True)
class Facts:
    """What the database said, as far as the request needed it."""

    newest: Mapping[str, date] = field(default_factory=dict)
    oldest: Mapping[str, date] = field(default_factory=dict)
    done: frozenset[str] = frozenset()
    archived: tuple[str, ...] = ()
    profiles_fetched: Mapping[str, datetime] = field(default_factory=dict)


class PlanRequest:
    """What a command asked for; `plans` turns it into one `Plan` per tenant."""

    replay: bool = False  # the tenants' work replays their archive (rebuild) rather than fetching

    @property
    def needs(self) -> frozenset[Fact]:
        """What `plans` reads of `Facts`; the scheduler reads nothing else."""
        return frozenset()

    def plans(self, facts: Facts) -> list[Plan]:
        raise NotImplementedError


SHARD_ENV = "FETCHER_SHARD"
INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an Indexed Job: 0 .. completions-1
_SHARD_TEXT = re.compile(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*")


def parse_shard(text: str, source: str) -> Shard | None:
    """`K/N` as given by `source` (`--shard`, `FETCHER_SHARD`), or a ConfigError naming it; `1/1` is every
    tenant, so None (an unsharded run)."""
    match = _SHARD_TEXT.fullmatch(text)
    if match is None:
        raise ConfigError(f"{source}: {text!r} is not K/N (shard K of N, e.g. 2/4)")
    index, count = int(match[1]), int(match[2])
    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"{source}: {text!r}: N must be between 1 and {MAX_SHARDS}")
    if not 1 <= index <= count:
        raise ConfigError(f"{source}: {text!r}: K must be between 1 and N ({count})")
    return None if count == 1 else Shard(index, count)


def shard_from(option: str | None, environ: Mapping[str, str], shards: int) -> Shard | None:
    """The shard of this run: `--shard`, else `$FETCHER_SHARD`, else `$JOB_COMPLETION_INDEX` (0-based) of
    `[fetch] shards`; None for every tenant. Raises ConfigError naming the source of a bad value."""
    if option is not None:
        return parse_shard(option, f"--shard {option}")
    if environ.get(SHARD_ENV, "").strip():
        return parse_shard(environ[SHARD_ENV], f"${SHARD_ENV}")
    index_text = environ.get(INDEX_ENV, "").strip()
    if not index_text:
        return None
    if not index_text.isdigit():
        raise ConfigError(f"${INDEX_ENV}={index_text!r}: not a completion index (0, 1, 2, ...)")
    index = int(index_text)
    if index >= shards:
        raise ConfigError(
            f"${INDEX_ENV}={index}: must be below [fetch] shards = {shards} (set it to the Job's completions)"
        )
    return None if shards == 1 else Shard(index + 1, shards)


def in_shard(tenants: Sequence[TenantConfig], shard: Shard | None) -> list[TenantConfig]:
    """The tenants of `shard` (all with None), in their order."""
    return list(tenants) if shard is None else [t for t in tenants if shard.holds(t.tenant_id)]


def check_tenant_options(wanted: Sequence[str], shard: Shard | None) -> None:
    """The mistakes `--tenant` values show without knowing the tenants (so before partner discovery asks
    Graph for them): given with a shard (a named tenant is not a slice of the others), or not a GUID."""
    if wanted and shard is not None:
        raise ConfigError(f"--tenant with shard {shard}: give the tenants or the shard, not both")
    for tenant_id in (t.strip().lower() for t in wanted):
        if not GUID.match(tenant_id):
            raise ConfigError(f"--tenant {tenant_id}: not a tenant id (a GUID: xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")


def tenant_source(config: Config) -> str:
    """Where `config`'s tenants come from, for an error naming a tenant it does not hold."""
    if config.tenants_source == "partner" and config.partner is not None:
        return f"the customers discovered at partner tenant {config.partner.tenant_id}"
    return str(config.path or "the configuration")


def select_tenants(config: Config, wanted: Sequence[str], shard: Shard | None = None) -> list[TenantConfig]:
    """The enabled tenants (of `shard`), or those named with --tenant (named disabled tenants included).

    Raises ConfigError as `check_tenant_options` does, and for a tenant the configuration does not hold."""
    if not wanted:
        return in_shard(config.enabled_tenants, shard)
    check_tenant_options(wanted, shard)
    chosen = []
    for tenant_id in dict.fromkeys(t.strip().lower() for t in wanted):
        tenant = config.tenant(tenant_id)
        if tenant is None:
            raise ConfigError(f"--tenant {tenant_id}: no such tenant in {tenant_source(config)}")
        chosen.append(tenant)
    return chosen


def incremental_days(newest: date | None, today: date, history_days: int) -> int:
    """`$top` for `fetcher run`: the days since the newest stored one, plus that day again."""
    if newest is None:
        return history_days
    return max(1, min((today - newest).days + 1, GRAPH_HISTORY_DAYS))


def window_days(*, days: int | None, since: date | None, today: date, default: int) -> int:
    """`$top` for `fetcher backfill --days N | --since DATE`."""
    if days is not None and since is not None:
        raise ConfigError("give --days or --since, not both")
    if since is not None:
        days = (today - since).days + 1
        if days < 1:
            raise ConfigError(f"--since {since}: that is in the future")
    days = default if days is None else days
    if not 1 <= days <= GRAPH_HISTORY_DAYS:
        raise ConfigError(
            f"the window is {days} days: give 1 to {GRAPH_HISTORY_DAYS} days (Graph keeps {GRAPH_HISTORY_DAYS} days "
            "of secureScores)"
        )
    return days


def profiles_due(fetched: datetime | None, now: datetime, policy: Profiles) -> bool:
    """`fetcher run` fetches a tenant's profiles when it has none stored or they are `max_age` old."""
    return policy.enabled and (fetched is None or now - fetched >= policy.max_age)


@dataclass(frozen=True)
class Incremental(PlanRequest):
    """`fetcher run`: per tenant, the days since its newest stored day (`incremental_days`), and its control
    profiles when they are due (`profiles_due`)."""

    tenants: tuple[TenantRef, ...]
    history_days: int
    today: date
    profiles: Profiles = NO_PROFILES
    now: datetime | None = None  # None: the start of `today`, UTC

    @property
    def needs(self) -> frozenset[Fact]:
        return frozenset({Fact.NEWEST_DAYS, Fact.PROFILES_FETCHED} if self.profiles.enabled else {Fact.NEWEST_DAYS})

    def plans(self, facts: Facts) -> list[Plan]:
        newest, fetched = facts.newest, facts.profiles_fetched
        now = self.now or datetime.combine(self.today, datetime.min.time(), UTC)
        return [
            Plan(
                t,
                incremental_days(newest.get(t.tenant_id), self.today, self.history_days),
                profiles=self.profiles if profiles_due(fetched.get(t.tenant_id), now, self.profiles) else None,
            )
            for t in self.tenants
        ]


def covers(oldest: date | None, days: int, today: date) -> bool:
    """Whether stored days reaching back to `oldest` cover the window of the newest `days` up to `today`."""
    return oldest is not None and oldest <= today - timedelta(days=days - 1)


@dataclass(frozen=True)
class Backfill(PlanRequest):
    """`fetcher backfill`: the same window for every tenant; with `resume`, not for those already done.

    A tenant counts as done only if the interrupted backfill chain finished it *and* its stored days
    reach back to the start of the window asked now: a chain that ran with a shorter window (`--days 5`,
    then `--resume` with the default 90) has not done the older days, and Graph drops them for good.
    """

    tenants: tuple[TenantRef, ...]
    days: int
    resume: bool = False
    today: date | None = None  # needed with `resume`
    profiles: Profiles = NO_PROFILES  # fetched for every tenant when enabled, whatever their age

    @property
    def needs(self) -> frozenset[Fact]:
        return frozenset({Fact.RESUMABLE, Fact.OLDEST_DAYS}) if self.resume else frozenset()

    def plans(self, facts: Facts) -> list[Plan]:
        profiles = self.profiles if self.profiles.enabled else None
        return [Plan(t, self.days, profiles=profiles) for t in self.tenants if not self.skips(t.tenant_id, facts)]

    def skips(self, tenant_id: str, facts: Facts) -> bool:
        """Whether a resumed backfill leaves this tenant alone: done, and its stored days cover the window."""
        if not self.resume or tenant_id not in facts.done:
            return False
        return self.today is None or covers(facts.oldest.get(tenant_id), self.days, self.today)


@dataclass(frozen=True)
class Get(PlanRequest):
    """`fetcher get`: one secureScore of one tenant."""

    tenant: TenantRef
    score_id: str

    def plans(self, facts: Facts) -> list[Plan]:  # noqa: ARG002 (nothing to know)
        return [Plan(self.tenant, 1, self.score_id)]


@dataclass(frozen=True)
class Rebuild(PlanRequest):
    """`fetcher rebuild`: every archived tenant (or the named ones), configured or not any more."""

    wanted: tuple[str, ...]
    names: Mapping[str, str]
    replay = True

    @property
    def needs(self) -> frozenset[Fact]:
        return frozenset({Fact.ARCHIVED})

    def plans(self, facts: Facts) -> list[Plan]:
        chosen = [t.strip().lower() for t in self.wanted] if self.wanted else list(facts.archived)
        missing = sorted(set(chosen) - set(facts.archived))
        if missing:
            raise ConfigError(f"--tenant {missing[0]}: nothing archived for this tenant (raw_payloads is empty for it)")
        # Every archived resource is replayed: secureScores, and control profiles where archived.
        return [Plan(TenantRef(t, self.names.get(t, "")), profiles=Profiles()) for t in chosen]


def profiles_policy(config: Config) -> Profiles:
    """The configuration's profile policy: `[fetch] control_profiles`, `profiles_max_age_hours`, and the salt
    when `[database] store_people = false` (its secret must have been resolved: a fetching command's)."""
    database = config.database
    salt = None
    if not database.store_people and database.people_salt is not None:
        salt = database.people_salt.reveal().encode()
    return Profiles(config.fetch.control_profiles, timedelta(hours=config.fetch.profiles_max_age_hours), salt)


def _refs(tenants: Sequence[HasTenantIdentity]) -> tuple[TenantRef, ...]:
    return tuple(TenantRef.of(t) for t in tenants)


def plan_incremental(
    tenants: Sequence[HasTenantIdentity],
    history_days: int,
    today: date,
    *,
    profiles: Profiles = NO_PROFILES,
    now: datetime | None = None,
) -> Incremental:
    return Incremental(_refs(tenants), history_days, today, profiles, now)


def plan_backfill(
    tenants: Sequence[HasTenantIdentity],
    days: int,
    *,
    resume: bool,
    today: date | None = None,
    profiles: Profiles = NO_PROFILES,
) -> Backfill:
    return Backfill(_refs(tenants), days, resume, today, profiles)


SCORE_ID = re.compile(r"(?P<tenant>[0-9A-Fa-f-]{36})_(?P<day>\d{4}-\d{2}-\d{2})")


def score_tenant(score_id: str, tenant_id: str | None) -> str:
    """The tenant of `fetcher get SCORE_ID [--tenant ID]`: the id must read `{tenantId}_{yyyy-mm-dd}`, and
    a `--tenant` given must be the id's own tenant (Graph is not asked for another tenant's score)."""
    match = SCORE_ID.fullmatch(score_id.strip())
    if match is None:
        raise ConfigError(
            f"{score_id!r} is not a secureScore id: it must look like {{tenantId}}_{{yyyy-mm-dd}}, "
            "e.g. 11111111-2222-3333-4444-555555555555_2026-01-31"
        )
    try:
        date.fromisoformat(match["day"])
    except ValueError:
        raise ConfigError(f"{score_id!r}: {match['day']} is not a date (yyyy-mm-dd)") from None
    own = match["tenant"].lower()
    if tenant_id is not None and tenant_id.strip().lower() != own:
        raise ConfigError(f"--tenant {tenant_id} does not match the score id's tenant {own}: give one of them")
    return own


def get_target(config: Config, score_id: str, tenant_id: str | None) -> TenantConfig:
    """The tenant `fetcher get SCORE_ID [--tenant ID]` asks (see `score_tenant`), which `config` must hold
    (with tenants_source = "partner", among the discovered customers)."""
    own = score_tenant(score_id, tenant_id)
    tenant = config.tenant(own)
    if tenant is None:
        raise ConfigError(f"{score_id.strip()}: tenant {own} is not in {tenant_source(config)}")
    return tenant


def plan_get(tenant: HasTenantIdentity, score_id: str) -> Get:
    return Get(TenantRef.of(tenant), score_id)


def plan_rebuild(config: Config, wanted: Sequence[str]) -> Rebuild:
    return Rebuild(tuple(wanted), {t.tenant_id: t.name for t in config.tenants})
