"""The alerting commands as a user runs them: `fetcher alerts [--dry-run]`, and the evaluation after `run`,
each `fetcher` a real process, the peers on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from fetcher.config import DatabaseConfig
from fetcher.simulator import generate_tenants
from fetcher.store.engine import create_engine
from tests.alerts.conftest import WebhookPeer
from tests.alerts.test_engine import CLIENT_ID, A, B, slip
from tests.e2e import toml_value, world

HOOK_ENV = "ALERTS_HOOK_URL"


def alerts_toml(channels: dict[str, str], *, kind: str = "score_drop", extra: str = "") -> str:
    """[alerts] with one rule over every channel; each channel a generic webhook whose URL is in `HOOK_ENV_<n>`."""
    lines = ["[alerts]", "", "[[alerts.rules]]", 'name = "watch"', f'kind = "{kind}"', extra]
    lines.append(f"channels = {json.dumps(list(channels))}")
    for name, variable in channels.items():
        lines += ["", "[[alerts.channels]]", f'name = "{name}"', 'type = "webhook"', f'url = "env:{variable}"']
    return "\n".join(lines) + "\n"


def reading_config(folder: Path, url: str, alerts: str) -> Path:
    tenants = "".join(
        f"[[tenants]]\ntenant_id = {toml_value(t)}\nname = {toml_value(n)}\n\n"
        for t, n in ((A, "Contoso Ltd"), (B, "Fabrikam Inc."))
    )
    path = folder / "fetcher.toml"
    path.write_text(
        f'[database]\nurl = {toml_value(url)}\n\n[auth]\nclient_id = "{CLIENT_ID}"\nclient_secret = "env:UNSET"\n\n'
        f"{tenants}{alerts}",
        encoding="utf-8",
    )
    return path


async def fetcher(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`fetcher --config CONFIG ARGS` as a process, without blocking the loop the peers serve on."""
    import os

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fetcher",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def slipped_database(folder: Path) -> str:
    url = f"sqlite+aiosqlite:///{folder / 'scores.db'}"
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await slip(engine)
    finally:
        await engine.dispose()
    return url


async def test_dry_run_shows_what_would_be_sent_and_to_whom_without_any_secret(
    tmp_path: Path, webhook_peer: WebhookPeer
) -> None:
    config = reading_config(tmp_path, await slipped_database(tmp_path), alerts_toml({"hook": HOOK_ENV}))
    code, out, err = await fetcher(config, "alerts", "--dry-run", "--format", "json")  # HOOK_ENV is not set
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert [(a["rule"], a["tenant_name"], a["status"], a["summary"]) for a in document["alerts"]] == [
        ("watch", "Contoso Ltd", "would open", "Secure Score fell 9.0 percentage points in 7 days (60.0% to 51.0%)"),
    ]
    assert [(m["channel"], m["to"], m["event"], m["status"]) for m in document["messages"]] == [
        ("hook", "HTTP endpoint", "opened", "would send")
    ]
    assert webhook_peer.received == []


async def test_alerts_sends_once_and_the_table_says_so(tmp_path: Path, webhook_peer: WebhookPeer) -> None:
    config = reading_config(tmp_path, await slipped_database(tmp_path), alerts_toml({"hook": HOOK_ENV}))
    env = {HOOK_ENV: webhook_peer.url("hook")}
    first = await fetcher(config, "alerts", env=env)
    second = await fetcher(config, "alerts", "--format", "json", env=env)
    assert (first[0], second[0]) == (0, 0)
    assert "Contoso Ltd" in first[1]
    assert "sent" in first[1]
    assert [d["summary"] for d in webhook_peer.bodies("hook")] == [
        "Contoso Ltd: Secure Score fell 9.0 percentage points in 7 days (60.0% to 51.0%)"
    ]
    again = json.loads(second[1])
    assert ([a["status"] for a in again["alerts"]], again["messages"]) == (["open"], [])
    assert webhook_peer.url("hook") not in first[1] + first[2] + second[1] + second[2]


async def test_a_failed_send_exits_1_names_the_channel_and_hides_its_url(
    tmp_path: Path, webhook_peer: WebhookPeer
) -> None:
    config = reading_config(tmp_path, await slipped_database(tmp_path), alerts_toml({"hook": HOOK_ENV}))
    webhook_peer.answer("hook", *[("status", 500)] * 3)
    secret_url = webhook_peer.url("hook") + "?sig=TOP-SECRET-SIG"
    code, out, err = await fetcher(config, "-v", "alerts", env={HOOK_ENV: secret_url})
    assert code == 1
    assert "channel hook: HTTP 500" in out
    assert "TOP-SECRET-SIG" not in out + err


async def test_run_evaluates_alerts_after_it_and_keeps_its_own_exit_code(
    tmp_path: Path, webhook_peer: WebhookPeer
) -> None:
    """A tenant without consent fails the run (exit 1); the alert reaches one channel while another is dead."""
    healthy, refused = generate_tenants(2, seed=5)
    refused = dataclasses.replace(refused, consent=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'run.db'}"
    webhook_peer.answer("dead", *[("status", 503)] * 10)
    with world(tmp_path, url, [healthy, refused]) as w:
        w.write_config()
        with w.config.open("a", encoding="utf-8") as file:
            file.write(
                "\n" + alerts_toml({"hook": "HOOK_A", "dead": "HOOK_B"}, kind="tenant_failing", extra="runs = 1")
            )
        env = {**w.env(), "HOOK_A": webhook_peer.url("hook"), "HOOK_B": webhook_peer.url("dead")}
        quiet = await fetcher(w.config, "run", "--no-alerts", env=env)
        loud = await fetcher(w.config, "run", env=env)
    assert (quiet[0], loud[0]) == (1, 1)
    [document] = webhook_peer.bodies("hook")
    assert (document["event"], document["tenant"]["tenant_id"], document["details"]["error_kind"]) == (
        "opened",
        refused.tenant_id,
        "permission",
    )
    assert document["details"]["consent_url"].endswith(f"/{refused.tenant_id}/adminconsent?client_id={w.sim.client_id}")
    assert len(webhook_peer.bodies("dead")) == 3  # tried, failed, kept for the next evaluation
    assert "channel dead: HTTP 503" in loud[2]


async def test_shards_leave_alerts_to_one_fetcher_alerts_after_them_all(
    tmp_path: Path, webhook_peer: WebhookPeer
) -> None:
    """Alert rules see every tenant, so no shard evaluates them: `fetcher alerts` does, once, after all shards."""
    healthy, refused = generate_tenants(2, seed=5)
    refused = dataclasses.replace(refused, consent=False)
    url = f"sqlite+aiosqlite:///{tmp_path / 'shards.db'}"
    with world(tmp_path, url, [healthy, refused]) as w:
        with w.config.open("a", encoding="utf-8") as file:
            file.write("\n" + alerts_toml({"hook": "HOOK_A"}, kind="tenant_failing", extra="runs = 1"))
        env = {**w.env(), "HOOK_A": webhook_peer.url("hook")}
        shards = [await fetcher(w.config, "run", "--shard", f"{k}/2", env=env) for k in (1, 2)]
        sent_by_shards = len(webhook_peer.bodies("hook"))
        after = await fetcher(w.config, "alerts", env=env)

    assert sorted(code for code, _, _ in shards) == [0, 4]  # the refused tenant is its shard's only one: all failed
    for (_, _, err), k in zip(shards, (1, 2), strict=True):
        assert f"shard {k}/2: alerts not evaluated by a shard; run `fetcher alerts` once every shard is done" in err
    assert sent_by_shards == 0
    assert after[0] == 0, after[2]
    [document] = webhook_peer.bodies("hook")
    assert (document["event"], document["tenant"]["tenant_id"]) == ("opened", refused.tenant_id)


async def owed_to_a_removed_channel(tmp_path: Path, webhook_peer: WebhookPeer, database_url: str) -> Path:
    """A slip whose message to channel `dead` failed, then a configuration with channel `new` only: its path."""
    engine = create_engine(DatabaseConfig(url=database_url))
    try:
        await slip(engine)
    finally:
        await engine.dispose()
    webhook_peer.answer("dead", *[("status", 500)] * 3)
    dead = reading_config(tmp_path, database_url, alerts_toml({"dead": HOOK_ENV}))
    assert (await fetcher(dead, "alerts", env={HOOK_ENV: webhook_peer.url("dead")}))[0] == 1
    return reading_config(tmp_path, database_url, alerts_toml({"new": HOOK_ENV}))


async def test_messages_owed_to_a_removed_channel_are_orphaned_until_dropped(
    tmp_path: Path, webhook_peer: WebhookPeer, database_url: str
) -> None:
    """They stayed unsent forever, counted by `..._unsent{channel="dead"}` and shown nowhere else; now `alerts`
    lists them and says how to drop them, `metrics` counts them apart, and `--drop-channel` drops them."""
    config = await owed_to_a_removed_channel(tmp_path, webhook_peer, database_url)
    env = {HOOK_ENV: webhook_peer.url("new")}

    code, out, err = await fetcher(config, "alerts", "--format", "json", env=env)
    metrics = (await fetcher(config, "metrics"))[1]
    refused = await fetcher(config, "alerts", "--drop-channel", "new", env=env)
    dropped = await fetcher(config, "alerts", "--drop-channel", "dead")
    after = await fetcher(config, "alerts", "--format", "json", env=env)
    metrics_after = (await fetcher(config, "metrics"))[1]

    assert code == 0, err
    orphaned = [(m["channel"], m["status"], m["to"]) for m in json.loads(out)["messages"] if m["channel"] == "dead"]
    assert orphaned == [("dead", "orphaned", "(channel no longer configured)")]
    assert (
        "1 message(s) owed to channel 'dead', which is no longer in [[alerts.channels]], will not be sent: "
        "`fetcher alerts --drop-channel dead` drops them (or configure the channel again to send them)"
    ) in err
    assert 'securescore_alert_notifications_orphaned{channel="dead"} 1.0' in metrics
    assert 'securescore_alert_notifications_unsent{channel="dead"}' not in metrics
    assert refused[0] == 2
    assert "--drop-channel new: the channel is in [[alerts.channels]]" in refused[2]
    assert dropped[:2] == (0, "channel dead: 1 owed message(s) dropped\n"), dropped[2]
    assert (after[0], [m["channel"] for m in json.loads(after[1])["messages"]], after[2]) == (0, [], "")
    assert 'channel="dead"' not in metrics_after


async def test_drop_channel_speaks_json_and_answers_a_name_owed_nothing_with_the_channels_owed(
    tmp_path: Path, webhook_peer: WebhookPeer, database_url: str
) -> None:
    """`--format json` printed the text line; a typo (`nosuch`) or `''` said `0 owed message(s) dropped`, exit 0,
    no hint that no such channel was ever owed anything."""
    config = await owed_to_a_removed_channel(tmp_path, webhook_peer, database_url)

    typo = await fetcher(config, "alerts", "--drop-channel", "nosuch")
    empty = await fetcher(config, "alerts", "--drop-channel", "")
    dropped = await fetcher(config, "alerts", "--drop-channel", "dead", "--drop-channel", "nosuch", "--format", "json")

    said = "channel nosuch: nothing is owed to a channel named 'nosuch' (channels owed messages: 'dead' (1))\n"
    assert typo[:2] == (0, said), typo[2]
    assert empty[0] == 2
    assert "--drop-channel '': a channel name is needed" in empty[2]
    assert dropped[0] == 0, dropped[2]
    assert json.loads(dropped[1]) == {
        "channels": [
            {"channel": "dead", "dropped": 1, "hint": None},
            {"channel": "nosuch", "dropped": 0, "hint": said.split(": ", 1)[1].strip()},
        ]
    }
