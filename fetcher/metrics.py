"""`fetcher metrics`: the database's state in the OpenMetrics text format, for Prometheus.

Written for node_exporter's textfile collector (`--collector.textfile.directory`): the file is
replaced atomically (`fetcher.outfile`), so the collector never reads half of it. Rendering is prometheus-client's
(`prometheus_client.openmetrics.exposition.generate_latest`); only gauges are used, each labelled the
Prometheus way (`tenant_id`, `tenant_name`, `command`, `shard`, `status`), so the classic text parser reads
the file too. Times are Unix seconds (`*_timestamp_seconds`), as Prometheus conventions ask.

    securescore_current_score / _max_score / _score_ratio        per tenant, its newest stored day
    securescore_newest_day_timestamp_seconds / _age_seconds       that day's midnight UTC, and its age
    securescore_tenant_last_run_status{status}                    1 for the status of its latest run
    securescore_tenant_last_run_timestamp_seconds / _last_success_timestamp_seconds
    securescore_run_*{command,shard}                              the latest finished run of each command and shard
    securescore_alerts_open{rule,kind}, securescore_alert_notifications_unsent{channel}
    securescore_alert_notifications_orphaned{channel}            owed to a channel no longer configured
    securescore_discovery_succeeded{partner_tenant_id}            tenants_source = "partner": 1 when the latest
                                                                  discovery succeeded, 0 when it failed or was
                                                                  never tried
    securescore_discovery_attempt_timestamp_seconds / _list_age_seconds / _customers
                                                                  when it was tried (0: never); the age and size
                                                                  of the list the runs fetch (no age: none made)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.config import Config
from fetcher.models import Status
from fetcher.status import partner_discovery
from fetcher.store import alerts as alert_store
from fetcher.store import monitoring
from fetcher.store.engine import transaction
from fetcher.store.partner import DiscoveryState
from fetcher.store.reports import LatestScore, latest

RUN_STATUSES = tuple(s for s in Status if s is not Status.RUNNING)
TENANT = ("tenant_id", "tenant_name")


@dataclass(frozen=True)
class Snapshot:
    """Everything the metrics show, read in one transaction."""

    now: datetime
    tenants: Sequence[tuple[str, str]]  # (tenant_id, tenant_name) of the enabled configured tenants
    scores: dict[str, LatestScore]
    runs: dict[str, monitoring.TenantRunState]
    commands: Sequence[monitoring.RunSummary]
    open_alerts: dict[tuple[str, str], int]
    unsent: dict[str, int]  # by channel, configured or not
    discovery: DiscoveryState | None = None
    channels: frozenset[str] | None = None  # the configured channels (None: every channel counts as configured)
    partner_tenant_id: str | None = None  # tenants_source = "partner": where they are discovered


async def read_snapshot(engine: AsyncEngine, config: Config, now: datetime) -> Snapshot:
    async with transaction(engine, write=False) as conn:
        scores = {row.tenant_id: row for row in await latest(conn)}
        runs = await monitoring.tenant_run_states(conn)
        commands = await monitoring.latest_runs_by_command(conn)
        open_alerts, unsent = await alert_store.counts(conn)
        discovery = await partner_discovery(conn, config)
    tenants = [
        (t.tenant_id, t.name or (scores[t.tenant_id].tenant_name if t.tenant_id in scores else ""))
        for t in config.enabled_tenants
    ]
    channels = frozenset(c.name for c in config.alerts.channels)
    partner = config.partner.tenant_id if config.tenants_source == "partner" and config.partner else None
    return Snapshot(now, tenants, scores, runs, commands, open_alerts, unsent, discovery, channels, partner)


def _gauge(name: str, doc: str, labels: Sequence[str], unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels), unit=unit)


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


class SnapshotCollector(Collector):
    """Turns a snapshot into metric families (no I/O)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from self._scores()
        yield from self._tenant_runs()
        yield from self._commands()
        yield from self._alerts()
        yield from self._discovery()

    def _scores(self) -> Iterator[Metric]:
        s = self.snapshot
        current = _gauge("securescore_current_score", "Secure Score on the tenant's newest stored day.", TENANT)
        top = _gauge("securescore_max_score", "Maximum Secure Score on the tenant's newest stored day.", TENANT)
        ratio = _gauge(
            "securescore_score_ratio", "current_score / max_score on the newest stored day (0 to 1).", TENANT
        )
        newest = _gauge(
            "securescore_newest_day_timestamp_seconds", "Midnight UTC of the tenant's newest stored day.", TENANT
        )
        age = _gauge(
            "securescore_newest_day_age", "Time from the newest stored day's midnight UTC to now.", TENANT, "seconds"
        )
        for tenant_id, name in s.tenants:
            row = s.scores.get(tenant_id)
            if row is None or row.score_date is None:
                continue
            labels = [tenant_id, name]
            if row.current_score is not None:
                current.add_metric(labels, row.current_score)
            if row.max_score is not None:
                top.add_metric(labels, row.max_score)
            if row.percent is not None:
                ratio.add_metric(labels, row.percent / 100)
            midnight = datetime.combine(row.score_date, datetime.min.time(), UTC)
            newest.add_metric(labels, _seconds(midnight))
            age.add_metric(labels, (s.now - midnight).total_seconds())
        yield from (current, top, ratio, newest, age)

    def _tenant_runs(self) -> Iterator[Metric]:
        s = self.snapshot
        status = _gauge(
            "securescore_tenant_last_run_status", "1 for the status of the tenant's latest run.", [*TENANT, "status"]
        )
        when = _gauge("securescore_tenant_last_run_timestamp_seconds", "When the tenant's latest run ended.", TENANT)
        success = _gauge(
            "securescore_tenant_last_success_timestamp_seconds",
            "When the tenant's latest successful (or partial) run ended.",
            TENANT,
        )
        for tenant_id, name in s.tenants:
            run = s.runs.get(tenant_id)
            if run is None:
                continue
            for value in RUN_STATUSES:
                status.add_metric([tenant_id, name, value], 1.0 if run.status == value else 0.0)
            when.add_metric([tenant_id, name], _seconds(run.finished_at))
            if run.last_success_at is not None:
                success.add_metric([tenant_id, name], _seconds(run.last_success_at))
        yield from (status, when, success)

    def _commands(self) -> Iterator[Metric]:
        cmd = ["command", "shard"]  # shard: "K/N" of `--shard`, empty for a run of every tenant
        duration = _gauge("securescore_run_duration", "Duration of the latest finished run.", cmd, unit="seconds")
        ended = _gauge("securescore_run_finished_timestamp_seconds", "When the latest finished run ended.", cmd)
        status = _gauge("securescore_run_status", "1 for the status of the latest finished run.", [*cmd, "status"])
        tenants = _gauge("securescore_run_tenants", "Tenants of the latest finished run by outcome.", [*cmd, "outcome"])
        requests = _gauge("securescore_run_requests", "HTTP requests to Graph in the latest finished run.", cmd)
        retries = _gauge("securescore_run_retries", "Retried requests in the latest finished run.", cmd)
        throttled = _gauge("securescore_run_throttled", "429 answers in the latest finished run.", cmd)
        for run in self.snapshot.commands:
            key = [run.command, run.shard]
            duration.add_metric(key, run.duration_seconds)
            ended.add_metric(key, _seconds(run.finished_at))
            for value in RUN_STATUSES:
                status.add_metric([*key, value], 1.0 if run.status == value else 0.0)
            tenants.add_metric([*key, "succeeded"], run.tenants_succeeded)
            tenants.add_metric([*key, "failed"], run.tenants_failed)
            tenants.add_metric([*key, "interrupted"], run.tenants_interrupted)
            requests.add_metric(key, run.requests)
            retries.add_metric(key, run.retries)
            throttled.add_metric(key, run.throttled)
        yield from (duration, ended, status, tenants, requests, retries, throttled)

    def _alerts(self) -> Iterator[Metric]:
        opened = _gauge("securescore_alerts_open", "Open alerts by rule.", ["rule", "kind"])
        for (rule, kind), count in sorted(self.snapshot.open_alerts.items()):
            opened.add_metric([rule, kind], count)
        unsent = _gauge(
            "securescore_alert_notifications_unsent", "Notifications not yet delivered, by channel.", ["channel"]
        )
        orphaned = _gauge(
            "securescore_alert_notifications_orphaned",
            "Notifications owed to a channel no longer in the configuration, never sent: "
            "`fetcher alerts --drop-channel NAME` drops them.",
            ["channel"],
        )
        configured = self.snapshot.channels
        for channel, count in sorted(self.snapshot.unsent.items()):
            (unsent if configured is None or channel in configured else orphaned).add_metric([channel], count)
        yield from (opened, unsent, orphaned)

    def _discovery(self) -> Iterator[Metric]:
        partner = ["partner_tenant_id"]
        succeeded = _gauge("securescore_discovery_succeeded", "1 when the latest tenant discovery succeeded.", partner)
        attempted = _gauge(
            "securescore_discovery_attempt_timestamp_seconds", "When the latest tenant discovery was tried.", partner
        )
        age = _gauge(
            "securescore_discovery_list_age", "Age of the customer list the runs fetch.", partner, unit="seconds"
        )
        customers = _gauge("securescore_discovery_customers", "Customers in the list the runs fetch.", partner)
        d = self.snapshot.discovery
        if d is None and self.snapshot.partner_tenant_id is not None:
            # never tried (right after `migrate`): no customer is fetched, which a monitor must see, as `status`
            # exits 1; a last-attempt time of 0 makes `time() - ...` as large as it gets, as for no attempt
            succeeded.add_metric([self.snapshot.partner_tenant_id], 0.0)
            attempted.add_metric([self.snapshot.partner_tenant_id], 0.0)
        if d is not None:
            key = [d.partner_tenant_id]
            succeeded.add_metric(key, 0.0 if d.failed else 1.0)
            attempted.add_metric(key, _seconds(d.attempted_at))
            if d.discovered_at is not None:
                age.add_metric(key, (self.snapshot.now - d.discovered_at).total_seconds())
                customers.add_metric(key, d.customers)
        yield from (succeeded, attempted, age, customers)


def exposition(snapshot: Snapshot) -> bytes:
    """The OpenMetrics text of a snapshot, ending in `# EOF`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    text: bytes = generate_latest(registry)  # type: ignore[no-untyped-call]
    return text
