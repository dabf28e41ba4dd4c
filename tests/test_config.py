"""Configuration: loading, validation, secret references, paths, and the example file staying true."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from fetcher.cli import main
from fetcher.config import (
    CERTIFICATE_MAX_BYTES,
    DEFAULT_PUBLIC_CLIENT_ID,
    SECRET_MAX_BYTES,
    TOP_KEYS,
    AlertChannel,
    AlertRule,
    AlertsConfig,
    AuthConfig,
    ChannelType,
    Config,
    DatabaseConfig,
    FetchConfig,
    GraphConfig,
    Purpose,
    RuleKind,
    Secret,
    TenantConfig,
    find_config_file,
    load_config,
    read_tenant_rows,
    redacted,
)
from fetcher.discovery import TenantRow, render_tenants_file
from fetcher.errors import ConfigError

CLIENT_ID = "00000000-0000-0000-0000-000000000000"
TENANT_A = "11111111-1111-1111-1111-111111111111"
TENANT_B = "22222222-2222-2222-2222-222222222222"
TENANT_C = "33333333-3333-3333-3333-333333333333"
SECRET = "Zq8~s3cr3t-Value-never-shown"
ENV = {"FETCHER_CLIENT_SECRET": SECRET}
AUTH = f'client_id = "{CLIENT_ID}"\nclient_secret = "env:FETCHER_CLIENT_SECRET"\n'
EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
GLOBAL = GraphConfig(
    cloud="global",
    base_url="https://graph.microsoft.com/v1.0",
    authority_host="https://login.microsoftonline.com",
    scope="https://graph.microsoft.com/.default",
    ca_bundle=None,
    timeout_seconds=60.0,
    max_response_bytes=64 * 1024 * 1024,
)


def tenant(tenant_id: str = TENANT_A, name: str = "Contoso", *, body: str = "", auth: str = "") -> str:
    """One `[[tenants]]` block, with `body` lines and, if given, a `[tenants.auth]` table."""
    text = f'[[tenants]]\ntenant_id = "{tenant_id}"\nname = "{name}"\n{body}\n'
    return text + (f"[tenants.auth]\n{auth}\n" if auth else "")


def config_text(
    *, top: str = "", database: str = "", graph: str = "", fetch: str = "", auth: str = AUTH, tenants: str | None = None
) -> str:
    """A configuration file: top-level keys, then each non-empty section, then the tenants."""
    parts = [top]
    for name, body in (("database", database), ("graph", graph), ("fetch", fetch), ("auth", auth)):
        if body:
            parts.append(f"[{name}]\n{body}")
    parts.append(tenant() if tenants is None else tenants)
    return "\n".join(parts) + "\n"


def write(folder: Path, text: str, name: str = "fetcher.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(folder: Path, environ: dict[str, str] | None = None, /, **sections: str) -> Config:
    return load_config(write(folder, config_text(**sections)), ENV if environ is None else environ)


def one_line(error: ConfigError, file: Path) -> str:
    """The error's message, checked to be one line naming `file`, with exit code 2 and no secret."""
    message = str(error)
    assert error.exit_code == 2
    assert "\n" not in message
    assert str(file) in message
    assert SECRET not in message
    assert SECRET not in repr(error)
    return message


def refused(folder: Path, environ: dict[str, str] | None = None, /, **sections: str) -> str:
    """The message of the ConfigError that loading these sections raises."""
    path = write(folder, config_text(**sections))
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV if environ is None else environ)
    return one_line(caught.value, path)


# ------------------------------------------------------------------------------------------ the file


def test_missing_file_is_refused_saying_how_to_give_one(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)

    assert "--config" in one_line(caught.value, path)


def test_folder_instead_of_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_config(tmp_path, ENV)

    one_line(caught.value, tmp_path)


def test_invalid_toml_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[fetch]\nconcurrency = 4\n[auth\nclient_id = "x"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)

    assert re.search(r"not valid TOML: .*line 3", one_line(caught.value, path))


def test_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """A file saved as Windows-1252 (a tenant named Société) is a config error, not a traceback."""
    path = tmp_path / "fetcher.toml"
    path.write_bytes(config_text(tenants=tenant(name="Société")).encode("cp1252"))

    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)

    one_line(caught.value, path)


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("given.toml", {"FETCHER_CONFIG": "from-env.toml"}, Path("given.toml")),
        (None, {"FETCHER_CONFIG": "from-env.toml"}, Path("from-env.toml")),
        (None, {"FETCHER_CONFIG": ""}, Path("fetcher.toml")),
        (None, {}, Path("fetcher.toml")),
    ],
    ids=["--config", "FETCHER_CONFIG", "empty FETCHER_CONFIG", "default"],
)
def test_config_file_is_found_by_option_then_environment_then_default(
    explicit: str | None, environ: dict[str, str], expected: Path
) -> None:
    assert find_config_file(explicit, environ) == expected


# -------------------------------------------------------------------------------- keys and types


@pytest.mark.parametrize(
    ("sections", "key", "closest", "where"),
    [
        ({"top": 'tenant_file = "t.csv"'}, "tenant_file", "tenants_file", ""),
        ({"database": 'urll = "sqlite+aiosqlite:///x.db"'}, "urll", "url", "[database]"),
        ({"graph": "timeout = 30"}, "timeout", "timeout_seconds", "[graph]"),
        ({"fetch": "concurency = 4"}, "concurency", "concurrency", "[fetch]"),
        ({"auth": AUTH + 'client_secert = "env:X"'}, "client_secert", "client_secret", "[auth]"),
        ({"tenants": tenant(body='tenantid = "x"')}, "tenantid", "tenant_id", f"tenant {TENANT_A} (Contoso):"),
        (
            {"tenants": tenant(auth='methods = "certificate"')},
            "methods",
            "method",
            f"tenant {TENANT_A} (Contoso): [tenants.auth]",
        ),
    ],
    ids=["top", "database", "graph", "fetch", "auth", "tenants", "tenants.auth"],
)
def test_unknown_key_is_refused_naming_it_and_the_closest_valid_key(
    tmp_path: Path, sections: dict[str, str], key: str, closest: str, where: str
) -> None:
    message = refused(tmp_path, **sections)

    assert f"{where} unknown key {key!r} (did you mean {closest!r}?)".strip() in message


def test_unknown_key_unlike_any_valid_key_lists_the_valid_keys(tmp_path: Path) -> None:
    message = refused(tmp_path, fetch="zzz = 1")

    assert "[fetch] unknown key 'zzz' (valid keys: concurrency, per_tenant_concurrency," in message


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"fetch": 'concurrency = "16"'}, "[fetch] concurrency must be an integer, got '16'"),
        ({"fetch": "history_days = true"}, "[fetch] history_days must be an integer, got True"),
        ({"fetch": "max_attempts = 2.5"}, "[fetch] max_attempts must be an integer, got 2.5"),
        ({"fetch": 'max_retry_wait_seconds = "5m"'}, "[fetch] max_retry_wait_seconds must be a number, got '5m'"),
        ({"database": "keep_raw = 1"}, "[database] keep_raw must be true or false, got 1"),
        ({"database": 'keep_raw = "yes"'}, "[database] keep_raw must be true or false, got 'yes'"),
        ({"database": "busy_timeout_seconds = false"}, "[database] busy_timeout_seconds must be a number, got False"),
        ({"graph": 'timeout_seconds = "60"'}, "[graph] timeout_seconds must be a number, got '60'"),
        ({"graph": "max_response_bytes = 1.5"}, "[graph] max_response_bytes must be an integer, got 1.5"),
        ({"graph": "cloud = 1"}, "[graph] cloud must be a string, got 1"),
        ({"top": "tenants_file = 3"}, "tenants_file must be a string"),
        ({"top": 'graph = "global"'}, "[graph] must be a table, got str"),
        ({"top": 'tenants = ["x"]', "tenants": ""}, "tenants must be an array of tables"),
        ({"tenants": tenant(body='enabled = "no"')}, f"tenant {TENANT_A} (Contoso): enabled must be true or false"),
        ({"tenants": tenant(body="enabled = 0")}, f"tenant {TENANT_A} (Contoso): enabled must be true or false"),
        ({"tenants": tenant(body="auth = 1")}, f"tenant {TENANT_A} (Contoso): auth must be a table, got int"),
        (
            {"tenants": tenant(auth="method = 1")},
            f"tenant {TENANT_A} (Contoso): [tenants.auth] method must be a string",
        ),
        ({"auth": "client_id = 42"}, "[auth] client_id must be a string, got 42"),
    ],
)
def test_value_of_the_wrong_type_is_refused_naming_the_key(
    tmp_path: Path, sections: dict[str, str], expected: str
) -> None:
    assert expected in refused(tmp_path, **sections)


def test_tenant_name_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    text = f'[[tenants]]\ntenant_id = "{TENANT_A}"\nname = 5\n'

    assert f"tenant {TENANT_A}: name must be a string" in refused(tmp_path, tenants=text)


def test_integers_are_accepted_for_number_keys(tmp_path: Path) -> None:
    config = load(
        tmp_path, graph="timeout_seconds = 30", fetch="max_retry_wait_seconds = 10", database="busy_timeout_seconds = 5"
    )

    assert (config.graph.timeout_seconds, config.fetch.max_retry_wait_seconds) == (30.0, 10.0)
    assert type(config.database.busy_timeout_seconds) is float


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"fetch": "concurrency = 0"}, "[fetch] concurrency must be between 1 and 256"),
        (
            {"fetch": "concurrency = 257"},
            "[fetch] concurrency must be between 1 and 256 (about 27 MB of memory each on a first night; "
            "for more, split the tenants into shards), got 257",
        ),
        (
            {"fetch": "concurrency = 99999999999999999999"},
            "[fetch] concurrency must be between 1 and 256 (about 27 MB of memory each on a first night; "
            "for more, split the tenants into shards), got 99999999999999999999",
        ),
        (
            {"fetch": "per_tenant_concurrency = 5"},
            "[fetch] per_tenant_concurrency must be between 1 and 4 "
            "(Graph allows 4 concurrent secureScore requests per app per "
            "tenant), got 5",
        ),
        ({"fetch": "per_tenant_concurrency = 0"}, "[fetch] per_tenant_concurrency must be between 1 and 4"),
        (
            {"fetch": "per_tenant_rate = 151"},
            "[fetch] per_tenant_rate must be between 1 and 150 requests a minute (Graph's per-tenant limit), got 151",
        ),
        ({"fetch": "history_days = 91"}, "[fetch] history_days must be between 1 and 90 (Graph keeps 90 days), got 91"),
        ({"fetch": "history_days = 0"}, "[fetch] history_days must be between 1 and 90"),
        ({"fetch": "max_attempts = 0"}, "[fetch] max_attempts must be at least 1, got 0"),
        ({"fetch": "max_retry_wait_seconds = -1"}, "[fetch] max_retry_wait_seconds must not be negative"),
        ({"graph": "timeout_seconds = 0"}, "[graph] timeout_seconds must be positive, got 0"),
        ({"graph": "timeout_seconds = -5.5"}, "[graph] timeout_seconds must be positive, got -5.5"),
        ({"graph": "max_response_bytes = 0"}, "[graph] max_response_bytes must be at least 1, got 0"),
        ({"database": "busy_timeout_seconds = -1"}, "[database] busy_timeout_seconds must not be negative"),
    ],
)
def test_value_out_of_range_is_refused_with_the_bounds(tmp_path: Path, sections: dict[str, str], expected: str) -> None:
    assert expected in refused(tmp_path, **sections)


def test_values_at_graphs_limits_are_accepted(tmp_path: Path) -> None:
    fetch = (
        "concurrency = 1\nper_tenant_concurrency = 4\nper_tenant_rate = 150\nhistory_days = 90\n"
        "max_attempts = 1\nmax_retry_wait_seconds = 0\n"
    )

    assert load(tmp_path, fetch=fetch).fetch == FetchConfig(1, 4, 150, 90, 1, 0.0)


def test_the_largest_concurrency_is_accepted(tmp_path: Path) -> None:
    assert load(tmp_path, fetch="concurrency = 256").fetch.concurrency == 256


@pytest.mark.parametrize(
    "sections",
    [
        {"graph": "timeout_seconds = nan"},
        {"fetch": "max_retry_wait_seconds = nan"},
        {"database": "busy_timeout_seconds = nan"},
    ],
)
def test_nan_is_refused_for_number_keys(tmp_path: Path, sections: dict[str, str]) -> None:
    assert "nan" in refused(tmp_path, **sections)


# -------------------------------------------------------------------------------------------- graph


def test_graph_defaults_to_the_global_cloud(tmp_path: Path) -> None:
    assert load(tmp_path).graph == GLOBAL


@pytest.mark.parametrize(
    ("cloud", "graph", "login"),
    [
        ("usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"),
        ("dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
    ],
)
def test_national_cloud_sets_graph_authority_and_scope(tmp_path: Path, cloud: str, graph: str, login: str) -> None:
    config = load(tmp_path, graph=f'cloud = "{cloud}"')

    assert config.graph == dataclasses.replace(
        GLOBAL, cloud=cloud, base_url=f"{graph}/v1.0", authority_host=login, scope=f"{graph}/.default"
    )


def test_unknown_cloud_is_refused_listing_the_clouds(tmp_path: Path) -> None:
    message = refused(tmp_path, graph='cloud = "gcchigh"')

    assert "[graph] cloud must be one of global, usgov, dod, china, got 'gcchigh'" in message


def test_china_cloud_is_refused_because_21vianet_has_no_secure_scores(tmp_path: Path) -> None:
    message = refused(tmp_path, graph='cloud = "china"')

    assert "21Vianet" in message
    assert "secureScores" in message


def test_base_url_override_loses_its_trailing_slash_and_sets_the_scope(tmp_path: Path) -> None:
    config = load(tmp_path, graph='base_url = "https://graph.example.test:8443/v1.0/"')

    assert (config.graph.base_url, config.graph.scope) == (
        "https://graph.example.test:8443/v1.0",
        "https://graph.example.test:8443/.default",
    )


def test_explicit_scope_is_kept(tmp_path: Path) -> None:
    config = load(tmp_path, graph='scope = "api://fetcher/.default"')

    assert config.graph == dataclasses.replace(GLOBAL, scope="api://fetcher/.default")


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("base_url", "http://graph.microsoft.com/v1.0"),
        ("base_url", "graph.microsoft.com/v1.0"),
        ("base_url", ""),
        ("authority_host", "http://login.microsoftonline.com"),
        ("authority_host", "https:///nohost"),
    ],
)
def test_url_that_is_not_https_is_refused(tmp_path: Path, key: str, url: str) -> None:
    assert f"[graph] {key} must be an https:// URL" in refused(tmp_path, graph=f'{key} = "{url}"')


@pytest.mark.parametrize(
    ("key", "url", "said"),
    [
        ("authority_host", "https://", "got 'https://', which has no host"),
        ("base_url", "https:///v1.0/", "got 'https:///v1.0/', which has no host"),
        ("authority_host", "http://login.example/", "got 'http://login.example/'"),
    ],
)
def test_a_refused_url_is_quoted_as_the_file_writes_it(tmp_path: Path, key: str, url: str, said: str) -> None:
    """`https://` was quoted as `'https:'` (its trailing slashes stripped first), a value not in the file."""
    assert refused(tmp_path, graph=f'{key} = "{url}"').endswith(f"[graph] {key} must be an https:// URL, {said}")


@pytest.mark.parametrize(
    ("key", "url", "problem"),
    [
        ("base_url", "https://graph micro soft/v1.0", "has a host with a character no host name may hold"),
        ("base_url", "https://graph.microsoft.com:0/v1.0", "has an invalid port"),
        ("authority_host", "https://[::1", "has a malformed IPv6 address"),
        ("scope", "https://graph micro soft/.default", "has a host with a character no host name may hold"),
    ],
)
def test_graph_url_a_browser_would_not_parse_is_refused_naming_the_key(
    tmp_path: Path, key: str, url: str, problem: str
) -> None:
    """Parsed as webhook URLs are, so a space in the host is not met later as an Entra ID scope error."""
    assert f"[graph] {key} {problem}" in refused(tmp_path, graph=f'{key} = "{url}"')


@pytest.mark.parametrize("key", ["base_url", "authority_host"])
def test_graph_url_with_a_password_is_refused_without_showing_it(tmp_path: Path, key: str) -> None:
    """`https://user:pw@graph.microsoft.com/v1.0` was accepted and `config check` printed the password."""
    message = refused(tmp_path, graph=f'{key} = "https://user:hunter2@graph.microsoft.com/v1.0"')

    assert f"[graph] {key} holds a user name or password before its host" in message
    assert "hunter2" not in message


def test_proxy_with_a_port_out_of_range_is_refused(tmp_path: Path) -> None:
    assert "[graph] proxy must be an http:// or https:// URL" in refused(
        tmp_path, graph='proxy = "http://proxy.example:99999"'
    )


def test_missing_ca_bundle_is_refused_naming_the_resolved_path(tmp_path: Path) -> None:
    message = refused(tmp_path, graph='ca_bundle = "corp-ca.pem"')

    assert f"[graph] ca_bundle: cannot read {tmp_path / 'corp-ca.pem'}: No such file or directory" in message


# --------------------------------------------------------------------------------- relative paths


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The config folder `conf/`, while the current directory is another folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path / "conf"


def test_ca_bundle_resolves_against_the_config_folder(elsewhere: Path) -> None:
    write(elsewhere, "-----BEGIN CERTIFICATE-----\n", "corp-ca.pem")

    assert load(elsewhere, graph='ca_bundle = "corp-ca.pem"').graph.ca_bundle == elsewhere / "corp-ca.pem"


@pytest.mark.parametrize(
    ("url", "database"),
    [
        (None, "securescores.db"),
        ("sqlite+aiosqlite:///data/scores.db", "data/scores.db"),
        ("sqlite:///scores.db", "scores.db"),
    ],
)
def test_relative_sqlite_path_resolves_against_the_config_folder(
    elsewhere: Path, url: str | None, database: str
) -> None:
    config = load(elsewhere, database=f'url = "{url}"' if url else "")

    assert config.database.url == f"sqlite+aiosqlite:///{elsewhere / database}"


def test_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'abs' / 'scores.db'}"

    assert load(tmp_path / "conf", database=f'url = "{url}"').database.url == url


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite://"])
def test_in_memory_sqlite_is_left_alone(tmp_path: Path, url: str) -> None:
    """No path is made of `:memory:` (SQLAlchemy may write it percent-escaped, which means the same)."""
    loaded = make_url(load(tmp_path, database=f'url = "{url}"').database.url)

    assert (loaded.drivername, loaded.database) == ("sqlite+aiosqlite", make_url(url).database)


def test_tenants_file_resolves_against_the_config_folder(elsewhere: Path) -> None:
    write(elsewhere, f"tenant_id,name\n{TENANT_B},Fabrikam\n", "tenants.csv")

    config = load(elsewhere, top='tenants_file = "tenants.csv"', tenants="")

    assert [t.tenant_id for t in config.tenants] == [TENANT_B]


def test_file_secret_resolves_against_the_config_folder_and_is_trimmed(elsewhere: Path) -> None:
    write(elsewhere, f"{SECRET}\n", "secret.txt")

    config = load(elsewhere, {}, auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "file:secret.txt"')

    secret = config.tenants[0].auth.client_secret
    assert secret is not None
    assert (secret.reference, secret.reveal()) == ("file:secret.txt", SECRET)


def test_certificate_and_token_paths_resolve_against_the_config_folder(elsewhere: Path) -> None:
    write(elsewhere, "-----BEGIN PRIVATE KEY-----\n", "app.pem")
    auth = f'method = "certificate"\nclient_id = "{CLIENT_ID}"\ncertificate_path = "app.pem"\ntoken_file = "t.jwt"'

    config = load(elsewhere, auth=auth)

    assert config.tenants[0].auth == AuthConfig(
        method="certificate",
        client_id=CLIENT_ID,
        certificate_path=elsewhere / "app.pem",
        token_file=elsewhere / "t.jwt",
    )


# ----------------------------------------------------------------------------------------- database


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://app:pw@db.example:5432/scores", "postgresql+asyncpg://app:pw@db.example:5432/scores"),
        ("postgresql://app:pw@db.example/scores", "postgresql+asyncpg://app:pw@db.example/scores"),
        ("postgres://app@db.example/scores", "postgresql+asyncpg://app@db.example/scores"),
    ],
)
def test_postgres_url_is_kept_or_upgraded_to_asyncpg(tmp_path: Path, url: str, expected: str) -> None:
    assert load(tmp_path, database=f'url = "{url}"').database.url == expected


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql+psycopg2://app@db/scores", "postgresql+psycopg2"),
        ("mysql://app@db/scores", "mysql"),
        ("sqlite+pysqlite:///scores.db", "sqlite+pysqlite"),
    ],
)
def test_unsupported_driver_is_refused(tmp_path: Path, url: str, driver: str) -> None:
    message = refused(tmp_path, database=f'url = "{url}"')

    assert f"[database] url: driver {driver!r} is not supported" in message


def test_text_that_is_not_a_url_is_refused(tmp_path: Path) -> None:
    assert "[database] url is not a database URL" in refused(tmp_path, database='url = "scores.db"')


def test_url_with_a_bad_port_is_refused(tmp_path: Path) -> None:
    assert "[database] url" in refused(tmp_path, database='url = "postgresql://app:pw@db:5432x/scores"')


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sslmode=require", "ssl=require"),
        ("sslmode=verify-full", "ssl=verify-full"),
        ("ssl=disable", "ssl=disable"),
        ("target_session_attrs=read-write", "target_session_attrs=read-write"),
        ("host=/run/postgresql", "host=%2Frun%2Fpostgresql"),
        ("application_name=x", "application_name=x"),
        ("options=-c%20search_path%3Dscores", "options=-c+search_path%3Dscores"),
    ],
)
def test_postgres_url_query_is_given_as_asyncpg_takes_it(tmp_path: Path, query: str, expected: str) -> None:
    """libpq's sslmode (users copy libpq URLs) was passed to asyncpg.connect() as is: a TypeError at connect."""
    url = f"postgresql+asyncpg://app:{SECRET}@db.example/scores"

    assert load(tmp_path, database=f'url = "{url}?{query}"').database.url == f"{url}?{expected}"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("sslmode=", "[database] url: query parameter 'sslmode' is empty (give it a value, or leave it out)"),
        ("application_name=x&ssl=", "[database] url: query parameter 'ssl' is empty"),
        ("sslmode=requir", "[database] url: sslmode='requir' is not an SSL mode (one of disable, allow, prefer,"),
        ("ssl=true", "[database] url: ssl='true' is not an SSL mode"),
        ("sslrootcert=/ca.pem", "'sslrootcert' is not passed to asyncpg from the URL: set the environment variable "
         "PGSSLROOTCERT instead"),
        ("sslmode=require&ssl=require", "[database] url: both sslmode and ssl are given"),
        ("ssl=require&ssl=disable", "[database] url: query parameter 'ssl' is given 2 times"),
    ],
)  # fmt: skip
def test_postgres_url_query_asyncpg_would_refuse_is_refused_in_one_line(tmp_path: Path, query: str, said: str) -> None:
    """It was a 107-line TypeError at the first connection; now one line at load, the password never in it."""
    message = refused(tmp_path, database=f'url = "postgresql+asyncpg://app:{SECRET}@db.example/scores?{query}"')

    assert said in message


def test_database_url_can_come_from_the_environment(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://app:pw@db.example/scores"

    config = load(tmp_path, ENV | {"DATABASE_URL": url}, database='url = "env:DATABASE_URL"')

    assert config.database.url == url


def test_database_url_from_an_unset_variable_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, database='url = "env:DATABASE_URL"')

    assert "[database] url = 'env:DATABASE_URL': environment variable DATABASE_URL is not set" in message


def test_display_url_hides_the_password() -> None:
    database = DatabaseConfig(url=f"postgresql+asyncpg://app:{SECRET}@db.example/scores")

    assert database.display_url == "postgresql+asyncpg://app:***@db.example/scores"


def test_database_password_is_not_in_the_config_repr(tmp_path: Path) -> None:
    config = load(tmp_path, database=f'url = "postgresql+asyncpg://app:{SECRET}@db.example/scores"')

    assert SECRET not in repr(config)


# ------------------------------------------------------------------------------------------- tenants


@pytest.mark.parametrize(
    "tenant_id",
    [
        "not-a-guid",
        "11111111-1111-1111-1111-11111111111",
        "{11111111-1111-1111-1111-111111111111}",
        "11111111111111111111111111111111",
        "1111111g-1111-1111-1111-111111111111",
    ],
)
def test_malformed_tenant_id_is_refused(tmp_path: Path, tenant_id: str) -> None:
    message = refused(tmp_path, tenants=tenant(tenant_id))

    assert f"[[tenants]] #1: tenant_id {tenant_id!r} is not a GUID" in message


def test_tenant_without_an_id_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, tenants=tenant() + '[[tenants]]\nname = "Nameless"\n')

    assert "[[tenants]] #2: tenant_id is required (the tenant's GUID)" in message


def test_tenant_id_is_stored_lowercase_and_found_in_any_case(tmp_path: Path) -> None:
    upper = "ABCDEF01-2345-6789-ABCD-EF0123456789"

    config = load(tmp_path, tenants=tenant(upper))

    assert [t.tenant_id for t in config.tenants] == [upper.lower()]
    assert config.tenant(upper) is config.tenants[0]


@pytest.mark.parametrize(
    ("where", "expected"),
    [("auth", "[auth] client_id"), ("tenants.auth", f"tenant {TENANT_A} (Contoso): [tenants.auth] client_id")],
)
def test_malformed_client_id_is_refused_where_it_is_written(tmp_path: Path, where: str, expected: str) -> None:
    bad = 'client_id = "my-app"'
    sections = {"auth": bad} if where == "auth" else {"tenants": tenant(auth=bad)}

    message = refused(tmp_path, **sections)

    assert f"{expected} 'my-app' is not a GUID" in message


def test_disabled_tenant_is_configured_but_not_enabled(tmp_path: Path) -> None:
    config = load(tmp_path, tenants=tenant() + tenant(TENANT_B, "Fabrikam", body="enabled = false"))

    assert [t.tenant_id for t in config.tenants] == [TENANT_A, TENANT_B]
    assert [t.tenant_id for t in config.enabled_tenants] == [TENANT_A]


def test_tenant_listed_twice_is_refused_naming_both_places(tmp_path: Path) -> None:
    message = refused(tmp_path, tenants=tenant() + tenant(TENANT_A.upper(), "Contoso again"))

    assert f"[[tenants]] #2: tenant {TENANT_A} is listed twice (first at [[tenants]] #1)" in message


# ------------------------------------------------------------------------------------- tenants_file


def csv_config(folder: Path, csv: str, *, tenants: str = "") -> Config:
    write(folder, csv, "tenants.csv")
    return load(folder, None, top='tenants_file = "tenants.csv"', tenants=tenants)


def csv_refused(folder: Path, csv: str, *, tenants: str = "") -> tuple[str, Path]:
    """The message loading a tenants file raises, checked to name the tenants file; and that file."""
    path = write(folder, csv, "tenants.csv")
    with pytest.raises(ConfigError) as caught:
        load(folder, top='tenants_file = "tenants.csv"', tenants=tenants)
    return one_line(caught.value, path), path


def test_tenants_file_adds_tenants_with_the_shared_auth(tmp_path: Path) -> None:
    """A spreadsheet export (BOM, CRLF, blank lines, spaces) is read; its tenants follow [[tenants]]."""
    csv = f"\ufefftenant_id, name\r\n{TENANT_B.upper()}, Fabrikam\r\n\r\n{TENANT_C},\r\n"

    config = csv_config(tmp_path, csv, tenants=tenant())

    auth = AuthConfig(client_id=CLIENT_ID, client_secret=Secret("env:FETCHER_CLIENT_SECRET", SECRET))
    assert config.tenants == (
        TenantConfig(TENANT_A, "Contoso", auth),
        TenantConfig(TENANT_B, "Fabrikam", auth),
        TenantConfig(TENANT_C, "", auth),
    )


@pytest.mark.parametrize(
    ("value", "enabled"),
    [
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("n", False),
        ("true", True),
        ("1", True),
        ("yes", True),
        ("", True),
    ],
)
def test_tenants_file_enabled_column(tmp_path: Path, value: str, enabled: bool) -> None:
    config = csv_config(tmp_path, f"tenant_id,name,enabled\n{TENANT_B},Fabrikam,{value}\n", tenants=tenant())

    assert config.tenants[1].enabled is enabled


@pytest.mark.parametrize("value", ["off", "disabled", "flase"])
def test_tenants_file_unrecognised_enabled_value_is_refused(tmp_path: Path, value: str) -> None:
    message, path = csv_refused(tmp_path, f"tenant_id,name,enabled\n{TENANT_B},Fabrikam,{value}\n")

    assert f"{path}:2" in message


def test_missing_tenants_file_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, top='tenants_file = "tenants.csv"')

    assert f"tenants_file: cannot read {tmp_path / 'tenants.csv'}" in message


def test_tenants_file_without_tenant_id_column_is_refused(tmp_path: Path) -> None:
    message, _ = csv_refused(tmp_path, f"id,name\n{TENANT_B},Fabrikam\n")

    assert "tenant_id" in message


def test_tenants_file_with_an_unknown_column_is_refused(tmp_path: Path) -> None:
    message, _ = csv_refused(tmp_path, f"tenant_id,name,region\n{TENANT_B},Fabrikam,EU\n")

    assert "unknown column 'region' (columns: tenant_id, name, enabled, source_status)" in message


def test_tenants_file_bad_guid_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    message, path = csv_refused(tmp_path, f"tenant_id,name\n{TENANT_B},Fabrikam\nnot-a-guid,Bad\n")

    assert f"{path}:3: tenant_id 'not-a-guid' is not a GUID" in message


@pytest.mark.parametrize(
    ("csv", "said"),
    [
        ("tenant_id,name\nnot-a-guid,Bad\n", "{path}:2: tenant_id 'not-a-guid' is not a GUID"),
        (f'tenant_id,name\n{TENANT_B},"Fabrikam\n', "{path}:2: not valid CSV"),
        (f"{TENANT_B},Fabrikam\n", "{path}: the first line must name the columns"),
        (f"tenant_id,name,enabled\n{TENANT_B},Fabrikam,off\n", "{path}:2: enabled must be true or false"),
    ],
    ids=["guid", "quote", "header", "enabled"],
)
def test_every_tenants_file_error_is_named_after_the_configuration_file(tmp_path: Path, csv: str, said: str) -> None:
    """Whatever is wrong in the CSV, the line reads `fetcher.toml: tenants.csv:LINE: ...`, as every config error."""
    message, path = csv_refused(tmp_path, csv)

    assert message.startswith(f"{tmp_path / 'fetcher.toml'}: {said.format(path=path)}")


def test_tenant_twice_in_tenants_file_is_refused_naming_both_lines(tmp_path: Path) -> None:
    message, path = csv_refused(tmp_path, f"tenant_id,name\n{TENANT_B},Fabrikam\n{TENANT_B},Fabrikam again\n")

    assert f"{path}:3: tenant {TENANT_B} is listed twice (first at {path}:2)" in message


def test_tenant_in_both_tenants_and_tenants_file_is_refused_naming_both(tmp_path: Path) -> None:
    message, path = csv_refused(tmp_path, f"tenant_id,name\n{TENANT_A},Contoso\n", tenants=tenant())

    assert f"{path}:2: tenant {TENANT_A} is listed twice (first at [[tenants]] #1)" in message


# ------------------------------------------------------------------------------------------ secrets


@pytest.mark.parametrize(
    ("environ", "state"),
    [({}, "is not set"), ({"FETCHER_CLIENT_SECRET": ""}, "is empty"), ({"FETCHER_CLIENT_SECRET": " \n"}, "is empty")],
    ids=["unset", "empty", "blank"],
)
def test_secret_from_an_unset_or_empty_variable_is_refused_against_auth(
    tmp_path: Path, environ: dict[str, str], state: str
) -> None:
    """The shared [auth] is at fault, not the first tenant that inherits it; empty is not "not set"."""
    message = refused(tmp_path, environ, tenants=tenant() + tenant(TENANT_B, "Fabrikam"))

    assert (
        f"[auth] client_secret = 'env:FETCHER_CLIENT_SECRET': environment variable FETCHER_CLIENT_SECRET {state}"
    ) in message
    assert "tenant" not in message.removeprefix(str(tmp_path))


def test_tenant_own_secret_from_an_unset_variable_names_that_tenant(tmp_path: Path) -> None:
    tenants = tenant() + tenant(TENANT_B, "Fabrikam", auth='client_secret = "env:FABRIKAM_SECRET"')

    message = refused(tmp_path, tenants=tenants)

    assert (
        f"tenant {TENANT_B} (Fabrikam): [tenants.auth] client_secret = 'env:FABRIKAM_SECRET': "
        "environment variable FABRIKAM_SECRET is not set"
    ) in message


def test_secret_from_a_missing_file_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "file:secret.txt"')

    assert (
        f"[auth] client_secret = 'file:secret.txt': cannot read {tmp_path / 'secret.txt'}: No such file or directory"
    ) in message


@pytest.mark.parametrize("content", ["", " \n\n"])
def test_secret_from_an_empty_file_is_refused(tmp_path: Path, content: str) -> None:
    write(tmp_path, content, "secret.txt")

    message = refused(tmp_path, auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "file:secret.txt"')

    assert f"[auth] client_secret = 'file:secret.txt': {tmp_path / 'secret.txt'} is empty" in message


def test_literal_secret_works_with_a_warning_that_does_not_show_it(tmp_path: Path) -> None:
    path = write(tmp_path, config_text(auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "{SECRET}"'))
    path.chmod(0o600)

    config = load_config(path, {})

    secret = config.tenants[0].auth.client_secret
    assert secret is not None
    assert (secret.reference, secret.reveal()) == ("literal value", SECRET)
    assert config.warnings == ("[auth] client_secret holds a literal secret; prefer env:NAME or file:PATH",)
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("mode", "readers"), [(0o644, "its group and others"), (0o640, "its group"), (0o604, "others")]
)
@pytest.mark.parametrize("purpose", [p for p in Purpose if p is not Purpose.DISCOVER])  # DISCOVER also needs [partner]
def test_literal_secret_in_a_file_others_can_read_is_warned_naming_the_mode(
    tmp_path: Path, mode: int, readers: str, purpose: Purpose
) -> None:
    database = f'url = "postgresql+asyncpg://app:{SECRET}@db.example/scores"'
    tenants = tenant(auth=f'client_secret = "{SECRET}"')
    path = write(tmp_path, config_text(database=database, tenants=tenants))
    path.chmod(mode)

    config = load_config(path, ENV, purpose=purpose)

    assert config.warnings[-1] == (
        f"holds a literal secret ([database] url, tenant {TENANT_A} (Contoso): [tenants.auth] client_secret) "
        f"and is readable by {readers} (mode {mode:04o}): chmod 600 {path}, or use env:NAME or file:PATH"
    )


def test_references_in_a_file_others_can_read_are_not_warned(tmp_path: Path) -> None:
    path = write(tmp_path, config_text())
    path.chmod(0o644)

    assert load_config(path, ENV).warnings == ()


def test_secret_shows_only_its_reference() -> None:
    secret = Secret("env:FETCHER_CLIENT_SECRET", SECRET)

    assert (str(secret), repr(secret)) == (
        "<secret from env:FETCHER_CLIENT_SECRET>",
        "Secret('env:FETCHER_CLIENT_SECRET')",
    )


def test_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    """A PIN-like certificate password written as a TOML integer must not be printed back."""
    message = refused(tmp_path, auth=AUTH + "certificate_password = 907315")

    assert "907315" not in message


def test_redacted_configuration_shows_references_not_secrets(tmp_path: Path) -> None:
    write(tmp_path, "-----BEGIN PRIVATE KEY-----\n", "app.pem")
    environ = {"FETCHER_CLIENT_SECRET": SECRET, "CERT_PASSWORD": SECRET + "-cert"}
    certificate = 'method = "certificate"\ncertificate_path = "app.pem"\ncertificate_password = "env:CERT_PASSWORD"'
    database = f'url = "postgresql+asyncpg://app:{SECRET}-db@db.example/scores"'
    tenants = tenant() + tenant(TENANT_B, "Northwind", auth=certificate)

    shown = json.dumps(redacted(load(tmp_path, environ, database=database, tenants=tenants)))

    assert SECRET not in shown
    assert '"client_secret": "<secret from env:FETCHER_CLIENT_SECRET>"' in shown
    assert '"certificate_password": "<secret from env:CERT_PASSWORD>"' in shown
    assert '"url": "postgresql+asyncpg://app:***@db.example/scores"' in shown


# --------------------------------------------------------------------------------------------- auth


def test_tenant_auth_overrides_merge_key_by_key_with_auth(tmp_path: Path) -> None:
    """Each tenant takes [auth] and replaces only the keys its own [tenants.auth] sets."""
    write(tmp_path, "-----BEGIN PRIVATE KEY-----\n", "fabrikam.pem")
    own_app = "44444444-4444-4444-4444-444444444444"
    tenants = (
        tenant()
        + tenant(TENANT_B, "Northwind", auth='client_secret = "env:NORTHWIND_SECRET"')
        + tenant(
            TENANT_C,
            "Fabrikam",
            auth=f'method = "certificate"\nclient_id = "{own_app.upper()}"\ncertificate_path = "fabrikam.pem"',
        )
    )

    config = load(tmp_path, ENV | {"NORTHWIND_SECRET": "n"}, tenants=tenants)

    shared = Secret("env:FETCHER_CLIENT_SECRET", SECRET)
    assert [t.auth for t in config.tenants] == [
        AuthConfig(client_id=CLIENT_ID, client_secret=shared),
        AuthConfig(client_id=CLIENT_ID, client_secret=Secret("env:NORTHWIND_SECRET", "n")),
        AuthConfig(
            method="certificate", client_id=own_app, client_secret=None, certificate_path=tmp_path / "fabrikam.pem"
        ),
    ]


def test_auth_is_kept_as_written_with_secrets_by_reference(tmp_path: Path) -> None:
    config = load(tmp_path)

    assert config.auth == AuthConfig(client_id=CLIENT_ID, client_secret=Secret("env:FETCHER_CLIENT_SECRET", ""))


def test_managed_identity_needs_no_client_id_or_secret(tmp_path: Path) -> None:
    config = load(tmp_path, {}, auth='method = "managed_identity"')

    assert config.tenants[0].auth == AuthConfig(method="managed_identity")


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            'method = "password"',
            "[auth] method must be one of client_secret, certificate, workload_identity, "
            "managed_identity, device_code, azure_cli, got 'password'",
        ),
        (
            'client_secret = "env:FETCHER_CLIENT_SECRET"',
            f"[auth] client_id is required for method 'client_secret' (used by tenant {TENANT_A} (Contoso))",
        ),
        (
            f'client_id = "{CLIENT_ID}"',
            f"[auth] client_secret is required for this auth method (used by tenant {TENANT_A} (Contoso))",
        ),
        (
            'method = "workload_identity"\nclient_secret = "env:FETCHER_CLIENT_SECRET"',
            f"[auth] client_id is required for method 'workload_identity' (used by tenant {TENANT_A} (Contoso))",
        ),
        (
            f'method = "certificate"\nclient_id = "{CLIENT_ID}"',
            f"[auth] certificate_path is required for method 'certificate' (used by tenant {TENANT_A} (Contoso))",
        ),
    ],
)
def test_incomplete_auth_is_refused_against_auth_naming_the_tenant_that_uses_it(
    tmp_path: Path, auth: str, expected: str
) -> None:
    assert expected in refused(tmp_path, auth=auth)


def test_incomplete_tenant_auth_is_refused_against_that_tenant(tmp_path: Path) -> None:
    """The tenant chose the method, so the key the method lacks is the tenant's to give."""
    tenants = tenant() + tenant(TENANT_B, "Fabrikam", auth='method = "certificate"')

    message = refused(tmp_path, tenants=tenants)

    assert f"tenant {TENANT_B} (Fabrikam): [tenants.auth] certificate_path is required for method 'certificate'" in (
        message
    )


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_unreadable_certificate_is_refused(tmp_path: Path, kind: str) -> None:
    if kind == "folder":
        (tmp_path / "app.pem").mkdir()

    message = refused(tmp_path, auth=f'method = "certificate"\nclient_id = "{CLIENT_ID}"\ncertificate_path = "app.pem"')

    assert f"[auth] certificate_path: cannot read {tmp_path / 'app.pem'}" in message


# ------------------------------------------------------------------------------- config.example.toml

HEADER = re.compile(r"^#?\s*\[(\[?)([A-Za-z_.]+)\]\]?")
LIVE_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=")
COMMENTED_KEY = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\S")


def example_keys(lines: list[str]) -> list[tuple[str, str, int]]:
    """Every key the example sets or shows commented: (section, key, line index); a header is its own key."""
    section, found = "", []
    for index, line in enumerate(lines):
        header = HEADER.match(line)
        if header:
            section = header.group(2)
            parent, _, name = section.rpartition(".")
            found.append((parent, name, index))
        elif key := (LIVE_KEY.match(line) or COMMENTED_KEY.match(line)):
            found.append((section, key.group(1), index))
    return found


def uncommented(lines: list[str], index: int) -> list[str]:
    """The example with line `index` uncommented; inside a commented-out table, the whole table from its header."""
    start = end = index
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    while end + 1 < len(lines) and lines[end + 1].startswith("#"):
        end += 1
    headers = [i for i in range(start, index + 1) if HEADER.match(lines[i])]
    span = range(headers[0], end + 1) if headers else range(index, index + 1)
    return [re.sub(r"^#\s?", "", line) if i in span else line for i, line in enumerate(lines)]


def example_environ(text: str) -> dict[str, str]:
    """A value for every env: reference of the example (a URL for the webhook URLs)."""
    names = re.findall(r'"env:([A-Za-z_][A-Za-z0-9_]*)"', text)
    return {n: f"https://hooks.example.test/{n}" if n.endswith("_URL") else f"value-of-{n}" for n in names}


def example_files(folder: Path, text: str) -> None:
    """The relative files the example names, so that any of its lines can be uncommented."""
    for key, name in re.findall(r'(\w+) = "(?:file:)?([\w./-]+\.(?:pem|pfx|txt|csv))"', text):
        content = f"tenant_id,name\n{'5' * 8}-5555-5555-5555-{'5' * 12},Example\n" if key == "tenants_file" else "x\n"
        write(folder, content, name)


def keys_of(document: dict[str, Any], section: str) -> set[str]:
    """The keys of a parsed TOML section; for `tenants` and `tenants.auth`, of all tenants together."""
    if section in ("alerts.rules", "alerts.channels"):
        return {k for t in document.get("alerts", {}).get(section.partition(".")[2], []) for k in t}
    if section in ("tenants", "tenants.auth"):
        tables = document.get("tenants", [])
        return {k for t in tables for k in (t.get("auth", {}) if section == "tenants.auth" else t)}
    return set(document.get(section, {}) if section else document)


def test_example_config_loads() -> None:
    """config.example.toml as shipped is valid, and its live values are the code's defaults."""
    config = load_config(
        EXAMPLE, {**example_environ(EXAMPLE.read_text(encoding="utf-8")), "FETCHER_CLIENT_SECRET": SECRET}
    )

    assert (config.graph, config.fetch, config.warnings) == (GLOBAL, FetchConfig(), ())
    alerts = config.alerts
    assert (alerts.repeat_hours, alerts.timeout_seconds, alerts.max_attempts, alerts.max_retry_wait_seconds) == (
        AlertsConfig.repeat_hours,
        AlertsConfig.timeout_seconds,
        AlertsConfig.max_attempts,
        AlertsConfig.max_retry_wait_seconds,
    )
    assert [(r.name, r.kind.value, r.channels) for r in alerts.rules] == [
        ("weekly-slip", "score_drop", ("ops-teams", "mail")),
        ("weak", "below_percent", ("ops-teams",)),
        ("failing", "tenant_failing", ("ops-teams", "mail")),
        ("stale", "stale", ("mail",)),
    ]
    assert [(c.name, c.type.value) for c in alerts.channels] == [("ops-teams", "teams"), ("mail", "email")]
    assert config.database == DatabaseConfig(url=f"sqlite+aiosqlite:///{EXAMPLE.parent / 'securescores.db'}")
    assert config.tenants == (
        TenantConfig(
            TENANT_A,
            "Contoso",
            AuthConfig(client_id=CLIENT_ID, client_secret=Secret("env:FETCHER_CLIENT_SECRET", SECRET)),
        ),
    )


def test_example_config_documents_every_key() -> None:
    """Every key the code accepts appears in the example, set or commented, in its own section."""
    fields = {
        cls: {f.name for f in dataclasses.fields(cls)}
        for cls in (DatabaseConfig, GraphConfig, FetchConfig, AuthConfig, TenantConfig, AlertsConfig, AlertRule)
    }
    channel_keys = {f.name for f in dataclasses.fields(AlertChannel)} - {"sender"} | {"from"}
    documented: dict[str, set[str]] = {}
    for section, key, _ in example_keys(EXAMPLE.read_text(encoding="utf-8").splitlines()):
        documented.setdefault(section, set()).add(key)

    overrides = documented.pop("tenants.auth")
    assert documented == {
        "": set(TOP_KEYS),
        "database": fields[DatabaseConfig],
        "graph": fields[GraphConfig],
        "fetch": fields[FetchConfig],
        "auth": fields[AuthConfig],
        "tenants": fields[TenantConfig],
        "alerts": fields[AlertsConfig],
        "alerts.rules": fields[AlertRule],
        "alerts.channels": channel_keys,
        "partner": {"tenant_id", "source", "refresh_hours"},
    }
    assert overrides <= fields[AuthConfig]


def test_every_commented_key_of_the_example_is_accepted_when_uncommented(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    lines = text.splitlines()
    example_files(tmp_path, text)
    commented = [(section, key, i) for section, key, i in example_keys(lines) if lines[i].startswith("#")]
    assert len(commented) >= 10

    for section, key, index in commented:
        variant = "\n".join(uncommented(lines, index)) + "\n"
        assert key in keys_of(tomllib.loads(variant), section), f"line {index + 1} lands outside [{section}]"
        # A tenant that stays enabled, so that `enabled = false` leaves something to fetch.
        variant += f'[[tenants]]\ntenant_id = "{TENANT_C}"\nname = "Always enabled"\n'
        try:
            load_config(write(tmp_path, variant), example_environ(text))
        except ConfigError as error:
            pytest.fail(f"config.example.toml line {index + 1} ({section} {key}), uncommented: {error}")


def test_without_secrets_references_are_not_read_but_the_database_url_is(tmp_path: Path) -> None:
    """Read-only commands: an unset secret variable is no error, an env: database URL is still resolved."""
    database = 'url = "env:DB_URL"'

    config = load_config(
        write(tmp_path, config_text(database=database)),
        {"DB_URL": "sqlite+aiosqlite:///x.db"},
        purpose=Purpose.DATABASE,
    )

    assert config.database.url == f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    assert config.tenants[0].auth.client_secret == Secret("env:FETCHER_CLIENT_SECRET", "")


# ------------------------------------------------------------------------- what each command needs

ONLY_DATABASE = '[database]\nurl = "sqlite+aiosqlite:///scores.db"\n'


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200", **(env or {})}, catch_exceptions=False)


def test_database_purpose_needs_only_the_database_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ONLY_DATABASE), {}, purpose=Purpose.DATABASE)

    assert (config.database.url, config.auth, config.tenants) == (
        f"sqlite+aiosqlite:///{tmp_path / 'scores.db'}",
        AuthConfig(),
        (),
    )


def test_database_purpose_reads_no_auth_secret_and_requires_no_auth_key(tmp_path: Path) -> None:
    """A reporting host has the file but neither the client secret nor the certificate."""
    tenants = tenant() + tenant(TENANT_B, "Fabrikam", auth='method = "certificate"\ncertificate_path = "gone.pem"')
    path = write(tmp_path, config_text(auth='client_secret = "file:nowhere.txt"', tenants=tenants))

    config = load_config(path, {}, purpose=Purpose.DATABASE)

    assert [t.auth for t in config.tenants] == [
        AuthConfig(client_secret=Secret("file:nowhere.txt", "")),
        AuthConfig(
            method="certificate",
            client_secret=Secret("file:nowhere.txt", ""),
            certificate_path=tmp_path / "gone.pem",
        ),
    ]


def test_database_purpose_still_refuses_a_misspelt_key(tmp_path: Path) -> None:
    path = write(tmp_path, ONLY_DATABASE + '[auth]\nclient_idd = "x"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, purpose=Purpose.DATABASE)

    assert "[auth] unknown key 'client_idd' (did you mean 'client_id'?)" in one_line(caught.value, path)


@pytest.mark.parametrize(
    ("command", "code"),
    [(["migrate"], 0), (["status"], 0), (["report", "--format", "json"], 0), (["rebuild"], 0)],
    ids=["migrate", "status", "report", "rebuild"],
)
def test_commands_that_only_use_the_database_run_with_only_a_database_table(
    tmp_path: Path, command: list[str], code: int
) -> None:
    path = write(tmp_path, ONLY_DATABASE)
    cli("--config", str(path), "migrate")

    result = cli("--config", str(path), *command)

    assert (result.exit_code, "[auth]" in result.output) == (code, False), result.output


@pytest.mark.parametrize("command", [["config", "check"], ["run"], ["backfill"]], ids=" ".join)
@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({"tenants": ""}, "no tenants to fetch: there is no [[tenants]] table; add [[tenants]] tables"),
        (
            {"tenants": tenant(body="enabled = false")},
            "no enabled tenant: all 1 configured tenant(s) have enabled = false",
        ),
        (
            {"top": 'tenants_file = "tenants.csv"', "tenants": ""},
            "no tenants to fetch: tenants_file {folder}/tenants.csv lists none",
        ),
    ],
    ids=["none", "all disabled", "empty tenants file"],
)
def test_fetching_with_no_enabled_tenant_is_a_configuration_error(
    tmp_path: Path, command: list[str], sections: dict[str, str], expected: str
) -> None:
    write(tmp_path, "tenant_id,name\n", "tenants.csv")
    path = write(tmp_path, config_text(database='url = "sqlite+aiosqlite:///scores.db"', **sections))

    result = cli("--config", str(path), *command, env=ENV)

    assert result.exit_code == 2
    assert expected.format(folder=tmp_path) in result.output
    assert "\n" not in result.output.strip()


# ------------------------------------------------------------------------- the CSV tenants file, whole


def test_tenants_file_name_with_a_quoted_newline_is_one_field_refused_at_its_line(tmp_path: Path) -> None:
    """A spreadsheet cell with a line break is one quoted field, not two rows; a name holds no line break."""
    message, path = csv_refused(tmp_path, f'tenant_id,name\n{TENANT_B},"Fabrikam\nEurope"\n{TENANT_C},Contoso\n')

    said = "name holds a control character (\\x0a) at character 9: remove it"
    assert message.endswith(f"{path}:2: tenant {TENANT_B}: {said}")


def test_tenants_file_names_discover_made_inert_read_as_discover_reads_them(tmp_path: Path) -> None:
    """`tenants discover` writes `=Evil,Co` as `'=Evil,Co`; the configuration kept the `'`, so runs stored and
    showed `'=Evil,Co` and a configured name never equalled the old display name a rename follows."""
    names = ["=Evil,Co", "+1", "@SUM(A1)", "'quoted", "'", "plain"]
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(len(names))]
    csv = render_tenants_file(TenantRow(i, name) for i, name in zip(ids, names, strict=True))

    config = csv_config(tmp_path, csv)

    expected = list(zip(ids, names, strict=True))
    assert [(t.tenant_id, t.name) for t in config.tenants] == expected
    assert [(t, name) for t, name, _, _ in read_tenant_rows(tmp_path / "tenants.csv")] == expected


def test_tenants_file_rows_after_a_multiline_field_keep_their_line_numbers(tmp_path: Path) -> None:
    message, path = csv_refused(tmp_path, f'tenant_id,name,enabled\n{TENANT_B},Fabrikam,"yes\n"\nnot-a-guid,Bad,yes\n')

    assert f"{path}:4: tenant_id 'not-a-guid' is not a GUID" in message


@pytest.mark.parametrize(
    ("cell", "said"),
    [
        ("Mar\x00gie", "a control character (\\x00) at character 4"),
        ("Mar\x1b[2Jgie", "a control character (\\x1b) at character 4"),
        ("Mar\x85gie", "a control character (\\x85) at character 4"),
        ("Mar\tgie", "a control character (\\x09) at character 4"),
    ],
)
def test_a_control_character_in_a_tenants_file_name_is_refused_naming_file_line_tenant_and_key(
    tmp_path: Path, cell: str, said: str
) -> None:
    """A NUL in a name passed, then every PostgreSQL run failed (`invalid byte sequence ... 0x00`); ESC reached
    terminals."""
    message, path = csv_refused(tmp_path, f'tenant_id,name\n{TENANT_B},"{cell}"\n')

    assert message.endswith(f"{path}:2: tenant {TENANT_B}: name holds {said}: remove it")


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("Mar\\u0000gie", "a control character (\\x00) at character 4"),
        ("Mar\\u001b[2Jgie", "a control character (\\x1b) at character 4"),
        ("Mar\\u009bgie", "a control character (\\x9b) at character 4"),
        ("Mar\\ngie", "a control character (\\x0a) at character 4"),
    ],
)
def test_a_control_character_in_a_configured_tenant_name_is_refused_naming_the_tenant_and_key(
    tmp_path: Path, name: str, said: str
) -> None:
    """The tenant is named with its name escaped, the value itself is not echoed."""
    message = refused(tmp_path, tenants=f'[[tenants]]\ntenant_id = "{TENANT_A}"\nname = "{name}"\n')

    assert f"tenant {TENANT_A} (Mar" in message
    assert f"): name holds {said}: remove it" in message
    assert not {"\x00", "\x1b", "\x9b"} & set(message)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"database": 'url = "sqlite+aiosqlite:///x\\u0000.db"'}, "[database] url holds a control character (\\x00)"),
        ({"auth": 'client_secret = "s\\u0000"'}, "[auth] client_secret holds a control character (\\x00)"),
        ({"top": 'tenants_file = "t\\u001b.csv"'}, "tenants_file holds a control character (\\x1b)"),
    ],
)
def test_a_control_character_in_any_configured_string_is_refused_naming_the_key(
    tmp_path: Path, change: dict[str, str], said: str
) -> None:
    assert said in refused(tmp_path, **change)


def test_tenants_file_with_an_unbalanced_quote_is_refused_with_its_line(tmp_path: Path) -> None:
    """`"Contoso` would swallow every later row into one name; the file is refused instead."""
    csv = f'tenant_id,name\n{TENANT_A},Northwind\n{TENANT_B},"Contoso\n{TENANT_C},Fabrikam\n'
    path = write(tmp_path, csv, "tenants.csv")
    config = write(tmp_path, config_text(top='tenants_file = "tenants.csv"', tenants=""))

    result = cli("--config", str(config), "config", "check", env=ENV)

    assert result.exit_code == 2
    assert f'{path}:3: not valid CSV (a quoted field opened on this line is never closed: an unbalanced ")' in (
        result.output
    )


def test_tenants_file_row_with_more_fields_than_the_header_is_refused(tmp_path: Path) -> None:
    message, path = csv_refused(tmp_path, f"tenant_id,name\n{TENANT_B},Fabrikam,Inc.\n")

    assert f"{path}:2: 3 fields, but the header names 2 (tenant_id, name)" in message


def test_tenants_file_with_text_after_a_closing_quote_is_refused(tmp_path: Path) -> None:
    message, path = csv_refused(tmp_path, f'tenant_id,name\n{TENANT_B},"Fabrikam" Inc\n')

    assert f"{path}:2: not valid CSV" in message


# --------------------------------------------------------------------------------- file: references


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "secret.fifo"
    os.mkfifo(path)
    return path


def test_file_secret_that_is_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, fifo: Path) -> None:
    """Through the real command: a FIFO nobody writes to would block `fetcher` forever."""
    config = write(tmp_path, config_text(auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "file:{fifo.name}"'))

    done = subprocess.run(
        [sys.executable, "-m", "fetcher", "--config", str(config), "config", "check"],
        capture_output=True,
        text=True,
        timeout=120,  # a guard against the hang this test is about, not a measurement
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {config}: [auth] client_secret = 'file:{fifo.name}': cannot read {fifo}: "
        "it is a FIFO (named pipe), not a regular file"
    ]


@pytest.mark.parametrize(
    ("target", "kind"),
    [("/dev/zero", "a character device"), (".", "a directory")],
    ids=["/dev/zero", "a directory"],
)
def test_file_secret_that_is_not_a_regular_file_is_refused(tmp_path: Path, target: str, kind: str) -> None:
    message = refused(tmp_path, auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "file:{target}"')

    assert f"[auth] client_secret = 'file:{target}': cannot read" in message
    assert message.endswith(f"it is {kind}, not a regular file")


def test_file_secret_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "x" * (SECRET_MAX_BYTES + 1), "secret.txt")

    message = refused(tmp_path, auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "file:secret.txt"')

    assert message.endswith(f"it is {SECRET_MAX_BYTES + 1:,} bytes, more than the {SECRET_MAX_BYTES:,} allowed here")


def test_file_secret_at_the_cap_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "x" * SECRET_MAX_BYTES, "secret.txt")

    config = load(tmp_path, {}, auth=f'client_id = "{CLIENT_ID}"\nclient_secret = "file:secret.txt"')

    assert config.tenants[0].auth.client_secret == Secret("file:secret.txt", "x" * SECRET_MAX_BYTES)


def test_database_url_from_a_fifo_is_refused(tmp_path: Path, fifo: Path) -> None:
    message = refused(tmp_path, database=f'url = "file:{fifo.name}"')

    assert f"[database] url = 'file:{fifo.name}': cannot read {fifo}: it is a FIFO (named pipe)" in message


def test_certificate_that_is_a_fifo_or_too_large_is_refused(tmp_path: Path, fifo: Path) -> None:
    write(tmp_path, "x" * (CERTIFICATE_MAX_BYTES + 1), "huge.pem")
    certificate = f'method = "certificate"\nclient_id = "{CLIENT_ID}"\ncertificate_path = '

    messages = [refused(tmp_path, auth=f'{certificate}"{name}"') for name in (fifo.name, "huge.pem")]

    assert messages[0].endswith(
        f"[auth] certificate_path: cannot read {fifo}: it is a FIFO (named pipe), not a regular file"
    )
    assert messages[1].endswith(f"more than the {CERTIFICATE_MAX_BYTES:,} allowed here")


def test_tenants_file_that_is_a_fifo_is_refused(tmp_path: Path, fifo: Path) -> None:
    message = refused(tmp_path, top=f'tenants_file = "{fifo.name}"', tenants="")

    assert f"tenants_file: cannot read {fifo}: it is a FIFO (named pipe), not a regular file" in message


def test_database_purpose_does_not_open_graph_files(tmp_path: Path) -> None:
    """A reporting host may lack the CA bundle that the fetching host uses for Graph."""
    config = load_config(
        write(tmp_path, ONLY_DATABASE + '[graph]\nca_bundle = "corp-ca.pem"\n'), {}, purpose=Purpose.DATABASE
    )

    assert config.graph.ca_bundle == tmp_path / "corp-ca.pem"


# ------------------------------------------------------------------------------------------- [alerts]

HOOK_URL = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=HOOK-SIG-123"
SMTP_PASSWORD = "smtp-password-77"
ALERT_ENV = {**ENV, "TEAMS_URL": HOOK_URL, "SMTP_PASSWORD": SMTP_PASSWORD}
ALERTS = """
[alerts]
repeat_hours = 12

[[alerts.rules]]
name = "slip"
kind = "score_drop"
points = 3
days = 14
channels = ["teams", "mail"]
tenants = ["11111111-1111-1111-1111-111111111111"]

[[alerts.rules]]
name = "failing"
kind = "tenant_failing"
runs = 2
channels = ["teams"]
send_resolved = false

[[alerts.channels]]
name = "teams"
type = "teams"
url = "env:TEAMS_URL"

[[alerts.channels]]
name = "mail"
type = "email"
smtp_host = "smtp.example.test"
username = "bot"
password = "env:SMTP_PASSWORD"
from = "Bot <bot@example.test>"
to = ["soc@example.test"]
"""


def alerts_config(folder: Path, alerts: str = ALERTS, environ: dict[str, str] | None = None, **kw: Any) -> Config:
    return load_config(write(folder, config_text() + alerts), ALERT_ENV if environ is None else environ, **kw)


def test_alerts_rules_and_channels_are_read_whole(tmp_path: Path) -> None:
    assert alerts_config(tmp_path).alerts == AlertsConfig(
        rules=(
            AlertRule("slip", RuleKind.SCORE_DROP, ("teams", "mail"), points=3.0, days=14, tenants=(TENANT_A,)),
            AlertRule("failing", RuleKind.TENANT_FAILING, ("teams",), runs=2, send_resolved=False),
        ),
        channels=(
            AlertChannel("teams", ChannelType.TEAMS, url=Secret("env:TEAMS_URL", HOOK_URL)),
            AlertChannel(
                "mail",
                ChannelType.EMAIL,
                smtp_host="smtp.example.test",
                username="bot",
                password=Secret("env:SMTP_PASSWORD", SMTP_PASSWORD),
                sender="Bot <bot@example.test>",
                to=("soc@example.test",),
            ),
        ),
        repeat_hours=12.0,
    )
    assert alerts_config(tmp_path).alerts.channels[0].url.reveal() == HOOK_URL  # type: ignore[union-attr]


def test_no_alerts_table_means_no_rules(tmp_path: Path) -> None:
    assert load(tmp_path).alerts == AlertsConfig()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('kind = "score_drop"', 'kind = "score_dorp"'),
            "[[alerts.rules]] 'slip': kind must be one of score_drop, below_percent, tenant_failing, stale, "
            "got 'score_dorp'",
        ),
        (
            ('channels = ["teams", "mail"]', 'channels = ["teams", "mial"]'),
            "[[alerts.rules]] 'slip': channel 'mial' is not defined in [[alerts.channels]] (did you mean 'mail'?)",
        ),
        (
            ("points = 3", "points = 150"),
            "[[alerts.rules]] 'slip': points must be between 0 and 100 (percentage points), got 150",
        ),
        (("runs = 2", "runs = 0"), "[[alerts.rules]] 'failing': runs must be at least 1, got 0"),
        (("days = 14", 'days = "14"'), "[[alerts.rules]] 'slip': days must be an integer, got '14'"),
        (('channels = ["teams"]\n', ""), "[[alerts.rules]] 'failing': channels is required"),
        (
            ('type = "teams"', 'type = "msteams"'),
            "[[alerts.channels]] 'teams': type must be one of teams, slack, webhook, email, got 'msteams'",
        ),
        (
            ('url = "env:TEAMS_URL"', 'uri = "env:TEAMS_URL"'),
            "[[alerts.channels]] 'teams': unknown key 'uri' (did you mean 'url'?)",
        ),
        (
            ('smtp_host = "smtp.example.test"\n', ""),
            "[[alerts.channels]] 'mail': smtp_host is required for type 'email'",
        ),
        (('to = ["soc@example.test"]', "to = []"), "[[alerts.channels]] 'mail': to must list at least one address"),
        (('name = "mail"', 'name = "teams"'), "[[alerts.channels]]: name 'teams' is used twice"),
        (
            (
                'tenants = ["11111111-1111-1111-1111-111111111111"]',
                'tenants = ["99999999-9999-4999-8999-999999999999"]',
            ),
            "[[alerts.rules]] 'slip': tenant 99999999-9999-4999-8999-999999999999 is not a configured tenant",
        ),
    ],
)
def test_alerts_errors_name_the_rule_or_channel_and_key(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = write(tmp_path, config_text() + ALERTS.replace(*change, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path, ALERT_ENV)
    assert one_line(caught.value, path) == f"{path}: {message}"


@pytest.mark.parametrize("url", ["ftp://hooks.example.test/x", "hooks.example.test/x"])
def test_a_webhook_url_must_be_http_and_the_error_never_shows_it(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, config_text() + ALERTS)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {**ALERT_ENV, "TEAMS_URL": url})
    assert (
        one_line(caught.value, path) == f"{path}: [[alerts.channels]] 'teams': url must be an https:// (or http://) URL"
    )
    assert url not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:99999/x?sig=HOOK-SIG", "https://hooks.example.test:0/x", "https://hooks.example.test:x1/x"],
)
def test_a_webhook_url_with_an_impossible_port_is_refused_and_the_error_never_shows_it(
    tmp_path: Path, url: str
) -> None:
    """Refused at load like ftp://, not retried as a connection failure at every evaluation."""
    path = write(tmp_path, config_text() + ALERTS)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {**ALERT_ENV, "TEAMS_URL": url})
    assert (
        one_line(caught.value, path)
        == f"{path}: [[alerts.channels]] 'teams': url has an invalid port (a port is 1 to 65535)"
    )
    assert ("/x" in str(caught.value), "HOOK-SIG" in str(caught.value)) == (False, False)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://hooks.exa mple.test/x?sig=HOOK-SIG", "has a host with a character no host name may hold"),
        ("https://hooks.exa%20mple.test/x?sig=HOOK-SIG", "has a host with a character no host name may hold"),
        ("http://[::1/x?sig=HOOK-SIG", "has a malformed IPv6 address in [ ]"),
        ("http://[zz]/x?sig=HOOK-SIG", "has a malformed IPv6 address in [ ]"),
        ("https:///x?sig=HOOK-SIG", "has no host"),
        ("https://hooks.exa\tmple.test/x?sig=HOOK-SIG", "holds a control character (\\x09) at character 18"),
    ],
)
def test_a_webhook_url_that_does_not_parse_is_refused_saying_why_and_the_error_never_shows_it(
    tmp_path: Path, url: str, said: str
) -> None:
    """A space in the host passed; `http://[::1/x` was called an invalid port."""
    path = write(tmp_path, config_text() + ALERTS)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {**ALERT_ENV, "TEAMS_URL": url})
    assert one_line(caught.value, path).startswith(f"{path}: [[alerts.channels]] 'teams': url {said}")
    assert ("/x" in str(caught.value), "HOOK-SIG" in str(caught.value)) == (False, False)


def test_a_webhook_url_written_in_the_file_is_checked_without_reading_any_secret(tmp_path: Path) -> None:
    """`alerts --dry-run` (Purpose.DATABASE) reads no secret, yet a URL written in the file is checked."""
    path = write(tmp_path, config_text() + ALERTS.replace('"env:TEAMS_URL"', '"https://exa mple.test/x"', 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, purpose=Purpose.DATABASE)
    assert "[[alerts.channels]] 'teams': url has a host with a character no host name may hold" in str(caught.value)


def test_channel_secrets_are_redacted_in_config_check(tmp_path: Path) -> None:
    shown = repr(redacted(alerts_config(tmp_path))) + repr(alerts_config(tmp_path))
    assert "<secret from env:TEAMS_URL>" in shown
    assert "<secret from env:SMTP_PASSWORD>" in shown
    assert (HOOK_URL in shown, "HOOK-SIG" in shown, SMTP_PASSWORD in shown) == (False, False, False)


@pytest.mark.parametrize(
    ("host", "port", "starttls", "warned"),
    [
        ("smtp.example.test", 587, "false", True),
        ("smtp.example.test", 587, "true", False),
        ("smtp.example.test", 465, "false", False),  # TLS from the first byte
        ("localhost", 25, "false", False),
        ("127.0.0.1", 25, "false", False),
        ("::1", 25, "false", False),
    ],
)
def test_a_password_sent_without_tls_to_another_host_warns(
    tmp_path: Path, host: str, port: int, starttls: str, warned: bool
) -> None:
    alerts = ALERTS.replace(
        'smtp_host = "smtp.example.test"', f'smtp_host = "{host}"\nsmtp_port = {port}\nstarttls = {starttls}'
    )

    warnings = alerts_config(tmp_path, alerts).warnings

    expected = (
        f"[[alerts.channels]] 'mail': starttls = false sends the SMTP password to {host} in clear text: set "
        "starttls = true (or smtp_port = 465, TLS from the first byte)"
    )
    assert (expected in warnings) is warned
    assert SMTP_PASSWORD not in repr(warnings)


def test_a_literal_webhook_url_warns(tmp_path: Path) -> None:
    config = alerts_config(tmp_path, ALERTS.replace('url = "env:TEAMS_URL"', f'url = "{HOOK_URL}"'))
    assert config.alerts.channels[0].url == Secret("literal value", HOOK_URL)
    assert "[[alerts.channels]] 'teams': url holds a literal secret; prefer env:NAME or file:PATH" in config.warnings


@pytest.mark.parametrize(
    ("purpose", "read"), [(Purpose.DATABASE, False), (Purpose.ALERTS, True), (Purpose.FETCH, True)]
)
def test_channel_secrets_are_read_only_when_the_command_sends(tmp_path: Path, purpose: Purpose, read: bool) -> None:
    environ = {**ENV, "TEAMS_URL": HOOK_URL, "SMTP_PASSWORD": SMTP_PASSWORD} if read else {}
    config = alerts_config(tmp_path, environ=environ, purpose=purpose)
    assert [c.secrets for c in config.alerts.channels] == ([(HOOK_URL,), (SMTP_PASSWORD,)] if read else [(), ()])


def test_alerts_purpose_needs_no_client_secret(tmp_path: Path) -> None:
    config = alerts_config(
        tmp_path, environ={"TEAMS_URL": HOOK_URL, "SMTP_PASSWORD": SMTP_PASSWORD}, purpose=Purpose.ALERTS
    )
    assert config.tenants[0].auth.client_secret == Secret("env:FETCHER_CLIENT_SECRET", "")


# ------------------------------------------------------------------------------------ control profiles


def test_control_profiles_are_fetched_daily_and_people_stored_by_default(tmp_path: Path) -> None:
    config = load(tmp_path)

    assert (config.fetch.control_profiles, config.fetch.profiles_max_age_hours) == (True, 24.0)
    assert (config.database.store_people, config.database.people_salt) == (True, None)


def test_profile_keys_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        {**ENV, "PEOPLE_SALT": "pepper-from-the-environment"},
        fetch="control_profiles = false\nprofiles_max_age_hours = 6",
        database='store_people = false\npeople_salt = "env:PEOPLE_SALT"',
    )

    assert (config.fetch.control_profiles, config.fetch.profiles_max_age_hours) == (False, 6.0)
    assert config.database.people_salt is not None
    assert config.database.people_salt.reveal() == "pepper-from-the-environment"
    assert "pepper" not in repr(config.database)


def test_a_reading_command_does_not_read_the_people_salt(tmp_path: Path) -> None:
    path = write(tmp_path, config_text(database='store_people = false\npeople_salt = "env:UNSET_SALT"'))

    config = load_config(path, {}, purpose=Purpose.DATABASE)

    assert config.database.people_salt is not None
    assert config.database.people_salt.reveal() == ""


def test_store_people_false_without_a_salt_is_refused_naming_both_keys(tmp_path: Path) -> None:
    message = refused(tmp_path, database="store_people = false")

    assert "[database] store_people = false needs people_salt" in message


@pytest.mark.parametrize("hours", ["0", "-1"])
def test_a_profiles_max_age_that_is_not_positive_is_refused(tmp_path: Path, hours: str) -> None:
    message = refused(tmp_path, fetch=f"profiles_max_age_hours = {hours}")

    assert "profiles_max_age_hours" in message


def test_partner_is_resolved_with_the_shared_auth_for_discovery(tmp_path: Path) -> None:
    text = config_text(tenants="") + f'[partner]\ntenant_id = "{TENANT_C.upper()}"\nsource = "both"\n'
    config = load_config(write(tmp_path, text), ENV, purpose=Purpose.DISCOVER)
    assert config.partner is not None
    assert (config.partner.tenant_id, config.partner.source, config.tenants) == (TENANT_C, "both", ())
    assert config.partner.auth.client_secret is not None
    assert config.partner.auth.client_secret.reveal() == SECRET


@pytest.mark.parametrize(
    ("partner", "message"),
    [
        (None, "[partner] is required to discover tenants: add it with the partner's tenant_id"),
        ('source = "gdap"', "[partner] tenant_id is required (the partner's own tenant GUID)"),
        (
            f'tenant_id = "{TENANT_C}"\nsource = "csp"',
            "[partner] source must be one of gdap, contracts, both, got 'csp'",
        ),
        ('tenant_id = "partner"', "[partner]: tenant_id 'partner' is not a GUID"),
    ],
)
def test_partner_table_errors_name_the_key(tmp_path: Path, partner: str | None, message: str) -> None:
    text = config_text(tenants="") + (f"[partner]\n{partner}\n" if partner is not None else "")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV, purpose=Purpose.DISCOVER)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize("source", ["table", "csv"])
def test_a_tenant_name_longer_than_its_column_is_refused_naming_the_tenant(tmp_path: Path, source: str) -> None:
    """PostgreSQL's tenants.name holds 256 characters: a longer name is a configuration error on every database."""
    tenant = "0b7c1e2a-1111-4222-8333-444455556666"
    name = "N" * 257
    if source == "csv":
        (tmp_path / "tenants.csv").write_text(f"tenant_id,name\n{tenant},{name}\n")
        tenants = 'tenants_file = "tenants.csv"\n'
    else:
        tenants = f'[[tenants]]\ntenant_id = "{tenant}"\nname = "{name}"\n'
    path = tmp_path / "fetcher.toml"
    database = '[database]\nurl = "sqlite+aiosqlite:///x.db"\n'
    path.write_text(tenants + database if source == "csv" else database + tenants)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, purpose=Purpose.DATABASE)
    assert f"tenant {tenant}: name is 257 characters long; at most 256" in str(caught.value)


# -- tenants_source = "partner"

PARTNER_TABLE = f'[partner]\ntenant_id = "{TENANT_C}"\n'


def test_discovered_tenants_need_no_configured_tenant_nor_an_existing_tenants_file(tmp_path: Path) -> None:
    text = config_text(top='tenants_source = "partner"\ntenants_file = "later.csv"', tenants="") + PARTNER_TABLE
    config = load_config(write(tmp_path, text), ENV)
    assert (config.tenants_source, config.tenants) == ("partner", ())
    assert config.partner is not None
    assert config.partner.refresh_hours == 24


@pytest.mark.parametrize("purpose", [Purpose.FETCH, Purpose.DATABASE, Purpose.ALERTS])
def test_a_missing_tenants_file_in_partner_mode_is_a_warning_naming_it(tmp_path: Path, purpose: Purpose) -> None:
    """The file only renames and disables discovered customers: a mistyped path must not pass unsaid."""
    text = config_text(top='tenants_source = "partner"\ntenants_file = "later.csv"', tenants="") + PARTNER_TABLE
    config = load_config(write(tmp_path, text), ENV, purpose=purpose)
    assert config.warnings == (
        f"tenants_file {tmp_path / 'later.csv'} does not exist: every discovered customer is fetched under its "
        "discovered name, none renamed or disabled by it (`fetcher tenants discover` writes it; or remove "
        "tenants_file)",
    )


@pytest.mark.parametrize("exists", ["empty", "discover"])
def test_an_empty_tenants_file_or_one_discovery_will_write_is_not_warned_about(tmp_path: Path, exists: str) -> None:
    if exists == "empty":
        (tmp_path / "later.csv").write_text("")
    text = config_text(top='tenants_source = "partner"\ntenants_file = "later.csv"', tenants="") + PARTNER_TABLE
    purpose = Purpose.DISCOVER if exists == "discover" else Purpose.FETCH
    assert load_config(write(tmp_path, text), ENV, purpose=purpose).warnings == ()


def test_an_alert_rule_may_name_a_customer_that_only_discovery_lists(tmp_path: Path) -> None:
    """With tenants_source = "partner" the customers are known once discovered: a rule's `tenants` was refused
    as "not a configured tenant" unless a [[tenants]] block named it too."""
    customer = "99999999-9999-4999-8999-999999999999"
    alerts = ALERTS.replace('tenants = ["11111111-1111-1111-1111-111111111111"]', f'tenants = ["{customer}"]', 1)
    text = config_text(top='tenants_source = "partner"', tenants="") + PARTNER_TABLE + alerts

    config = load_config(write(tmp_path, text), ALERT_ENV)

    assert [rule.tenants for rule in config.alerts.rules if rule.name == "slip"] == [(customer,)]


def test_discovered_tenants_do_not_read_the_files_gone_mark(tmp_path: Path) -> None:
    """With tenants_source = "partner" the database's list says who is gone: a customer that
    `tenants discover --write` once marked gone and discovery lists again is not kept disabled by the file."""
    rows = f"tenant_id,name,enabled,source_status\n{TENANT_A},Back again,true,gone since 2026-11-01\n"
    (tmp_path / "tenants.csv").write_text(rows)
    text = config_text(top='tenants_source = "partner"\ntenants_file = "tenants.csv"', tenants="") + PARTNER_TABLE
    config = load_config(write(tmp_path, text), ENV)
    assert [(t.tenant_id, t.name, t.enabled) for t in config.tenants] == [(TENANT_A, "Back again", True)]
    plain = config_text(top='tenants_file = "tenants.csv"', tenants=tenant(TENANT_B))
    enabled = {t.tenant_id: t.enabled for t in load_config(write(tmp_path, plain), ENV).tenants}
    assert enabled == {TENANT_A: False, TENANT_B: True}


@pytest.mark.parametrize(
    ("top", "partner", "message"),
    [
        ('tenants_source = "partner"', "", 'tenants_source = "partner" needs a [partner] table'),
        ('tenants_source = "gdap"', PARTNER_TABLE, "tenants_source must be one of config, partner, got 'gdap'"),
        ('tenants_source = "partner"', PARTNER_TABLE + "refresh_hours = -1\n", "refresh_hours"),
    ],
)
def test_tenants_source_errors_name_the_key(tmp_path: Path, top: str, partner: str, message: str) -> None:
    path = write(tmp_path, config_text(top=top, tenants="") + partner)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)
    assert message in one_line(caught.value, path)


# ------------------------------------------------------------------------------------ a person's sign-in


def test_device_code_needs_no_client_id_and_uses_the_documented_public_client(tmp_path: Path) -> None:
    config = load(tmp_path, auth='method = "device_code"\ntoken_cache = "fetcher"\n')
    assert config.tenants[0].auth == AuthConfig(
        method="device_code", client_id=DEFAULT_PUBLIC_CLIENT_ID, token_cache="fetcher"
    )
    assert config.tenants[0].auth.delegated
    assert config.auth == config.tenants[0].auth  # `config check` then counts no tenant as overriding [auth]


def test_device_code_takes_the_users_own_public_client(tmp_path: Path) -> None:
    config = load(
        tmp_path, auth=f'method = "device_code"\nclient_id = "{CLIENT_ID}"\nallow_unencrypted_storage = true\n'
    )
    auth = config.tenants[0].auth
    assert (auth.client_id, auth.token_cache, auth.allow_unencrypted_storage) == (CLIENT_ID, None, True)


def test_azure_cli_is_usable_for_one_tenant_beside_the_shared_app(tmp_path: Path) -> None:
    tenants = tenant() + tenant(TENANT_B, "Fabrikam", auth='method = "azure_cli"')
    config = load(tmp_path, tenants=tenants)
    assert [t.auth.method for t in config.tenants] == ["client_secret", "azure_cli"]
    assert config.tenants[1].auth.client_secret is None


@pytest.mark.parametrize("name", ["../outside", "", "a b", "x" * 65])
def test_a_token_cache_that_is_not_a_name_is_refused(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path, auth=f'method = "device_code"\ntoken_cache = "{name}"\n')
    assert f"[auth] token_cache {name!r} must be a name" in message


def test_monthly_partitions_are_refused_on_sqlite_in_one_line(tmp_path: Path) -> None:
    message = refused(tmp_path, database='url = "sqlite+aiosqlite:///x.db"\npartition = "monthly"')
    assert '[database] partition = "monthly" needs PostgreSQL' in message


def test_monthly_partitions_are_taken_on_postgresql(tmp_path: Path) -> None:
    config = load(tmp_path, database='url = "postgresql://app@db/scores"\npartition = "monthly"')
    assert config.database.partition == "monthly"


def test_unknown_partition_scheme_is_refused_naming_the_key(tmp_path: Path) -> None:
    assert "partition" in refused(tmp_path, database='url = "postgresql://app@db/scores"\npartition = "daily"')
