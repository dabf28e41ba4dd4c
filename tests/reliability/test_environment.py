"""The environment breaking under a real `fetcher` process: a database file deleted or replaced mid-run, a
PostgreSQL database that does not exist, an Entra ID token endpoint that trickles, floods or answers
nonsense, and too few file descriptors. Each ends in one clear line and the right exit code, never in a
hang, a traceback or a success that stored nothing."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from fetcher.simulator import Fault, generate_tenants
from tests.conftest import POSTGRES_ENV, SKIP_POSTGRES
from tests.reliability.harness import CLIENT_SECRET, Transcripts, essence, rig

pytestmark = pytest.mark.slow

SEED = 97
TENANT = "11111111-1111-1111-1111-111111111111"


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------------- a vanished database


@pytest.mark.parametrize("what", ["deleted", "replaced"])
def test_a_sqlite_file_deleted_or_replaced_mid_run_ends_the_run_with_exit_3(
    tmp_path: Path, transcripts: Transcripts, what: str
) -> None:
    """The run notices at its next commit that the file at the path is not the one it opened, stops, and
    says so; `status` then refuses to create an empty database there, and `migrate` is how to ask for one."""
    database = tmp_path / "db" / "scores.db"
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
    said = error_lines(done.stderr + done.stdout) or [essence(done.stderr)]
    assert f"database {database} was {'deleted' if what == 'deleted' else 'replaced by another file'}" in said[-1]
    if what == "deleted":
        assert status.returncode == 3
        assert f"no database at {database}" in status.stderr
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
