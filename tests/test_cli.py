"""The command line: help for every command, exit codes, one-line errors, `config check`, `migrate`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from fetcher import __version__
from fetcher.cli import main
from fetcher.cli.running import shard_and_tenants
from fetcher.config import Purpose, load_config
from fetcher.simulator import SimTenant
from fetcher.store.engine import head_revision
from fetcher.store.schema import fetch_runs
from fetcher.text import hide_password
from tests.conftest import (
    POSTGRES_ENV,
    SKIP_POSTGRES,
    create_postgres_database,
    drop_postgres_database,
    execute_sql,
    run_aside,
)
from tests.e2e import World, world
from tests.test_partner import CONTOSO, FABRIKAM, PARTNER, automatic, small_relationships
from tests.test_runner import db_rows

SECRET = "cli-secret-value-9f8e7d"
CLIENT_ID = "00000000-0000-0000-0000-0000000000aa"
TENANT = "11111111-1111-1111-1111-111111111111"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=False)


DEFAULT_DATABASE = 'url = "sqlite+aiosqlite:///scores.db"'
DEFAULT_AUTH = 'client_secret = "env:SECRET"'


def write_config(folder: Path, *, database: str = DEFAULT_DATABASE, auth: str = DEFAULT_AUTH) -> Path:
    path = folder / "fetcher.toml"
    path.write_text(
        f'[database]\n{database}\n[auth]\nclient_id = "{CLIENT_ID}"\n{auth}\n'
        f'[[tenants]]\ntenant_id = "{TENANT}"\nname = "Contoso"\n',
        encoding="utf-8",
    )
    return path


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("command", list(_commands(main)), ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")

    assert result.exit_code == 0
    assert "Usage:" in result.output
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 20, f"{' '.join(command)} has no real help text"


def test_python_dash_m_fetcher_runs_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "fetcher", "--version"], capture_output=True, text=True, check=False)

    assert done.returncode == 0
    assert done.stdout.startswith("fetcher, version ")


def test_version_names_the_schema_revision_it_migrates_to() -> None:
    """It said `fetcher, version 0.1.0` at every revision: two installs could not be told apart."""
    result = invoke("--version")

    assert (result.exit_code, result.output) == (0, f"fetcher, version {__version__} (schema {head_revision()})\n")


def test_config_check_prints_the_configuration_without_secrets(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    result = invoke("--config", str(config), "config", "check", "--format", "json", env={"SECRET": SECRET})

    assert result.exit_code == 0
    assert SECRET not in result.output
    assert "<secret from env:SECRET>" in result.output
    assert TENANT in result.output


def test_a_configuration_error_is_one_line_with_exit_code_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    result = invoke("--config", str(config), "run", env={})

    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "[auth] client_secret = 'env:SECRET': environment variable SECRET is not set" in lines[0]


def test_a_missing_configuration_file_says_where_it_looked(tmp_path: Path) -> None:
    result = invoke("--config", str(tmp_path / "nope.toml"), "status")

    assert result.exit_code == 2
    assert "no such configuration file" in result.output


def test_an_unknown_tenant_on_the_command_line_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    result = invoke(
        "--config", str(config), "run", "--tenant", "22222222-2222-2222-2222-222222222222", env={"SECRET": SECRET}
    )

    assert result.exit_code == 2
    assert "no such tenant" in result.output


def test_an_unreachable_database_exits_3_without_its_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, database='url = "postgresql+asyncpg://app:hunter22@127.0.0.1:1/nowhere"')

    result = invoke("--config", str(config), "status", env={"SECRET": SECRET})

    assert result.exit_code == 3
    assert "cannot connect to database" in result.output
    assert "hunter22" not in result.output


def test_migrate_creates_the_database_and_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    first = invoke("--config", str(config), "migrate", env={"SECRET": SECRET})
    again = invoke("--config", str(config), "migrate", env={"SECRET": SECRET})

    assert first.exit_code == 0
    assert f"to revision {head_revision()}" in first.output
    assert "already at revision" in again.output
    assert (tmp_path / "scores.db").exists()


def test_quiet_migrate_says_nothing_at_the_head_but_still_says_a_migration(tmp_path: Path) -> None:
    """Cron's `fetcher -q migrate` mailed `...: already at revision 0015` every night."""
    config = write_config(tmp_path)
    command = [sys.executable, "-m", "fetcher", "-q", "--config", str(config), "migrate"]

    first, again = (
        subprocess.run(command, capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path)
        for _ in range(2)
    )

    assert (first.returncode, first.stdout, f"to revision {head_revision()}" in first.stderr) == (0, "", True)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["", "-q"])
def test_migrate_s_lines_are_json_records_under_log_format_json(tmp_path: Path, quiet: list[str]) -> None:
    """`migrated from ...` and `already at revision ...` were plain text among the JSON records; `-q` still
    leaves out only `already at revision` (an info record dropped by -q's log level would hide the migration)."""
    config = write_config(tmp_path)
    command = [sys.executable, "-m", "fetcher", *quiet, "--log-format", "json", "--config", str(config), "migrate"]

    first, again = (
        subprocess.run(command, capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path)
        for _ in range(2)
    )

    where = f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}"
    records = [
        [(r["level"], r["message"]) for r in map(json.loads, done.stderr.splitlines())] for done in (first, again)
    ]
    assert (first.returncode, again.returncode, records) == (
        0,
        0,
        [
            [("info", f"{where}: migrated from an empty database to revision {head_revision()}")],
            [] if quiet else [("info", f"{where}: already at revision {head_revision()}")],
        ],
    )


# A `fetcher migrate` that sends itself SIGTERM at WHEN: "committed", as it reads the free pages after the last
# commit (the handler runs at that read's await, whatever the timing); "exiting", from an atexit hook, once the
# command has said what it did and the interpreter is shutting down.
SIGNAL_AFTER_THE_MIGRATION = """
import atexit, os, signal, sys
import sqlalchemy as sa
from fetcher.cli import main

WHEN = sys.argv.pop(1)

@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def signal_after_the_commit(conn, cursor, statement, parameters, context, executemany):
    if WHEN == "committed" and statement == "PRAGMA freelist_count":
        os.kill(os.getpid(), signal.SIGTERM)

if WHEN == "exiting":
    atexit.register(os.kill, os.getpid(), signal.SIGTERM)
sys.argv[0] = "fetcher"
main()
"""


@pytest.mark.parametrize(
    ("when", "said"),
    [
        ("committed", f"migrated from an empty database to revision {head_revision()}"),
        ("exiting", f"migrated from an empty database to revision {head_revision()}"),
    ],
)
def test_a_signal_after_the_migration_committed_leaves_it_migrated_and_exit_0(
    tmp_path: Path, when: str, said: str
) -> None:
    """The tester: "migrated from 0010 to revision 0014" then exit 143 (a SIGTERM as it exited), and once
    "interrupted: ... rolled back" with the database at 0014 (a SIGTERM after the last commit)."""
    config = write_config(tmp_path)
    command = [sys.executable, "-c", SIGNAL_AFTER_THE_MIGRATION, when, "--config", str(config), "migrate"]

    env = {**os.environ, "SECRET": SECRET}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}: {said}"


@pytest.mark.parametrize("command", [["status"], ["migrate"], ["report"], ["archive", "compact"], ["vacuum"]])
def test_a_database_newer_than_the_fetcher_is_one_line_saying_to_upgrade_it(
    tmp_path: Path, migrated_then: Callable[..., str], command: list[str]
) -> None:
    config = write_config(tmp_path)
    migrated_then("sqlite", "UPDATE alembic_version SET version_num = '9999'")

    result = invoke("--config", str(config), *command, env={"SECRET": SECRET})

    assert result.exit_code == 3, result.output
    assert result.output == (
        f"error: database sqlite+aiosqlite:///{tmp_path / 'scores.db'} is at schema revision 9999, "
        f"newer than this fetcher knows (its latest is {head_revision()}): upgrade the fetcher\n"
    )


@pytest.mark.parametrize("command", [["status"], ["migrate"], ["run"]])
def test_two_revisions_in_alembic_version_are_one_line_not_a_traceback(
    tmp_path: Path, migrated_then: Callable[..., str], command: list[str]
) -> None:
    """It was Alembic's CommandError ("more than one head present") with a traceback and exit 1."""
    config = write_config(tmp_path)
    migrated_then("sqlite", "INSERT INTO alembic_version VALUES ('0013')")

    result = invoke("--config", str(config), *command, env={"SECRET": SECRET})

    assert result.exit_code == 3, result.output
    assert result.output == (
        f"error: database sqlite+aiosqlite:///{tmp_path / 'scores.db'}: alembic_version holds 2 revisions "
        f"(0013, {head_revision()}) where a fetcher keeps one: delete the rows that are not the database's "
        """revision (see the README's "Repairing the schema revision"), or restore it from a backup\n"""
    )


@pytest.mark.parametrize("command", [["status"], ["migrate"]])
def test_the_fetchers_tables_without_a_revision_are_one_line_on_status_and_migrate(
    tmp_path: Path, migrated_then: Callable[..., str], command: list[str]
) -> None:
    """`status` said to run `migrate`, which failed with "table tenants already exists"."""
    config = write_config(tmp_path)
    migrated_then("sqlite", "DELETE FROM alembic_version")

    result = invoke("--config", str(config), *command, env={"SECRET": SECRET})

    assert result.exit_code == 3, result.output
    assert result.output == (
        f"error: database sqlite+aiosqlite:///{tmp_path / 'scores.db'} holds the fetcher's tables but no schema "
        "revision (alembic_version empty or missing): restore it from a backup, or put its revision back (see "
        """the README's "Repairing the schema revision")\n"""
    )


@pytest.mark.parametrize("command", [["status"], ["report"], ["metrics"], ["migrate"], ["-q", "migrate"], ["run"]])
def test_a_dropped_table_is_one_line_naming_it_and_migrate_does_not_say_all_is_well(
    tmp_path: Path, migrated_then: Callable[..., str], command: list[str]
) -> None:
    """Commands said `no such table: fetch_runs` (status and report: nothing, exit 0); migrate `already at
    revision`, exit 0."""
    config = write_config(tmp_path)
    migrated_then("sqlite", "DROP TABLE fetch_runs")

    result = invoke("--config", str(config), *command, env={"SECRET": SECRET})

    assert result.exit_code == 3, result.output
    assert result.output == (
        f"error: database sqlite+aiosqlite:///{tmp_path / 'scores.db'} is at schema revision {head_revision()} but "
        "its table fetch_runs is missing (dropped since it was migrated): restore the database from a backup (see "
        """the README's "Repairing the schema revision")\n"""
    )


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("command", [["status"], ["report"]])
def test_a_table_dropped_after_the_start_up_check_is_the_same_one_line(
    tmp_path: Path, migrated_then: Callable[..., str], kind: str, command: list[str]
) -> None:
    """A table dropped between a command's schema check and its next transaction gave the driver's raw
    `no such table: tenant_runs` (SQLite) or `relation "tenant_runs" does not exist` (PostgreSQL)."""
    import sqlalchemy as sa

    url = migrated_then(kind)
    config = write_config(tmp_path, database=f'url = "{url}"')
    begun: list[object] = []

    def drop_after_the_check(_conn: object) -> None:
        begun.append(_conn)
        if len(begun) == 2:  # the first is the check's: the table goes before the command's next transaction
            drop_table(url, "tenant_runs")

    sa.event.listen(sa.engine.Engine, "begin", drop_after_the_check)
    try:
        result = invoke("--config", str(config), *command, env={"SECRET": SECRET})
    finally:
        sa.event.remove(sa.engine.Engine, "begin", drop_after_the_check)

    shown = f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}" if kind == "sqlite" else hide_password(url)
    assert (result.exit_code, result.output) == (
        3,
        f"error: database {shown}: its table tenant_runs is missing (dropped while this command ran): restore the "
        """database from a backup (see the README's "Repairing the schema revision")\n""",
    )


def drop_table(url: str, table: str) -> None:
    """`table` dropped and committed by a connection of its own (on PostgreSQL with the views made of it)."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)) as db:
            db.execute(f"DROP TABLE {table}")
    else:
        run_aside(execute_sql(url, [f"DROP TABLE {table} CASCADE"]))


@pytest.mark.parametrize("command", [["migrate"], ["run"]])
def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path, command: list[str]) -> None:
    """`migrate` added the fetcher's tables to it and said "migrated from an empty database"."""
    config = write_config(tmp_path)
    with sqlite3.connect(tmp_path / "scores.db") as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    db.close()

    result = invoke("--config", str(config), *command, env={"SECRET": SECRET})

    assert result.exit_code == 3, result.output
    assert result.output == (
        f"error: database sqlite+aiosqlite:///{tmp_path / 'scores.db'} holds tables that are not the fetcher's "
        "(notes): point [database] url at an empty or fetcher database\n"
    )
    with sqlite3.connect(tmp_path / "scores.db") as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
    db.close()


def test_migrate_refuses_monthly_partitions_on_sqlite_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, database=f'{DEFAULT_DATABASE}\npartition = "monthly"')

    result = invoke("--config", str(config), "migrate", env={"SECRET": SECRET})

    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert '[database] partition = "monthly" needs PostgreSQL' in result.output
    assert not (tmp_path / "scores.db").exists()


@pytest.mark.postgres
def test_migrate_partitions_a_postgresql_database_by_month_once(tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_cli")
    try:
        config = write_config(tmp_path, database=f'url = "{url}"\npartition = "monthly"')

        first = invoke("--config", str(config), "migrate", env={"SECRET": SECRET})
        again = invoke("--config", str(config), "migrate", env={"SECRET": SECRET})
    finally:
        drop_postgres_database(url)

    assert first.exit_code == 0
    assert "control_score_rows partitioned by month: 0 row(s) into 2 month partition(s)" in first.output
    assert "control_score_rows already partitioned" in again.output


def test_status_of_a_new_database_shows_every_tenant_as_stale(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    config = write_config(tmp_path)
    migrated_then("sqlite")

    result = invoke("--config", str(config), "status", "--format", "json", env={"SECRET": SECRET})

    assert result.exit_code == 1
    assert '"tenant_id": "11111111-1111-1111-1111-111111111111"' in result.output
    assert '"stale": true' in result.output


def test_backfill_rejects_both_days_and_since(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    result = invoke("--config", str(config), "backfill", "--days", "3", "--since", "2026-11-01", env={"SECRET": SECRET})

    assert result.exit_code == 2
    assert "not both" in result.output


def test_read_only_commands_need_no_client_secret(tmp_path: Path) -> None:
    """status, report, rebuild and migrate never authenticate, so a monitoring host needs no secret."""
    config = write_config(tmp_path)

    results = [
        invoke("--config", str(config), *command, env={})
        for command in (["migrate"], ["status"], ["report", "--format", "json"])
    ]

    assert [r.exit_code for r in results] == [0, 1, 0], [r.output for r in results]


def test_error_lines_keep_their_bracketed_section_names(tmp_path: Path) -> None:
    """`[fetch]` in a message is text, not terminal markup to be swallowed."""
    config = write_config(tmp_path)
    config.write_text(config.read_text() + "[fetch]\nmax_attempts = 0\n", encoding="utf-8")

    result = invoke("--config", str(config), "config", "check", env={"SECRET": SECRET})

    assert result.exit_code == 2
    assert "[fetch] max_attempts must be at least 1" in result.output


def test_metrics_writes_openmetrics_to_a_file_and_needs_no_client_secret(tmp_path: Path) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    config = write_config(tmp_path)
    target = tmp_path / "securescore.prom"
    assert invoke("--config", str(config), "migrate", env={}).exit_code == 0

    to_file = invoke("--config", str(config), "metrics", "--output", str(target), env={})
    to_stdout = invoke("--config", str(config), "metrics", env={})

    assert (to_file.exit_code, to_file.output, to_stdout.exit_code) == (0, "", 0)
    assert to_stdout.output == target.read_text(encoding="utf-8")
    families = {f.name: f.samples for f in text_string_to_metric_families(to_stdout.output)}
    assert families["securescore_current_score"] == []  # a new database: every family declared, no sample yet
    assert "securescore_alerts_open" in families


def test_metrics_output_naming_a_folder_is_one_line_and_exit_3(tmp_path: Path) -> None:
    """A folder given as the file is this machine's state, as a missing folder is (it was click's usage text, 2)."""
    config = write_config(tmp_path)
    assert invoke("--config", str(config), "migrate", env={}).exit_code == 0

    result = invoke("--config", str(config), "metrics", "--output", str(tmp_path), env={})

    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [f"error: cannot write {tmp_path}: Is a directory"]


ONLY_DATABASE = '[database]\nurl = "sqlite+aiosqlite:///scores.db"\n'
ALERT_RULE = (
    '[[alerts.rules]]\nname = "weak"\nkind = "below_percent"\nchannels = ["hook"]\n'
    '[[alerts.channels]]\nname = "hook"\ntype = "webhook"\nurl = "env:HOOK_URL"\n'
)


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["status"],
        ["report"],
        ["report", "--format", "json"],
        ["report", "--html", "page.html"],
        ["report", "--actions"],
        ["rebuild"],
        ["metrics"],
        ["alerts", "--dry-run"],
    ],
    ids=" ".join,
)
def test_reading_commands_work_with_a_configuration_of_only_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A reporting host's file holds [database] (and here one alert rule): no [auth], no tenant, no secret."""
    config = tmp_path / "reading.toml"
    config.write_text(ONLY_DATABASE + ALERT_RULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert invoke("--config", str(config), "migrate", env={}).exit_code == 0

    result = invoke("--config", str(config), *command, env={})

    assert result.exit_code == 0, result.output


def test_alerts_needs_only_the_database_and_its_channels_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sending alerts reads the channels' secrets, and still no [auth]."""
    config = tmp_path / "reading.toml"
    config.write_text(ONLY_DATABASE + ALERT_RULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert invoke("--config", str(config), "migrate", env={}).exit_code == 0

    result = invoke("--config", str(config), "alerts", env={"HOOK_URL": "http://127.0.0.1:9/hook"})

    assert result.exit_code == 0, result.output  # nothing open in an empty database: nothing to send


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("run", "--shard", "5/4"), {}, "error: --shard 5/4: '5/4': K must be between 1 and N (4)"),
        (("backfill", "--shard", "two"), {}, "error: --shard two: 'two' is not K/N (shard K of N, e.g. 2/4)"),
        (("run",), {"FETCHER_SHARD": "0/3"}, "error: $FETCHER_SHARD: '0/3': K must be between 1 and N (3)"),
        (
            ("backfill",),
            {"JOB_COMPLETION_INDEX": "1"},
            "error: $JOB_COMPLETION_INDEX=1: must be below [fetch] shards = 1 (set it to the Job's completions)",
        ),
        (
            ("run", "--shard", "1/2", "--tenant", TENANT),
            {},
            "error: --tenant with shard 1/2: give the tenants or the shard, not both",
        ),
    ],
)
def test_a_bad_shard_is_one_line_naming_its_source_with_exit_code_2(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    config = write_config(tmp_path)

    result = invoke("--config", str(config), *args, env={"SECRET": SECRET, **env})

    assert result.exit_code == 2
    assert result.output.strip() == message


@pytest.mark.parametrize(
    ("args", "env", "code", "kind", "message"),
    [
        (
            ("run",),
            {},
            2,
            "config",
            "client_secret = 'env:SECRET': environment variable SECRET is not set",
        ),
        (("status",), {"SECRET": SECRET}, 3, "database_unavailable", "cannot open database {folder}: it is a folder"),
    ],
    ids=["config", "database"],
)
def test_with_json_logs_the_fatal_error_is_one_json_log_line(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], code: int, kind: str, message: str
) -> None:
    """A log shipper reading `--log-format json` gets the reason a command stopped as a record, not text."""
    config = write_config(tmp_path)
    (tmp_path / "scores.db").mkdir()

    result = invoke("--log-format", "json", "--config", str(config), *args, env=env)

    assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert {k: record[k] for k in ("level", "logger", "command", "error_kind")} == {
        "level": "error",
        "logger": "fetcher.cli",
        "command": args[0],
        "error_kind": kind,
    }
    assert message.format(folder=tmp_path / "scores.db") in record["message"]


@pytest.mark.parametrize(
    ("args", "command", "message"),
    [
        (("report", "--since", "2026-13-01"), "report", "Invalid value for '--since': '2026-13-01' does not match"),
        (("status", "--max-age", "0"), "status", "Invalid value for '--max-age': 0.0 is not in the range 0<x<=1000000"),
        (("config", "check", "--format", "xml"), "config", "Invalid value for '--format': 'xml' is not one of"),
        (("backfill", "--days"), "backfill", "Option '--days' requires an argument."),
        (("status", "--log-format", "json", "--no-such-option"), "status", "No such option"),
        (("nosuchcommand",), None, "No such command 'nosuchcommand'."),
        (("--bogus", "run"), None, "No such option '--bogus'."),
        (("--bogus", "run", "--log-format", "json"), None, "No such option '--bogus'."),
        (("run", "--config"), None, "Option '--config' requires an argument."),
    ],
    ids=[
        "date",
        "range",
        "choice",
        "missing-value",
        "json-after-command",
        "unknown-command",
        "unknown-group-option",
        "unknown-group-option-json-after-command",
        "missing-group-value-after-command",
    ],
)
def test_with_json_logs_a_usage_error_is_one_json_log_line(
    tmp_path: Path, args: tuple[str, ...], command: str | None, message: str
) -> None:
    """Click's own refusals (a value's type or range, an unknown option or command) are a record too, exit 2."""
    config = write_config(tmp_path)
    global_args = ("--log-format", "json", "--config", str(config)) if "--log-format" not in args else ()

    result = invoke(*global_args, *args)

    assert (result.exit_code, result.stdout) == (2, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    record = json.loads(lines[0])
    assert {k: record[k] for k in ("level", "logger", "error_kind")} == {
        "level": "error",
        "logger": "fetcher.cli",
        "error_kind": "config",
    }
    assert record.get("command") == command or command is None  # in this process, an earlier test's may stay
    assert record["message"].startswith(message), record["message"]


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_a_sqlite_path_in_a_missing_folder_is_refused_and_no_folder_is_made(tmp_path: Path, command: str) -> None:
    """A typo in [database] url is said in one line, exit 3, rather than a new folder tree and an empty database."""
    database = tmp_path / "nonexistent" / "dir" / "x.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')

    result = invoke("--config", str(config), command, env={"SECRET": SECRET})

    assert result.exit_code == 3
    assert result.output == (
        f"error: cannot create database {database}: its folder {database.parent} does not exist: "
        "check [database] url, or create the folder\n"
    )
    assert not (tmp_path / "nonexistent").exists()


def test_a_named_tenant_ignores_the_shard_of_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kubectl exec` into a shard's pod and `fetcher run --tenant ID`: that tenant, whatever its shard."""
    config = load_config(write_config(tmp_path), purpose=Purpose.DATABASE)
    monkeypatch.setenv("FETCHER_SHARD", "not-read")

    shard, chosen = shard_and_tenants(config, None, [TENANT])

    assert (shard, [t.tenant_id for t in chosen]) == (None, [TENANT])


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--config", "{config}", "--format", "json"],
        ["status", "--format", "json", "--config={config}", "-q"],
        ["-v", "status", "--log-format", "json", "--config", "{config}", "--format", "json"],
    ],
    ids=" ".join,
)
def test_global_options_are_accepted_after_the_command(tmp_path: Path, args: list[str]) -> None:
    config = write_config(tmp_path)
    invoke("--config", str(config), "migrate", env={"SECRET": SECRET})

    result = invoke(*(a.format(config=config) for a in args), env={"SECRET": SECRET})

    assert result.exit_code == 1, result.output  # the one tenant has no data: status read the right database
    assert f'"tenant_id": "{TENANT}"' in result.output


def test_a_commands_own_option_is_not_taken_for_a_global_one() -> None:
    from fetcher.cli.hoist import hoist

    context = click.Context(main)

    assert hoist(main, context, ["config", "check", "--verbose", "--config", "x.toml"]) == [
        "--config",
        "x.toml",
        "config",
        "check",
        "--verbose",
    ]
    assert hoist(main, context, ["report", "--output", "-q", "-v"]) == ["-v", "report", "--output", "-q"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "nonsense"], "it must look like {tenantId}_{yyyy-mm-dd}"),
        (["get", f"{TENANT}_2026-13-45"], "2026-13-45 is not a date"),
        (
            ["get", f"{TENANT}_2026-11-01", "--tenant", "22222222-2222-2222-2222-222222222222"],
            f"does not match the score id's tenant {TENANT}",
        ),
    ],
    ids=["nonsense", "no date", "another tenant"],
)
def test_get_refuses_an_id_that_is_not_a_score_id_or_not_the_tenants_before_asking_graph(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """The configuration points at no Graph at all: a refusal here cannot have come from a request."""
    config = write_config(tmp_path)

    result = invoke("--config", str(config), *args, env={"SECRET": SECRET})

    assert result.exit_code == 2
    assert message in result.output
    assert "--tenant nonsense" not in result.output


def test_help_says_what_the_exit_codes_and_max_age_mean() -> None:
    import fetcher.cli

    assert "4 every tenant failed" in (fetcher.cli.__doc__ or "")
    assert "4 every tenant of the run failed" in " ".join(invoke("--help").output.split())
    assert "under 24 hours every tenant is always stale" in " ".join(invoke("status", "--help").output.split())
    assert "1 to 90" in invoke("backfill", "--help").output


def _as_nobody(args: list[str]) -> list[str]:
    """Run as an unprivileged user when root (root may write any file, read-only or not)."""
    if os.geteuid() != 0:
        return args
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *args]


def _fetcher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_nobody([sys.executable, "-m", "fetcher", *args]), capture_output=True, text=True, check=False, timeout=120
    )


def _fetcher_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_nobody([sys.executable, "-m", "fetcher", *args]),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder the unprivileged user can enter (pytest's own are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="fetcher-ro-"))
    folder.chmod(0o755)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(folder)


def _nobody_can_run_fetcher() -> bool:
    """Whether the unprivileged user can import the fetcher with this interpreter (a venv inside a folder
    private to root cannot be read; .ci/run opens its folder)."""
    probe = subprocess.run(
        _as_nobody([sys.executable, "-c", "import fetcher.cli"]), capture_output=True, check=False, timeout=60
    )
    return probe.returncode == 0


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_status_and_report_read_a_read_only_copy_and_change_nothing(shared_folder: Path) -> None:
    if os.geteuid() == 0 and not _nobody_can_run_fetcher():
        pytest.skip(f"user nobody cannot read this virtual environment ({sys.prefix}); .ci/run makes it readable")
    database = shared_folder / "copy.db"
    config = shared_folder / "reading.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{database}"\n', encoding="utf-8")
    assert invoke("--config", str(config), "migrate").exit_code == 0
    config.chmod(0o644)
    database.chmod(0o444)
    shared_folder.chmod(0o555)  # a copied file in a folder this user cannot write either
    before = database.read_bytes()

    status = _fetcher("--config", str(config), "status")
    report = _fetcher("--config", str(config), "report", "--format", "json")
    migrate = _fetcher("--config", str(config), "migrate")

    assert status.returncode == 0, status.stderr
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["tenants"] == []
    assert database.read_bytes() == before
    assert sorted(p.name for p in shared_folder.iterdir()) == ["copy.db", "reading.toml"]
    assert migrate.returncode == 3
    assert f"cannot open database {database}: permission denied" in migrate.stderr
    assert "Traceback" not in status.stderr + report.stderr + migrate.stderr


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_alerts_dry_run_reads_a_read_only_copy_and_alerts_refuses_it_in_one_line(shared_folder: Path) -> None:
    """`alerts` records alert state, so it needs to write; `--dry-run` changes nothing and reads like `status`."""
    if os.geteuid() == 0 and not _nobody_can_run_fetcher():
        pytest.skip(f"user nobody cannot read this virtual environment ({sys.prefix}); .ci/run makes it readable")
    database = shared_folder / "copy.db"
    config = shared_folder / "reading.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{database}"\n{ALERT_RULE}', encoding="utf-8")
    assert invoke("--config", str(config), "migrate").exit_code == 0
    config.chmod(0o644)
    database.chmod(0o444)
    shared_folder.chmod(0o555)
    before = database.read_bytes()

    dry = _fetcher("--config", str(config), "alerts", "--dry-run", "--format", "json")
    real = _fetcher_env({"HOOK_URL": "http://127.0.0.1:9/hook"}, "--config", str(config), "alerts")

    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True
    assert real.returncode == 3
    assert real.stderr.strip() == (
        f"error: cannot write database {database}: permission denied: the file is read-only for this user "
        "(`fetcher alerts` records the alerts' state; `fetcher alerts --dry-run` only reads)"
    )
    assert database.read_bytes() == before
    assert sorted(p.name for p in shared_folder.iterdir()) == ["copy.db", "reading.toml"]


@contextlib.contextmanager
def _read_only_mount(folder: Path) -> Iterator[Path]:
    """`folder` seen through a read-only bind mount (a `:ro` volume); skips where this host cannot mount."""
    seen = Path(tempfile.mkdtemp(prefix="fetcher-mount-"))
    mounted = subprocess.run(["mount", "--bind", str(folder), str(seen)], capture_output=True, check=False)
    if mounted.returncode != 0:
        seen.rmdir()
        pytest.skip("cannot bind-mount here (needs root and mount)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(seen)], capture_output=True, check=True)
        yield seen
    finally:
        subprocess.run(["umount", str(seen)], capture_output=True, check=False)
        seen.rmdir()


@pytest.mark.parametrize("command", [["archive", "compact"], ["vacuum"], ["migrate"]])
def test_a_read_only_mount_is_named_as_the_cause_not_this_user_s_permission(tmp_path: Path, command: list[str]) -> None:
    """It said `permission denied: the file is read-only for this user`, where no chmod would help."""
    assert invoke("--config", str(write_config(tmp_path)), "migrate").exit_code == 0
    with _read_only_mount(tmp_path) as seen:
        done = subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(seen / "fetcher.toml"), *command],
            capture_output=True,
            text=True,
            cwd=seen,
            check=False,
            timeout=120,
        )

    assert (done.returncode, done.stderr) == (
        3,
        f"error: cannot open database {seen / 'scores.db'}: the file system it is on is mounted read-only "
        "(remount it read-write)\n",
    )


def test_archive_compact_on_a_file_it_cannot_write_names_the_permission_problem(tmp_path: Path) -> None:
    """An immutable file (root may open it read-write, but not write it): `attempt to write a readonly
    database`, from the driver, was all it said."""
    assert invoke("--config", str(write_config(tmp_path)), "migrate").exit_code == 0
    database = tmp_path / "scores.db"
    if subprocess.run(["chattr", "+i", str(database)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i needs root and a file system that supports it")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(tmp_path / "fetcher.toml"), "archive", "compact"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
            timeout=120,
        )
    finally:
        subprocess.run(["chattr", "-i", str(database)], capture_output=True, check=False)

    assert (done.returncode, done.stderr) == (
        3,
        f"error: cannot write database {database}: permission denied: the file is read-only for this user\n",
    )


def test_a_database_that_cannot_be_opened_is_one_line_and_never_a_traceback(tmp_path: Path) -> None:
    """A driver thread used to outlive the event loop and print `RuntimeError: Event loop is closed` in
    most runs: repeated, every run must end on the one line."""
    (tmp_path / "scores.db").mkdir()
    config = write_config(tmp_path)

    runs = [
        subprocess.run(
            [sys.executable, "-m", "fetcher", "--config", str(config), command],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "SECRET": SECRET},
        )
        for command in ("migrate", "status", "report") * 3
    ]

    assert [r.returncode for r in runs] == [3] * len(runs)
    for run in runs:
        assert (
            run.stderr.strip()
            == f"error: cannot open database {tmp_path / 'scores.db'}: it is a folder, not a SQLite file"
        )


@pytest.mark.parametrize("command", [["run"], ["backfill"], ["config", "check"]], ids=" ".join)
def test_zero_tenants_is_a_usage_error_that_says_where_tenants_come_from(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "fetcher.toml"
    config.write_text(ONLY_DATABASE + f'[auth]\nclient_id = "{CLIENT_ID}"\nclient_secret = "env:SECRET"\n')

    result = invoke("--config", str(config), *command, env={"SECRET": SECRET})

    assert result.exit_code == 2
    assert "no tenants to fetch: there is no [[tenants]] table" in result.output
    assert "tenants_file" in result.output


def _archive_zlib_days(url: str, days: int) -> None:
    """`days` secureScores archived as a database without a dictionary writes them (zlib)."""
    import asyncio

    from fetcher.config import DatabaseConfig
    from fetcher.store.engine import create_engine
    from tests.store.test_compaction import archive, day_objects

    async def fill() -> None:
        engine = create_engine(DatabaseConfig(url=url))
        try:
            await archive(engine, day_objects(TENANT, days))
        finally:
            await engine.dispose()

    asyncio.run(fill())


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "report --since needs --tenant (the window of one tenant's report) or --html (the charts' window)"),
        (["--format", "csv", "--output", "weekly.csv"], "report --since needs --tenant"),
        (["--actions"], "report --since: the improvement actions are of each tenant's newest day and have no window"),
        (["--actions", "--tenant", TENANT], "report --since: the improvement actions"),
    ],
    ids=["portfolio", "portfolio to a file", "actions", "one tenant's actions"],
)
def test_report_since_where_it_sets_no_window_is_a_one_line_usage_error(
    tmp_path: Path, args: list[str], said: str
) -> None:
    """Said before the configuration is read: the file here does not even exist."""
    result = invoke("--config", str(tmp_path / "nowhere.toml"), "report", "--since", "2026-09-01", *args)

    assert result.exit_code == 2
    assert result.output.startswith(f"error: {said}")
    assert result.output.count("\n") == 1
    assert not (tmp_path / "weekly.csv").exists()


@pytest.mark.parametrize("args", [["--tenant", TENANT], ["--html", "page.html"]], ids=["tenant", "html"])
def test_report_since_sets_the_window_of_one_tenant_and_of_the_charts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], migrated_then: Callable[..., str]
) -> None:
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{tmp_path / "scores.db"}"')
    migrated_then("sqlite")
    monkeypatch.chdir(tmp_path)  # the page is written there

    result = invoke("--config", str(config), "report", "--since", "2026-09-01", *args)

    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("html", ["r.txt", "./sub/../r.txt", "link.txt"], ids=["same", "relative", "symlink"])
def test_report_refuses_output_and_html_naming_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, html: str, migrated_then: Callable[..., str]
) -> None:
    """The text would overwrite the page: a one-line usage error, nothing written."""
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{tmp_path / "scores.db"}"')
    migrated_then("sqlite")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.txt").symlink_to(tmp_path / "r.txt")

    result = invoke("--config", str(config), "report", "--output", "r.txt", "--html", html)

    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: report --output and --html both name {Path(html)}: the text would overwrite the page; give two files\n"
    )
    assert not (tmp_path / "r.txt").exists()


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["--format", "csv"], "the portfolio (1 tenants, csv)"),
        (["--tenant", TENANT, "--format", "json"], f"the report of tenant {TENANT} (json)"),
        (["--actions"], "the improvement actions (0 controls, table)"),
    ],
    ids=["portfolio", "tenant", "actions"],
)
def test_report_output_says_on_standard_error_what_it_wrote_where(
    tmp_path: Path, args: list[str], what: str, migrated_then: Callable[..., str]
) -> None:
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{tmp_path / "scores.db"}"')
    migrated_then("sqlite")
    target = tmp_path / "weekly.out"

    result = invoke("--config", str(config), "report", *args, "--output", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == f"wrote {what} to {target}\n"
    assert target.stat().st_size > 0


def test_archive_compact_trains_the_dictionary_and_recompresses_once(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{tmp_path / "scores.db"}"')
    migrated_then("sqlite")
    _archive_zlib_days(f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", 200)

    first = invoke("--config", str(config), "archive", "compact")
    again = invoke("--config", str(config), "archive", "compact")

    assert first.exit_code == again.exit_code == 0
    assert re.search(
        r"200 of 200 bodies read, 200 recompressed: \d+ kB -> \d+ kB; the archive's bodies: \d+ kB\n", first.output
    ), first.output
    assert "trained now on 200 objects" in first.output
    assert re.search(r"trained \d{4}-\d{2}-\d{2} on 200 objects", again.output), again.output
    assert "200 of 200 bodies read, 0 recompressed" in again.output
    assert "raw_control_profiles: 0 object(s), no dictionary yet" in again.output


SIGNAL_AFTER_FIRST_BATCH = """
import os, signal, sys
import fetcher.store.compaction as compaction
from fetcher.cli import main

SIGNAL = getattr(signal, sys.argv.pop(1))
compaction.BATCH = 20
batch = compaction._batch

async def batch_then_signal(*args, **kwargs):
    after = await batch(*args, **kwargs)
    os.kill(os.getpid(), SIGNAL)
    return after

compaction._batch = batch_then_signal
sys.argv[0] = "fetcher"
main()
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGINT to a background job"])
def test_a_signal_stops_archive_compact_after_a_batch_saying_what_was_kept(
    tmp_path: Path, how: str, migrated_then: Callable[..., str]
) -> None:
    """It exited 130 (143) without a word and SIGTERM left its run lock; now the batch in progress rolls back,
    one line says what the committed batches kept and to run it again, which does the rest."""
    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')
    migrated_then("sqlite")
    _archive_zlib_days(f"sqlite+aiosqlite:///{database}", 200)
    name = how.split(maxsplit=1)[0]

    stopped = subprocess.run(
        [sys.executable, "-c", SIGNAL_AFTER_FIRST_BATCH, name, "--config", str(config), "archive", "compact"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_ignore_sigint if "background" in how else None,
    )

    assert stopped.returncode == 128 + getattr(signal, name), stopped.stderr
    assert stopped.stderr.splitlines()[-1] == (
        "interrupted: raw_payloads: recompressing: 20 of 200 bodies done in committed batches, kept; the batch in "
        "progress was rolled back; run `fetcher archive compact` again to continue"
    )
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM run_lock").fetchone() == (0,)
    db.close()
    again = invoke("--config", str(config), "archive", "compact")
    assert again.exit_code == 0, again.output
    assert "200 of 200 bodies read, 180 recompressed" in again.output


@pytest.mark.postgres
def test_archive_compact_trains_the_dictionary_and_recompresses_once_on_postgresql(tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_cli_compact")
    try:
        config = write_config(tmp_path, database=f'url = "{url}"')
        assert invoke("--config", str(config), "migrate").exit_code == 0
        _archive_zlib_days(url, 200)

        first = invoke("--config", str(config), "archive", "compact")
        again = invoke("--config", str(config), "archive", "compact")
    finally:
        drop_postgres_database(url)

    assert first.exit_code == again.exit_code == 0
    assert re.search(
        r"200 of 200 bodies read, 200 recompressed: \d+ kB -> \d+ kB; the archive's bodies: \d+ kB\n", first.output
    ), first.output
    assert "trained now on 200 objects" in first.output
    assert re.search(r"trained \d{4}-\d{2}-\d{2} on 200 objects", again.output), again.output
    assert "200 of 200 bodies read, 0 recompressed" in again.output
    assert "raw_control_profiles: 0 object(s), no dictionary yet" in again.output
    assert "raw_payloads: 174 of 200 bodies rewritten as zstd deltas: " in first.output
    assert "raw_payloads: 0 of 200 bodies rewritten as zstd deltas; " in again.output


def test_archive_compact_rewrites_whole_bodies_as_deltas_once_and_says_the_sizes(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    """200 days of one tenant archived whole (as before migration 0013): a base a week of each shape stays."""
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{tmp_path / "scores.db"}"')
    migrated_then("sqlite")
    _archive_zlib_days(f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", 200)

    first = invoke("--config", str(config), "archive", "compact")
    again = invoke("--config", str(config), "archive", "compact")

    assert first.exit_code == again.exit_code == 0, first.output
    sizes = r"\d+ kB -> \d+ kB; the table's bodies \d+ kB -> \d+ kB \(\d\.\d\d kB -> \d\.\d\d kB an object\)\n"
    assert re.search(r"raw_payloads: 174 of 200 bodies rewritten as zstd deltas: " + sizes, first.output), first.output
    assert re.search(r"raw_payloads: 0 of 200 bodies rewritten as zstd deltas; the table's bodies \d+ kB", again.output)
    assert "delta" not in first.output.split("raw_control_profiles")[1]


def test_archive_compact_is_refused_while_a_run_holds_the_lock(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    import asyncio
    import sqlite3

    from fetcher.config import DatabaseConfig
    from fetcher.store.engine import create_engine
    from fetcher.store.lock import Holder, RunLock

    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')
    migrated_then("sqlite")
    _archive_zlib_days(f"sqlite+aiosqlite:///{database}", 200)
    with sqlite3.connect(database) as db:
        before = db.execute("SELECT * FROM raw_payloads ORDER BY score_date").fetchall()

    async def hold() -> None:  # a run's lease, left in place: its holder lives on another host
        engine = create_engine(DatabaseConfig(url=f"sqlite+aiosqlite:///{database}"))
        lock = RunLock(engine, Holder("nightly", "otherhost", 4242))
        await lock.__aenter__()
        assert lock._renewer is not None
        lock._renewer.cancel()
        await engine.dispose()

    asyncio.run(hold())
    result = invoke("--config", str(config), "archive", "compact")

    assert result.exit_code == 3, result.output
    assert "another fetcher run (pid 4242 on otherhost, run nightly, since" in result.output
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT * FROM raw_payloads ORDER BY score_date").fetchall() == before
        assert db.execute("SELECT count(*) FROM archive_dictionaries").fetchone() == (0,)


def test_vacuum_gives_back_what_migrate_and_archive_compact_say_is_free(tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')
    assert invoke("--config", str(config), "migrate").exit_code == 0
    with sqlite3.connect(database) as conn:  # 12 MB written, then freed, as 0011 frees the old table's
        conn.execute("CREATE TABLE scratch (body BLOB)")
        conn.executemany("INSERT INTO scratch VALUES (randomblob(100000))", [()] * 120)
    with sqlite3.connect(database) as conn:
        conn.execute("DROP TABLE scratch")
    size = database.stat().st_size

    told = invoke("--config", str(config), "migrate")
    compacted = invoke("--config", str(config), "archive", "compact")
    vacuumed = invoke("--config", str(config), "vacuum")
    again = invoke("--config", str(config), "migrate")

    assert told.exit_code == compacted.exit_code == vacuumed.exit_code == again.exit_code == 0
    for result in (told, compacted):
        assert "MB of the file's 12" in result.output
        assert "`fetcher vacuum` gives them back" in result.output
    # On disk: the file and the log archive compact left beside it
    figures = re.search(
        r"vacuumed, (\d+)\.\d MB -> \d+ kB on disk \((\d+)\.\d MB given back to the disk\)", vacuumed.output
    )
    assert figures is not None, vacuumed.output
    assert int(figures[1]) >= int(figures[2]) >= 12
    assert database.stat().st_size < size - 12_000_000
    assert "free pages" not in again.output


def test_vacuum_with_no_free_pages_says_so_and_leaves_the_file_alone(tmp_path: Path) -> None:
    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')
    assert invoke("--config", str(config), "migrate").exit_code == 0
    assert "vacuumed" in invoke("--config", str(config), "vacuum").output  # the few pages migrate freed
    schema_version = _schema_version(database)

    result = invoke("--config", str(config), "vacuum")

    assert result.exit_code == 0, result.output
    assert re.search(r": nothing to give back \(0 free pages\), \d+ kB on disk\n", result.output), result.output
    assert "vacuumed" not in result.output
    assert schema_version == _schema_version(database)  # VACUUM adds one to it


def _schema_version(path: Path) -> int:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA schema_version").fetchone()[0])


@pytest.mark.parametrize("command", [["status"], ["report"], ["archive", "compact"]])
@pytest.mark.parametrize(
    ("damage", "reason"), [("truncated", "database disk image is malformed"), ("garbage", "file is not a database")]
)
def test_a_damaged_sqlite_file_is_one_line_naming_it(
    tmp_path: Path, command: list[str], damage: str, reason: str, migrated_then: Callable[..., str]
) -> None:
    config = write_config(tmp_path)
    database = tmp_path / "scores.db"
    migrated_then("sqlite")
    if damage == "truncated":
        with database.open("r+b") as file:
            file.truncate(database.stat().st_size // 2)
    else:
        database.write_bytes(b"not a database, " * 512)

    result = invoke("--config", str(config), *command, env={"SECRET": SECRET})

    assert result.exit_code == 3, result.output
    assert result.output == f"error: database sqlite+aiosqlite:///{database}: {reason}\n"


def test_vacuum_says_in_one_line_that_it_waits_for_a_reader_before_waiting(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"\nbusy_timeout_seconds = 0.2')
    migrated_then("sqlite")  # first: it refuses a file of other tables
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE kept (body BLOB)")
        db.executemany("INSERT INTO kept VALUES (randomblob(100000))", [()] * 20)
        db.execute("CREATE TABLE scratch (body BLOB)")
        db.executemany("INSERT INTO scratch VALUES (randomblob(100000))", [()] * 20)
        db.commit()
        db.execute("DROP TABLE scratch")
    db.close()

    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM kept").fetchone()
        held = invoke("--config", str(config), "vacuum")
        reader.execute("COMMIT")
    alone = invoke("--config", str(config), "vacuum")

    assert held.exit_code == alone.exit_code == 0, held.output
    assert held.output.splitlines()[0] == "a reader holds the write-ahead log: waiting up to 0.2 s for it to finish…"
    assert "waiting" not in alone.output


def test_vacuum_of_a_file_that_is_not_a_database_names_it(tmp_path: Path) -> None:
    database = tmp_path / "scores.db"
    database.write_bytes(b"not a database, " * 512)
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')

    result = invoke("--config", str(config), "vacuum")

    assert result.exit_code == 3, result.output
    assert str(database) in result.output
    assert "file is not a database" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.postgres
def test_vacuum_on_postgresql_connects_then_says_its_size_and_why_there_is_nothing_to_do(tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_cli_vacuum")
    try:
        config = write_config(tmp_path, database=f'url = "{url}"')
        unmigrated = invoke("--config", str(config), "vacuum")
        assert invoke("--config", str(config), "migrate").exit_code == 0
        result = invoke("--config", str(config), "vacuum")
        autovacuum = _autovacuum(url)
    finally:
        drop_postgres_database(url)

    assert unmigrated.exit_code == 3
    assert unmigrated.output.startswith("error: database postgresql+asyncpg://")
    assert unmigrated.output.endswith("has no fetcher schema: run `fetcher migrate`\n")
    assert result.exit_code == 0
    assert result.output.count("\n") == 1
    assert re.match(r"postgresql\+asyncpg://\S+: \d+(\.\d)? MB on disk; ", result.output), result.output
    assert ("nothing to vacuum here" in result.output) is autovacuum
    assert ("autovacuum is off on this server" in result.output) is not autovacuum
    assert "VACUUM FULL, pg_repack" in result.output


def _autovacuum(url: str) -> bool:
    """Whether the PostgreSQL server at `url` runs autovacuum (on by default; a test server may not)."""
    import asyncio

    import sqlalchemy as sa

    from fetcher.config import DatabaseConfig
    from fetcher.store.engine import create_engine

    async def read() -> bool:
        engine = create_engine(DatabaseConfig(url=url))
        try:
            async with engine.connect() as conn:
                return await conn.scalar(sa.text("SHOW autovacuum")) == "on"
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_vacuum_on_an_unreachable_postgresql_is_one_line_naming_it_without_its_password(tmp_path: Path) -> None:
    """It connects first: a wrong URL or a server down is not "nothing to do"."""
    config = write_config(tmp_path, database='url = "postgresql+asyncpg://app:hunter22@127.0.0.1:1/nowhere"')
    config.chmod(0o600)  # no warning about the literal password

    result = invoke("--config", str(config), "vacuum")

    assert result.exit_code == 3
    assert result.output.startswith(
        "error: cannot connect to database postgresql+asyncpg://app:***@127.0.0.1:1/nowhere"
    )
    assert result.output.count("\n") == 1
    assert "hunter22" not in result.output


def test_archive_compact_names_an_unreadable_body_in_one_line(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    import sqlite3

    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')
    migrated_then("sqlite")
    _archive_zlib_days(f"sqlite+aiosqlite:///{database}", 200)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE raw_payloads SET body = x'78000000' WHERE score_date = '2026-11-20'")

    result = invoke("--config", str(config), "archive", "compact")

    assert result.exit_code == 3
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: tenant {TENANT}: the archived secureScore of 2026-11-20 cannot be read: neither a zstd frame "
        "nor a zlib stream (Error -3 while decompressing data: incorrect header check)"
    ]


def _compacted_database(tmp_path: Path, migrated_then: Callable[..., str]) -> tuple[Path, Path]:
    """A SQLite database of 200 zstd bodies of TENANT (2026-11-27 back to 2026-05-12), and its configuration."""
    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')
    migrated_then("sqlite")
    _archive_zlib_days(f"sqlite+aiosqlite:///{database}", 200)
    assert invoke("--config", str(config), "archive", "compact").exit_code == 0
    return database, config


def _bodies_size(database: Path, table: str = "raw_payloads") -> str:
    import contextlib
    import sqlite3

    from fetcher.text import human_size

    with contextlib.closing(sqlite3.connect(database)) as db:
        return human_size(db.execute(f"SELECT sum(length(body)) FROM {table}").fetchone()[0])


def test_archive_compact_with_nothing_to_recompress_still_says_the_archives_size(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    database, config = _compacted_database(tmp_path, migrated_then)

    result = invoke("--config", str(config), "archive", "compact")

    assert result.exit_code == 0, result.output
    assert (
        f"200 of 200 bodies read, 0 recompressed (none needed it); the archive's bodies: {_bodies_size(database)}\n"
    ) in result.output


def test_archive_compact_says_the_archives_size_after_recompressing_and_before_a_dictionary(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    database = tmp_path / "scores.db"
    config = write_config(tmp_path, database=f'url = "sqlite+aiosqlite:///{database}"')
    migrated_then("sqlite")
    _archive_zlib_days(f"sqlite+aiosqlite:///{database}", 150)

    archived = _bodies_size(database)
    early = invoke("--config", str(config), "archive", "compact")
    before = _bodies_size(database)
    _archive_zlib_days(f"sqlite+aiosqlite:///{database}", 200)
    trained = invoke("--config", str(config), "archive", "compact")

    assert early.exit_code == trained.exit_code == 0
    # The first line: after the recompression (none here), before the delta pass; the second: the command's
    said = "raw_payloads: 150 object(s), no dictionary yet: one is trained once it holds 200; the archive's bodies"
    assert f"{said}: {archived}\n" in early.output
    assert f"the table's bodies {archived} -> {before} (" in early.output
    # the whole bodies only (the bases, and the 50 days added): the deltas the first made are zstd already
    assert re.search(
        r"200 bodies read, 70 recompressed: \d+ kB -> \d+ kB; the archive's bodies: \d+ kB\n", trained.output
    )
    assert f" -> {_bodies_size(database)} (" in trained.output.splitlines()[1], trained.output
    assert "raw_control_profiles: 0 object(s), no dictionary yet: one is trained once it holds 200\n" in trained.output


def test_archive_compact_with_its_dictionary_gone_says_so_names_the_bodies_and_trains_none(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    import sqlite3

    database, config = _compacted_database(tmp_path, migrated_then)
    with sqlite3.connect(database) as db:
        (dict_id,) = db.execute("SELECT dict_id FROM archive_dictionaries WHERE kind = 'secureScores'").fetchone()
        db.execute("DELETE FROM archive_dictionaries WHERE kind = 'secureScores'")

    result = invoke("--config", str(config), "archive", "compact")

    assert result.exit_code == 3
    assert (
        "raw_payloads: 200 object(s); 200 cannot be read, left as they are: the secureScores dictionary they were "
        f"compressed with (id {dict_id}) is missing from archive_dictionaries (restore its row from a backup)"
    ) in result.output
    assert "no dictionary yet" not in result.output.split("raw_control_profiles")[0]
    assert "Src size" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: tenant {TENANT}: the archived secureScore of 2026-")
    assert errors[0].endswith(
        f"cannot be read: compressed with zstd dictionary {dict_id}, which archive_dictionaries does not hold "
        "(and 199 more)"
    )
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM archive_dictionaries").fetchone() == (0,)


def test_archive_compact_reads_zstd_bodies_too_and_names_a_damaged_one(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    import sqlite3

    database, config = _compacted_database(tmp_path, migrated_then)
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE raw_payloads SET body = substr(body, 1, 20) || x'fffefdfc' || substr(body, 25) "
            "WHERE score_date = '2026-11-20'"
        )

    result = invoke("--config", str(config), "archive", "compact")

    assert result.exit_code == 3
    # 2026-11-20 is the base of the 6 thin days after it (the first compact made them deltas): they go with it
    assert "200 of 200 bodies read, 0 recompressed; 7 cannot be read, left as they are" in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"error: tenant {TENANT}: the archived secureScore of 2026-11-20 cannot be read: a damaged zstd frame"
    )
    assert errors[0].endswith("(and 6 more)")


def test_an_archive_body_stored_as_text_is_read_as_its_bytes(tmp_path: Path, migrated_then: Callable[..., str]) -> None:
    """SQLite's columns are typeless: a body written as TEXT (by another tool) is read as the bytes it holds."""
    import sqlite3

    database, config = _compacted_database(tmp_path, migrated_then)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE raw_payloads SET body = CAST(body AS TEXT) WHERE score_date = '2026-11-20'")
        assert db.execute("SELECT typeof(body) FROM raw_payloads WHERE score_date = '2026-11-20'").fetchone() == (
            "text",
        )

    rebuilt = invoke("--config", str(config), "rebuild")
    compacted = invoke("--config", str(config), "archive", "compact")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert compacted.exit_code == 0, compacted.output
    assert "200 of 200 bodies read, 0 recompressed" in compacted.output


def test_an_archive_body_stored_as_damaged_text_is_named_in_one_line_without_its_bytes(
    tmp_path: Path, migrated_then: Callable[..., str]
) -> None:
    import sqlite3

    database, config = _compacted_database(tmp_path, migrated_then)
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE raw_payloads SET body = CAST(x'28b52ffd63ff9f1139518f8f39' AS TEXT) WHERE score_date = '2026-11-20'"
        )

    rebuilt = invoke("--config", str(config), "rebuild")
    compacted = invoke("--config", str(config), "archive", "compact")

    for result in (rebuilt, compacted):
        assert f"tenant {TENANT}: the archived secureScore of 2026-11-20 (sha256" in result.output or (
            f"tenant {TENANT}: the archived secureScore of 2026-11-20 cannot be read" in result.output
        ), result.output
        assert "Could not decode" not in result.output
        assert all(line.isprintable() for line in result.output.splitlines())
    assert rebuilt.exit_code == 4  # its only tenant failed
    assert compacted.exit_code == 3


@pytest.mark.parametrize(
    ("number", "terminal", "said"),
    [
        (signal.SIGINT, True, "\nSIGINT: finishing the writes in progress; press again to quit at once"),
        (signal.SIGTERM, True, "SIGTERM: finishing the writes in progress; a second signal quits at once"),
        (signal.SIGTERM, False, "SIGTERM: finishing the writes in progress; a second signal quits at once"),
        (signal.SIGINT, False, "SIGINT: finishing the writes in progress; a second signal quits at once"),
    ],
)
def test_only_ctrl_c_at_a_terminal_is_told_to_press_again(number: int, terminal: bool, said: str) -> None:
    """Under systemd a SIGTERM said "press again to quit at once" into the journal."""
    from fetcher.cli.running import stop_notice

    assert stop_notice(number, terminal=terminal) == said


@pytest.fixture
def auto_world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """A partner with two customers, as tests.test_partner's automatic mode has them."""
    tenants = [SimTenant(PARTNER, "Partner", partner=True), SimTenant(CONTOSO, "Contoso"), SimTenant(FABRIKAM, "Fab")]
    with world(tmp_path, database_url, tenants, seed=21, relationships=small_relationships()) as w:
        yield w


# A `fetcher` that sends itself SIGTERM as its partner discovery's request to Graph goes out: the handler runs at
# that request's await, whatever the timing, so the signal lands with the discovery in flight.
SIGNAL_DURING_DISCOVERY = """
import os, signal, sys
import aiohttp
from fetcher.cli import main

asked = aiohttp.ClientSession._request

async def signal_at_discovery(self, method, url, *args, **kwargs):
    if "delegatedAdminRelationships" in str(url):
        os.kill(os.getpid(), signal.SIGTERM)
    return await asked(self, method, url, *args, **kwargs)

aiohttp.ClientSession._request = signal_at_discovery
sys.argv[0] = "fetcher"
main()
"""


@pytest.mark.parametrize("command", ["run", "backfill"])
def test_a_signal_during_partner_discovery_ends_in_the_interrupted_run_and_its_ledger_row(
    auto_world: World, command: str
) -> None:
    """It exited 143 with no output and no ledger row (discovery ran before the signals were wired): now the stop
    notice, the run interrupted with the customers last discovered not started, its row, and 143."""
    automatic(auto_world, refresh_hours=0)
    assert auto_world.fetcher("run").returncode == 0
    argv = [sys.executable, "-c", SIGNAL_DURING_DISCOVERY, "--config", str(auto_world.config), command]

    stopped = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, env=auto_world.env())

    assert stopped.returncode == 143, stopped.stderr
    assert "SIGTERM: finishing the writes in progress; a second signal quits at once" in stopped.stderr
    assert f"{command} interrupted: 0/2 tenants stored" in stopped.stderr
    assert "2 not started" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    runs = sorted(db_rows(auto_world.database_url, fetch_runs), key=lambda r: r["started_at"])
    assert [(r["command"], r["status"], r["tenants_total"]) for r in runs] == [
        ("run", "succeeded", 2),
        (command, "interrupted", 2),
    ]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_quiet_leaves_out_status_and_reports_information_lines_in_both_log_formats(
    tmp_path: Path, log_format: str
) -> None:
    """`-q` left out `status`'s count of short data and `report`'s `wrote ...` under --log-format json (info
    records, below -q's level) but kept them in text; the README says `-q` leaves them out."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}"
    with world(tmp_path, url, [SimTenant(TENANT, "Contoso")], seed=22) as w:
        assert w.fetcher("backfill", "--days", "2").returncode == 0  # 2 days of history_days = 90: short
        said = {
            (quiet, command): w.invoke(*quiet, "--log-format", log_format, command, *more)
            for quiet in ((), ("-q",))
            for command, more in (("status", ()), ("report", ("--output", str(tmp_path / "r.txt"))))
        }

    def lines(stderr: str) -> list[str]:
        if log_format == "json":
            return [str(json.loads(line)["message"]) for line in stderr.splitlines()]
        return stderr.splitlines()

    short = (
        "1 enabled tenant(s) hold fewer days than [fetch] history_days = 90: `fetcher backfill --tenant ID` fetches "
        "what Graph still has"
    )
    assert {key: (done.returncode, lines(done.stderr)) for key, done in said.items()} == {
        ((), "status"): (0, [short]),
        ((), "report"): (0, [f"wrote the portfolio (1 tenants, table) to {tmp_path / 'r.txt'}"]),
        (("-q",), "status"): (0, []),
        (("-q",), "report"): (0, []),
    }
