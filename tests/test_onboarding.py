"""`fetcher config init` and `fetcher config check` (summary, --verbose, --online)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fetcher.cli import main
from fetcher.config import Purpose, load_config
from fetcher.onboarding import example_text, starting_config
from fetcher.simulator import SimTenant, generate_tenants
from fetcher.simulator.consent import consent_tenants
from fetcher.simulator.faults import Fault
from fetcher.simulator.partner import SimRelationship
from fetcher.store.schema import secure_scores
from tests.conftest import POSTGRES_ENV, SKIP_POSTGRES, create_postgres_database, drop_postgres_database
from tests.e2e import toml_table, world
from tests.test_runner import db_count

ROOT = Path(__file__).resolve().parent.parent
SECRET = "onboarding-secret-4d3c2b1a"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=False)


def test_the_packaged_example_is_the_repository_s_example() -> None:
    assert example_text() == (ROOT / "config.example.toml").read_text(encoding="utf-8")


def test_a_built_wheel_carries_the_example_and_every_package(tmp_path: Path) -> None:
    """`config init` works from an installed wheel, not only from a checkout, and so does every command: each
    package of the source tree (pyproject lists them by hand) is in the wheel."""
    setuptools = pytest.importorskip("setuptools", reason="the test extras (pip install -e '.[test]') build wheels")
    pytest.importorskip("wheel", reason="the test extras (pip install -e '.[test]') build wheels")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("setuptools older than the test extras ask for: pip install -e '.[test]' again")
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md", "config.example.toml"):
        shutil.copy(ROOT / name, source / name if source.exists() else _mkdir(source) / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "fetcher", source / "fetcher", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "migrations", source / "migrations", ignore=ignore)

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("fetcher/config.example.toml").decode("utf-8")
        shipped = set(archive.namelist())
    assert packaged == (ROOT / "config.example.toml").read_text(encoding="utf-8")
    packages = {path.relative_to(ROOT).as_posix() for path in (ROOT / "fetcher").rglob("__init__.py")}
    assert sorted(packages - shipped) == []
    # `fetcher migrate` is the route from an install (README: Development): every migration ships with it.
    migrations = {f"fetcher/{path.relative_to(ROOT).as_posix()}" for path in (ROOT / "migrations").rglob("*.py")}
    assert sorted((migrations | {"fetcher/migrations/script.py.mako"}) - shipped) == []
    assert "alembic.ini" not in {Path(name).name for name in shipped}  # a checkout's: the README says so


def test_the_readme_says_the_alembic_command_runs_from_a_checkout() -> None:
    """alembic.ini is at the top of the repository, not in the wheel: wherever the README names the `alembic`
    command, it says it needs a checkout (an install migrates with `fetcher migrate`)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.split(r"\n\s*\n|\n(?=\s*- )", text)  # paragraphs, and each item of a list

    naming = [block for block in blocks if re.search(r"(^|`)alembic (upgrade|revision|downgrade)", block, re.M)]

    assert naming
    assert [block for block in naming if "checkout" not in block] == []
    assert "fetcher migrate" in next(block for block in blocks if "alembic.ini" in block)


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_the_starting_configuration_keeps_every_key_but_comments_out_alerts() -> None:
    example = tomllib.loads(example_text())
    start = tomllib.loads(starting_config(example_text()))

    assert "alerts" in example
    assert start == {key: value for key, value in example.items() if key != "alerts"}
    assert "# [[alerts.rules]]" in starting_config(example_text())


def test_config_init_writes_a_file_that_loads_once_the_secret_is_set(tmp_path: Path) -> None:
    target = tmp_path / "fetcher.toml"

    result = invoke("config", "init", str(target))

    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "[auth] client_id" in result.output
    assert "[partner] (a GDAP or CSP partner): uncomment it; tenant_id is your own tenant's id" in result.output
    assert 'tenants_file = "tenants.csv"' in result.output  # as README step 2 says
    assert f"fetcher --config {target} config check --online" in result.output
    config = load_config(target, {"FETCHER_CLIENT_SECRET": SECRET}, purpose=Purpose.FETCH)
    assert (len(config.tenants), config.alerts.rules) == (1, ())


def test_config_check_of_a_fresh_config_init_file_names_each_placeholder_left(tmp_path: Path) -> None:
    """It said OK for the example's client_id 0000... and tenant 1111..., which Entra ID then refuses."""
    target = tmp_path / "fetcher.toml"
    assert invoke("config", "init", str(target)).exit_code == 0

    result = invoke("--config", str(target), "config", "check", env={"FETCHER_CLIENT_SECRET": SECRET})

    assert result.exit_code == 0, result.output
    lines = [line.partition(" WARNING fetcher.cli: ") for line in result.output.splitlines()]
    assert [warning or line for line, _, warning in lines if "placeholder" in line + warning] == [
        f"{target}: [auth] client_id 00000000-0000-0000-0000-000000000000 is a placeholder from the example "
        "(`config init`): put your app registration's Application (client) ID",
        f"{target}: tenant_id 11111111-1111-1111-1111-111111111111 ('Contoso') is a placeholder from the example "
        "(`config init`): put a customer's tenant id, or remove it",
        f"{target}: valid, but the example's placeholders are still in it (above)",
    ]


def test_config_init_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "fetcher.toml"
    target.write_text("# mine\n", encoding="utf-8")

    result = invoke("--config", str(target), "config", "init")

    assert result.exit_code == 2
    assert result.output.strip() == f"error: {target} exists; not overwritten (remove it, or give another PATH)"
    assert target.read_text(encoding="utf-8") == "# mine\n"


def write_config(folder: Path) -> Path:
    path = folder / "fetcher.toml"
    path.write_text(
        '[database]\nurl = "sqlite+aiosqlite:///scores.db"\n'
        '[auth]\nclient_id = "00000000-0000-0000-0000-0000000000aa"\nclient_secret = "env:SECRET"\n'
        '[[tenants]]\ntenant_id = "0b7c1e2a-1111-4222-8333-444455556666"\nname = "Contoso"\n'
        '[[tenants]]\ntenant_id = "7e4f0c2b-2222-4333-8444-555566667777"\nname = "Fabrikam"\nenabled = false\n'
        '[tenants.auth]\nclient_secret = "env:FABRIKAM"\n',
        encoding="utf-8",
    )
    return path


def test_config_check_summarises_without_secret_values(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {"SECRET": SECRET, "FABRIKAM": SECRET + "-f"}

    short = invoke("--config", str(config), "config", "check", env=env)
    verbose = invoke("--config", str(config), "config", "check", "--verbose", env=env)

    assert (short.exit_code, verbose.exit_code) == (0, 0)
    assert short.output.splitlines() == [
        f"{config}: OK",
        "  tenants:  2 configured, 1 enabled",
        f"  database: sqlite+aiosqlite:///{tmp_path / 'scores.db'}",
        "  graph:    https://graph.microsoft.com/v1.0 (cloud global); Entra ID https://login.microsoftonline.com",
        "  auth:     client_secret, client_id 00000000-0000-0000-0000-0000000000aa, client_secret env:SECRET (set); "
        "1 tenant(s) with their own [tenants.auth]",
    ]
    assert verbose.output.splitlines()[-1] == (
        "  tenant 7e4f0c2b-2222-4333-8444-555566667777 'Fabrikam' (disabled): client_secret, client_id "
        "00000000-0000-0000-0000-0000000000aa, client_secret env:FABRIKAM (set)"
    )
    assert SECRET not in short.output + verbose.output


@pytest.mark.parametrize("online", [False, True])
def test_config_check_says_the_database_folder_is_missing_and_creates_nothing(tmp_path: Path, online: bool) -> None:
    """--online said "cannot create database" though it never creates one; offline it said nothing at all."""
    config = write_config(tmp_path)
    database = tmp_path / "nodir" / "x.db"
    config.write_text(config.read_text(encoding="utf-8").replace("///scores.db", f"///{database}"), encoding="utf-8")
    line = f"the database's folder {database.parent} does not exist: check [database] url, or create the folder"
    env = {"SECRET": SECRET, "FABRIKAM": SECRET}

    result = invoke("--config", str(config), "config", "check", *(["--online"] if online else []), env=env)

    if online:
        assert (result.exit_code, result.output.splitlines()[-1]) == (3, f"error: {line}")
    else:
        warnings = [text.partition(" WARNING fetcher.cli: ")[2] for text in result.output.splitlines()]
        assert result.exit_code == 0
        assert [w for w in warnings if w] == [f"{config}: {line}"]
        assert f"{config}: valid, but the database's folder is missing (above)" in result.output.splitlines()
    assert not database.parent.exists()


def test_config_check_says_partner_mode_tenants_are_discovered(tmp_path: Path) -> None:
    """With tenants_source = "partner" the configured tenants only name or disable discovered ones: the
    summary says where the tenants come from, not "2 configured, 1 enabled" (a tester read 0 configured)."""
    config = write_config(tmp_path)
    partner = '[partner]\ntenant_id = "5a5a5a5a-1234-4234-8234-123412341234"\n'
    config.write_text(f'tenants_source = "partner"\n{config.read_text()}{partner}', encoding="utf-8")

    result = invoke("--config", str(config), "config", "check", env={"SECRET": SECRET, "FABRIKAM": SECRET})

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == (
        '  tenants:  discovered at the partner\'s (tenants_source = "partner"); 2 configured here to name or '
        "disable some; `--online` or `fetcher tenants discover` lists them"
    )


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("env:PROXY", "  secret:   [graph] proxy env:PROXY (set)"),
        (f"http://user:{SECRET}@proxy.example:3128", "  secret:   [graph] proxy literal value (set)"),
    ],
    ids=["env", "literal"],
)
def test_config_check_names_the_proxy_secret_without_its_password(tmp_path: Path, value: str, line: str) -> None:
    """Where the proxy's URL comes from, as `[auth]`'s secrets say it: a reference, or `literal value`."""
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f'[graph]\nproxy = "{value}"\n', encoding="utf-8")
    env = {"SECRET": SECRET, "FABRIKAM": SECRET, "PROXY": f"http://user:{SECRET}@proxy.example:3128"}

    result = invoke("--config", str(config), "config", "check", env=env)

    assert result.exit_code == 0, result.output
    assert line in result.output.splitlines()
    assert "proxy http://user:***@proxy.example:3128" in result.output
    assert SECRET not in result.output


def test_config_check_online_passes_only_when_the_database_and_every_tenant_do(tmp_path: Path) -> None:
    cast = consent_tenants()
    chosen = [cast["ok"].tenant_id, cast["no consent"].tenant_id]
    with world(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", list(cast.values())) as w:
        w.write_config(tenants=chosen)
        no_database = w.fetcher("config", "check", "--online")
        assert w.fetcher("migrate").returncode == 0
        one_failing = w.fetcher("config", "check", "--online")
        w.write_config(tenants=chosen[:1])
        passing = w.fetcher("config", "check", "--online", "--verbose")
        consent = f"{w.running.authority_host}/{chosen[1]}/adminconsent?client_id={w.sim.client_id}"

    assert (no_database.returncode, one_failing.returncode, passing.returncode) == (1, 1, 0), passing.stderr
    # before the first run: the database is not an error (the run creates it), the tenants are still checked
    assert f"database: not created yet at {tmp_path / 'scores.db'}" in no_database.stdout
    assert "online: database not created yet, 1 of 2 tenant(s) ok" in no_database.stderr
    header, rest = one_failing.stdout.split("\n", 1)
    assert header == f"{w.config}: valid; the online checks follow"  # not "OK" above a failure
    failures = rest.splitlines()[4:]
    assert len(failures) == 1
    assert failures[0].startswith(f"no consent{' ' * 22}{chosen[1]}")
    assert failures[0].endswith(consent)
    assert "online: database ok, 1 of 2 tenant(s) ok" in one_failing.stderr
    assert f"ok{' ' * 30}{chosen[0]}" in passing.stdout
    assert "database: ok, schema at revision" in passing.stdout
    assert w.sim.client_secret not in passing.stdout + passing.stderr + one_failing.stdout + one_failing.stderr


# ------------------------------------------------------------------------ the README's onboarding path

PARTNER = "aaaaaaaa-0000-4000-8000-00000000000a"


def test_the_onboarding_path_works_as_the_readme_says(tmp_path: Path) -> None:
    """discover, check (it prints the consent link), the admin opens it, check again, backfill."""
    ready, unconsented, fresh = generate_tenants(3, seed=61)
    unconsented = dataclasses.replace(unconsented, app_installed=False)
    fresh = dataclasses.replace(fresh, empty=True)
    customers = [ready, unconsented, fresh]
    links = [SimRelationship(f"r{i}", f"GDAP {t.name}", "active", t.tenant_id, t.name) for i, t in enumerate(customers)]
    tenants = [SimTenant(PARTNER, "Partner", partner=True), *customers]
    database = f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}"
    with world(tmp_path, database, tenants, seed=61, relationships=links) as w:
        w.write_config(tenants=[])
        partner = "\n".join(toml_table("partner", {"tenant_id": PARTNER, "source": "gdap"}))
        w.config.write_text(f'tenants_file = "tenants.csv"\n{w.config.read_text()}\n{partner}\n', encoding="utf-8")

        discovered = w.fetcher("tenants", "discover", "--write", str(tmp_path / "tenants.csv"))
        first = w.fetcher("tenants", "check")
        lines = {line[32:68]: line for line in first.stdout.splitlines()}
        link = lines[unconsented.tenant_id].rsplit(" ", 1)[-1]
        context = ssl.create_default_context(cafile=str(w.running.ca_file))
        with urllib.request.urlopen(link, context=context, timeout=30) as answer:  # the admin opens the link
            consented = answer.status
        second = w.fetcher("tenants", "check")
        backfill = w.fetcher("backfill")

    assert discovered.returncode == 0, discovered.stderr
    assert first.returncode == 1, first.stderr
    states = [lines[t.tenant_id][:30].rstrip() for t in customers]
    assert states == ["ok", "no consent", "no data yet"]
    assert link == f"{w.running.authority_host}/{unconsented.tenant_id}/adminconsent?client_id={w.sim.client_id}"
    assert consented == 200
    assert second.returncode == 1  # a tenant with no data yet is not ok, though nothing is wrong with it
    again = {line[32:68]: line[:30].rstrip() for line in second.stdout.splitlines()}
    assert [again[t.tenant_id] for t in customers] == ["ok", "ok", "no data yet"]
    assert backfill.returncode == 0, backfill.stderr
    stored = [db_count(database, secure_scores, tenant_id=t.tenant_id) for t in customers]
    assert stored == [90, 90, 0]


def test_config_check_online_checks_the_discovered_customers_in_automatic_mode(tmp_path: Path) -> None:
    """With tenants_source = "partner", the tenants checked are the partner's customers."""
    ready, unconsented = generate_tenants(2, seed=62)
    unconsented = dataclasses.replace(unconsented, app_installed=False)
    customers = (ready, unconsented)
    links = [SimRelationship(f"r{i}", t.name, "active", t.tenant_id, t.name) for i, t in enumerate(customers)]
    tenants = [SimTenant(PARTNER, "Partner", partner=True), ready, unconsented]
    with world(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", tenants, seed=62, relationships=links) as w:
        w.write_config(tenants=[])
        partner = "\n".join(toml_table("partner", {"tenant_id": PARTNER}))
        w.config.write_text(f'tenants_source = "partner"\n{w.config.read_text()}\n{partner}\n', encoding="utf-8")
        fresh = w.fetcher("config", "check", "--online", "--verbose")  # before the first run: no database yet
        created = (tmp_path / "scores.db").exists()
        assert w.fetcher("migrate").returncode == 0
        done = w.fetcher("config", "check", "--online", "--verbose")

    for result in (fresh, done):
        assert result.returncode == 1, result.stderr
        lines = result.stdout.splitlines()
        states = {line[32:68]: line[:30].rstrip() for line in lines if line[32:68] in links_ids(links)}
        assert states == {ready.tenant_id: "ok", unconsented.tenant_id: "no consent"}
    assert not created  # the check discovered the customers without creating the database
    assert "online: database not created yet, 1 of 2 tenant(s) ok" in fresh.stderr
    assert "online: database ok, 1 of 2 tenant(s) ok" in done.stderr


def test_config_check_online_exits_4_when_discovery_fails_as_run_does(tmp_path: Path) -> None:
    """Entra ID or Graph was asked and gave no customer list: 4 as `run`, `backfill`, `tenants check` (it was 1),
    before the first run and after."""
    tenants = [SimTenant(PARTNER, "Partner", partner=True)]
    with world(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}", tenants, seed=63, relationships=[]) as w:
        w.write_config(tenants=[])
        partner = "\n".join(toml_table("partner", {"tenant_id": PARTNER}))
        w.config.write_text(f'tenants_source = "partner"\n{w.config.read_text()}\n{partner}\n', encoding="utf-8")
        fresh = w.fetcher("config", "check", "--online")
        assert w.fetcher("migrate").returncode == 0
        w.sim.add_fault(PARTNER, Fault.status(503, endpoint="partner"))
        done = w.fetcher("config", "check", "--online")

    assert (fresh.returncode, done.returncode) == (4, 4), fresh.stderr + done.stderr
    assert "discovery: tenant discovery at partner tenant" in fresh.stdout
    assert "found no active customer" in fresh.stdout
    assert "Graph failed (503" in done.stdout


def links_ids(links: list[SimRelationship]) -> set[str]:
    return {link.customer_id for link in links}


@pytest.mark.postgres
def test_config_check_online_says_a_postgres_database_needs_migrating(tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(SKIP_POSTGRES)
    url = create_postgres_database("fetcher_check")
    try:
        with world(tmp_path, url, generate_tenants(1, seed=63), seed=63) as w:
            before = w.fetcher("config", "check", "--online")
            assert w.fetcher("migrate").returncode == 0
            after = w.fetcher("config", "check", "--online")
    finally:
        drop_postgres_database(url)

    assert before.returncode == 1
    assert before.stdout.splitlines()[-1].startswith("database: database postgresql+asyncpg://")
    assert before.stdout.splitlines()[-1].endswith("has no fetcher schema: run `fetcher migrate`")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "online: database ok, 1 of 1 tenant(s) ok" in after.stderr


def test_config_check_json_lists_the_warnings_it_says(tmp_path: Path) -> None:
    """`--format json` said `"warnings": []` while stderr warned of the database's missing folder."""
    config = write_config(tmp_path)
    database = tmp_path / "nodir" / "x.db"
    config.write_text(config.read_text(encoding="utf-8").replace("///scores.db", f"///{database}"), encoding="utf-8")
    line = f"the database's folder {database.parent} does not exist: check [database] url, or create the folder"

    env = {"SECRET": SECRET, "FABRIKAM": SECRET}
    result = invoke("--config", str(config), "config", "check", "--format", "json", env=env)

    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert line in document["warnings"]
