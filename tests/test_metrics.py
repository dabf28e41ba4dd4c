"""`fetcher metrics`: the OpenMetrics text, read back with prometheus-client's own parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_classic
from sqlalchemy.ext.asyncio import AsyncEngine

from fetcher.metrics import exposition, read_snapshot
from fetcher.models import Shard
from fetcher.store import ledger
from fetcher.store.engine import transaction
from tests.alerts.test_engine import NOW, A, B, config, slip
from tests.report.conftest import TODAY

MIDNIGHT = datetime.combine(TODAY, datetime.min.time(), UTC)


async def ledger_rows(engine: AsyncEngine) -> None:
    """One finished `run`: A succeeded after a retry and a 429, B failed."""
    started = NOW - timedelta(hours=1)
    async with transaction(engine) as conn:
        await ledger.start_run(conn, run_id="r1", command="run", started_at=started, tenants_total=2, host="h", pid=1)
        for tenant, status, kind in ((A, "succeeded", None), (B, "failed", "permission")):
            await ledger.record_tenant_run(
                conn,
                ledger.TenantRun(
                    "r1",
                    tenant,
                    status,
                    started,
                    started + timedelta(minutes=2),
                    requests=3,
                    retries=1,
                    throttled=1 if tenant == A else 0,
                    error_kind=kind,
                ),
            )
        await ledger.finish_run(
            conn, "r1", ledger.RunTotals("partial", started + timedelta(minutes=5), 1, 1, 2, tenants_interrupted=3)
        )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for family in parse_openmetrics(text) for s in family.samples
    }


async def test_metrics_parse_as_openmetrics_with_every_series(engine: AsyncEngine) -> None:
    await slip(engine)
    await ledger_rows(engine)
    text = exposition(
        await read_snapshot(engine, config(engine.url.render_as_string(hide_password=False)), NOW)
    ).decode()
    a = (("tenant_id", A), ("tenant_name", "Contoso Ltd"))
    b = (("tenant_id", B), ("tenant_name", "Fabrikam Inc."))
    run = (("command", "run"), ("shard", ""))
    expected = {
        ("securescore_current_score", a): 51.0,
        ("securescore_current_score", b): 60.0,
        ("securescore_max_score", a): 100.0,
        ("securescore_max_score", b): 100.0,
        ("securescore_score_ratio", a): 0.51,
        ("securescore_score_ratio", b): 0.6,
        ("securescore_newest_day_timestamp_seconds", a): MIDNIGHT.timestamp(),
        ("securescore_newest_day_timestamp_seconds", b): MIDNIGHT.timestamp(),
        ("securescore_newest_day_age_seconds", a): 7 * 3600.0,
        ("securescore_newest_day_age_seconds", b): 7 * 3600.0,
        ("securescore_tenant_last_run_timestamp_seconds", a): (NOW - timedelta(minutes=58)).timestamp(),
        ("securescore_tenant_last_run_timestamp_seconds", b): (NOW - timedelta(minutes=58)).timestamp(),
        ("securescore_tenant_last_success_timestamp_seconds", a): (NOW - timedelta(minutes=58)).timestamp(),
        ("securescore_run_duration_seconds", run): 300.0,
        ("securescore_run_finished_timestamp_seconds", run): (NOW - timedelta(minutes=55)).timestamp(),
        ("securescore_run_tenants", (*run, ("outcome", "failed"))): 1.0,
        ("securescore_run_tenants", (*run, ("outcome", "succeeded"))): 1.0,
        ("securescore_run_tenants", (*run, ("outcome", "interrupted"))): 3.0,
        ("securescore_run_requests", run): 6.0,
        ("securescore_run_retries", run): 2.0,
        ("securescore_run_throttled", run): 1.0,
    }
    for status in ("succeeded", "partial", "failed", "interrupted"):
        expected[("securescore_tenant_last_run_status", (*a, ("status", status)))] = float(status == "succeeded")
        expected[("securescore_tenant_last_run_status", (*b, ("status", status)))] = float(status == "failed")
        expected[("securescore_run_status", (*run, ("status", status)))] = float(status == "partial")
    assert samples(text) == {(name, tuple(sorted(labels))): value for (name, labels), value in expected.items()}
    assert text.endswith("# EOF\n")


async def test_the_classic_text_parser_reads_the_file_too(engine: AsyncEngine) -> None:
    """node_exporter's textfile collector reads the Prometheus text format: nothing OpenMetrics-only is used."""
    await slip(engine)
    text = exposition(
        await read_snapshot(engine, config(engine.url.render_as_string(hide_password=False)), NOW)
    ).decode()
    names = {family.name for family in parse_classic(text)}
    assert {"securescore_current_score", "securescore_score_ratio", "securescore_alerts_open"} <= names


async def test_hostile_tenant_names_are_escaped_label_values(engine: AsyncEngine) -> None:
    from tests.report.conftest import days_ago, score_day, store

    hostile = 'Evil "Corp"\n} securescore_current_score 1e9'
    await store(engine, score_day(A, days_ago(0), {"x": 1.0}), names={A: hostile})
    cfg = config(engine.url.render_as_string(hide_password=False), names={A: ""})  # the name Graph's side gave
    text = exposition(await read_snapshot(engine, cfg, NOW)).decode()
    assert samples(text)[("securescore_current_score", (("tenant_id", A), ("tenant_name", hostile)))] == 1.0


async def test_each_shard_reports_its_latest_run(engine: AsyncEngine) -> None:
    """Shards of one night are separate runs: each has its own series, labelled with its K/N."""
    started = NOW - timedelta(hours=1)
    async with transaction(engine) as conn:
        for index, (status, failed) in enumerate((("succeeded", 0), ("partial", 1)), start=1):
            run_id = f"shard-{index}"
            shard = Shard(index, 2)
            await ledger.start_run(
                conn, run_id=run_id, command="run", started_at=started, tenants_total=1, host="h", pid=1, shard=shard
            )
            totals = ledger.RunTotals(status, started + timedelta(minutes=index), 1 - failed, failed, 1)
            await ledger.finish_run(conn, run_id, totals)

    text = exposition(
        await read_snapshot(engine, config(engine.url.render_as_string(hide_password=False)), NOW)
    ).decode()

    status = {labels: value for (name, labels), value in samples(text).items() if name == "securescore_run_status"}
    assert {dict(labels)["shard"] for labels, value in status.items() if value} == {"1/2", "2/2"}
    assert status[(("command", "run"), ("shard", "2/2"), ("status", "partial"))] == 1.0
    assert status[(("command", "run"), ("shard", "1/2"), ("status", "succeeded"))] == 1.0


async def test_a_rebuild_is_not_a_tenants_last_run(engine: AsyncEngine) -> None:
    """After a failed run, a rebuild (no Graph asked) leaves the tenant's last run failed and its last success
    where it was; the rebuild shows as its own command's run."""
    await slip(engine)
    await ledger_rows(engine)
    rebuilt = NOW - timedelta(minutes=10)
    async with transaction(engine) as conn:
        await ledger.start_run(
            conn, run_id="rb", command="rebuild", started_at=rebuilt, tenants_total=2, host="h", pid=1
        )
        for tenant in (A, B):
            await ledger.record_tenant_run(
                conn, ledger.TenantRun("rb", tenant, "succeeded", rebuilt, rebuilt + timedelta(minutes=1))
            )
        await ledger.finish_run(conn, "rb", ledger.RunTotals("succeeded", rebuilt + timedelta(minutes=2), 2, 0, 0))

    text = exposition(
        await read_snapshot(engine, config(engine.url.render_as_string(hide_password=False)), NOW)
    ).decode()

    found = samples(text)
    b = (("tenant_id", B), ("tenant_name", "Fabrikam Inc."))
    status = {
        s: found[("securescore_tenant_last_run_status", tuple(sorted((*b, ("status", s)))))]
        for s in ("succeeded", "failed")
    }
    assert status == {"succeeded": 0.0, "failed": 1.0}
    assert found[("securescore_tenant_last_run_timestamp_seconds", b)] == (NOW - timedelta(minutes=58)).timestamp()
    assert ("securescore_tenant_last_success_timestamp_seconds", b) not in found
    rebuild = (("command", "rebuild"), ("shard", ""))
    assert found[("securescore_run_status", tuple(sorted((*rebuild, ("status", "succeeded")))))] == 1.0
