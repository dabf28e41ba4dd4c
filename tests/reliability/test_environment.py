"""The environment breaking under a real `fetcher` process: a database file deleted or replaced mid-run, a
PostgreSQL database that does not exist, an Entra ID token endpoint that trickles, floods or answers
nonsense, and too few file descriptors. Each ends in one clear line and the right exit code, never in a
hang, a traceback or a success that stored nothing."""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import make_url

from fetcher.simulator import Fault, generate_tenants
from tests.conftest import POSTGRES_ENV, SKIP_POSTGRES
from tests.reliability.harness import CLIENT_SECRET, Rig, Transcripts, essence, fatal_errors, ledger, rig
from tests.reliability.peers import Handler, Peer, flood, gzip_bomb, json_answer, token_endpoint, trickle

pytestmark = pytest.mark.slow

SEED = 97
TENANT = "11111111-1111-1111-1111-111111111111"
YEAR = 365 * 24 * 3600


# --------------------------------------------------------------------------------- a vanished database


@pytest.mark.parametrize("what", ["deleted", "replaced"])
def test_a_sqlite_file_deleted_or_replaced_mid_run_ends_the_run_with_exit_3(
    tmp_path: Path, transcripts: Transcripts, what: str
) -> None:
    """The run notices at its next commit that the file at the path is not the one it opened, stops, and
    says so; `status` then refuses to create an empty database there, and `migrate` is how to ask for one."""
    database = tmp_path / "db" / "scores.db"
    database.parent.mkdir()
    # Every Graph request of the run takes 3 s, so that no tenant is stored before the file is gone.
    tenants = [dataclasses.replace(t, faults=(Fault.latency(3000),)) for t in generate_tenants(4, seed=SEED)]
    with rig(tmp_path, f"sqlite+aiosqlite:///{database}", tenants, transcripts, fetch={"concurrency": 2}) as r:
        assert r.fetcher("migrate").returncode == 0
        spare = tmp_path / "other.db"
        shutil.copy(database, spare)
        running = r.start("backfill", "--days", "5")
        assert running.wait_for_log("tenant(s) to fetch"), running.stderr()[-2000:]
        for leftover in database.parent.glob("scores.db*"):
            leftover.unlink()
        if what == "replaced":
            shutil.copy(spare, database)
        done = running.finish()
        if what == "deleted":
            status = r.fetcher("status")
            left_empty = database.exists()
            migrated = r.fetcher("migrate")

    assert done.returncode == 3, essence(done.stderr)
    assert "Traceback" not in done.stderr
    said = fatal_errors(done.stderr + done.stdout) or [essence(done.stderr)]
    assert f"database {database} was {'deleted' if what == 'deleted' else 'replaced by another file'}" in said[-1]
    if what == "deleted":
        assert status.returncode == 3
        assert f"no database at {database}: check [database] url, restore the file from a backup if it was deleted" in (
            status.stderr
        )
        assert "`fetcher migrate` to create a new one" in status.stderr
        assert not left_empty
        assert migrated.returncode == 0


# ----------------------------------------------------------------------------- a database not there


@pytest.mark.postgres
@pytest.mark.parametrize(
    "command",
    [("status",), ("report",), ("migrate",), ("rebuild",), ("run",), ("backfill", "--days", "1"), ("get", "x")],
    ids=lambda c: c[0],
)
def test_a_postgres_database_that_does_not_exist_is_one_line_and_exit_3(tmp_path: Path, command: tuple[str]) -> None:
    """Every command: no traceback, and not exit 1, which `status` uses for "some tenant is stale"."""
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.skip(SKIP_POSTGRES)
    url = make_url(admin).set(database="fetcher_no_such_database_hostile").render_as_string(hide_password=False)
    config = tmp_path / "fetcher.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[auth]\nclient_id = "00000000-0000-0000-0000-0000000000aa"\n'
        f'client_secret = "env:SECRET"\n[[tenants]]\ntenant_id = "{TENANT}"\nname = "Contoso"\n',
        encoding="utf-8",
    )
    args = list(command) if command[0] != "get" else ["get", f"{TENANT}_2026-11-01"]

    done = subprocess.run(
        [sys.executable, "-m", "fetcher", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SECRET": CLIENT_SECRET},
        timeout=120,
        check=False,
    )

    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 3, lines
    assert lines == [
        f'error: cannot connect to database {url}: database "fetcher_no_such_database_hostile" does not exist '
        "(create it, e.g. `createdb`, then run `fetcher migrate`)"
    ]


# ----------------------------------------------------------------------------- a hostile token endpoint


def token_outcome(r: Rig, handler: Handler, tmp_path: Path, **graph: Any) -> tuple[int, dict[str, Any], Peer, int]:
    """`fetcher run` for one tenant whose token requests go to a hostile peer; its exit code, its ledger row,
    the peer, and the exit code of the next run (3 would mean the first left its lock behind)."""
    with token_endpoint(tmp_path / "peer-tls", handler) as peer:
        r.configure(graph={"authority_host": peer.origin, **graph}, fetch={"max_attempts": 2})
        done = r.start("run").finish(timeout=90)
        again = r.fetcher("run", timeout=90)
    rows = ledger(r.database_url)[1]
    assert "Traceback" not in done.stderr, essence(done.stderr)
    return done.returncode, rows[0], peer, again.returncode


@pytest.fixture
def one_tenant_rig(tmp_path: Path, transcripts: Transcripts) -> Iterator[Rig]:
    with rig(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", generate_tenants(1, seed=SEED), transcripts
    ) as r:
        yield r


def test_a_token_endpoint_that_trickles_is_cut_at_timeout_seconds(one_tenant_rig: Rig, tmp_path: Path) -> None:
    """One byte a second never trips a per-read timeout; the whole exchange is bounded instead, the tenant
    fails as a timeout, and the run ends and frees its lock for the next."""
    code, row, peer, next_code = token_outcome(one_tenant_rig, trickle, tmp_path, timeout_seconds=2)

    # The run's one tenant failed: every tenant failed, exit 4 (and the next run, not locked out, likewise).
    assert (code, row["status"], row["error_kind"], next_code) == (4, "failed", "timeout", 4)
    assert (
        "Entra ID did not answer in time (no complete answer within [graph] timeout_seconds = 2 s)"
        in (row["error_message"])
    )
    assert len(peer.requests) == 4  # fetcher.retry's two attempts, in each of the two runs


@pytest.mark.parametrize(
    ("handler", "what"),
    [(flood(8), "bytes read so far, after decompression"), (gzip_bomb(64), "bytes read so far, after decompression")],
    ids=["8 MB", "gzip inflating to 64 MB"],
)
def test_a_token_answer_above_its_cap_is_refused(
    one_tenant_rig: Rig, tmp_path: Path, handler: Handler, what: str
) -> None:
    """Token answers are capped (1 MiB, or [graph] max_response_bytes if smaller), counted after decompression."""
    code, row, peer, _ = token_outcome(one_tenant_rig, handler, tmp_path)

    assert (code, row["status"], row["error_kind"]) == (4, "failed", "unsafe_response")  # its only tenant failed
    assert "Entra ID's token endpoint at https://127.0.0.1:" in row["error_message"]
    assert f"{what}) exceeds the cap of 1048576 bytes; refused" in row["error_message"]
    assert len(peer.requests) == 2  # not retried, in either run


def test_a_token_answer_without_a_token_is_an_authentication_error(one_tenant_rig: Rig, tmp_path: Path) -> None:
    handler = json_answer(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599})

    code, row, _, _ = token_outcome(one_tenant_rig, handler, tmp_path)

    assert (code, row["status"], row["error_kind"]) == (4, "failed", "authentication")  # its only tenant failed
    tenant = next(iter(one_tenant_rig.sim.tenants.values()))
    assert row["error_message"].startswith(
        f"tenant {tenant.tenant_id} ({tenant.name}): Entra ID's token endpoint at https://127.0.0.1:"
    )
    assert "its answer (HTTP 200) has no access_token, so no token was issued" in row["error_message"]


def test_a_long_retry_after_from_entra_id_is_blamed_on_entra_id(tmp_path: Path, transcripts: Transcripts) -> None:
    (tenant,) = generate_tenants(1, seed=SEED)
    tenant = dataclasses.replace(tenant, faults=(Fault.status(429, endpoint="token", retry_after=YEAR),))
    with rig(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", [tenant], transcripts) as r:
        done = r.fetcher("run")
        row = ledger(r.database_url)[1][0]

    assert (done.returncode, row["error_kind"]) == (4, "retry_wait_too_long")  # its only tenant failed
    assert f"tenant {tenant.tenant_id} ({tenant.name}): Entra ID asked to wait 3.1536e+07 s" in row["error_message"]


# ------------------------------------------------------------------------------------ too few open files


def test_too_few_open_files_for_the_concurrency_lowers_it_with_a_warning(
    tmp_path: Path, transcripts: Transcripts
) -> None:
    """`ulimit -n 64` with `concurrency = 64`: the run fits its concurrency to the limit, says how to raise
    the limit, and stores every tenant, instead of failing them all as `authentication` errors."""
    tenants = generate_tenants(60, seed=SEED)
    database = tmp_path / "scores.db"
    with rig(tmp_path, f"sqlite+aiosqlite:///{database}", tenants, transcripts) as r:
        r.configure(fetch={"concurrency": 64, "per_tenant_concurrency": 4, "history_days": 3})
        done = subprocess.run(
            r.argv("run"),
            capture_output=True,
            text=True,
            env=r.env(),
            timeout=300,
            check=False,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)),
        )
        rows = ledger(r.database_url)[1]

    warnings = [line for line in done.stderr.splitlines() if "open files" in line and '"warning"' in line]
    assert done.returncode == 0, essence(done.stderr)
    assert len(warnings) == 1
    assert "[fetch] concurrency = 64 needs about" in warnings[0]
    assert "but this process may open 64: running with concurrency = " in warnings[0]
    assert "`ulimit -n " in warnings[0]
    assert sorted((row["status"], row["error_kind"]) for row in rows) == [("succeeded", None)] * 60


# ----------------------------------------------------------------------------------- statement logging


def test_sql_statements_are_logged_only_with_log_sql_and_never_their_parameters(
    tmp_path: Path, transcripts: Transcripts
) -> None:
    """`-vv` used to log every SQLite call with its rows (600 MB for a 60-tenant backfill); now statements
    need `--log-sql`, and what is logged is the statement with its parameters hidden."""
    tenants = generate_tenants(3, seed=SEED)
    with rig(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", tenants, transcripts) as r:
        verbose = r.fetcher("-vv", "backfill", "--days", "3")
        with_sql = r.fetcher("--log-sql", "backfill", "--days", "3")

    def by_logger(output: str, prefix: str) -> list[dict[str, Any]]:
        records = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
        return [record for record in records if record["logger"].startswith(prefix)]

    assert (verbose.returncode, with_sql.returncode) == (0, 0)
    assert by_logger(verbose.stderr, "aiosqlite") == []
    assert by_logger(verbose.stderr, "sqlalchemy") == []
    statements = by_logger(with_sql.stderr, "sqlalchemy.engine")
    assert any("INSERT INTO tenant_runs" in s["message"] for s in statements)
    assert any("[SQL parameters hidden due to hide_parameters=True]" in s["message"] for s in statements)
    leaked = [
        s["message"] for s in statements for t in tenants if t.tenant_id in s["message"] or t.name in s["message"]
    ]
    assert leaked == []
    assert by_logger(with_sql.stderr, "aiosqlite") == []
