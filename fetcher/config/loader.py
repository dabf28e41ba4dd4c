"""Loading: find the file, parse its TOML, check its shape, then the domain checks (GUIDs, clouds and URLs,
secret references, the tenants file, each tenant's effective `[auth]`) into a `Config`."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
import tomllib
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fetcher.config.constants import (
    AUTH_METHODS,
    CA_BUNDLE_MAX_BYTES,
    CERTIFICATE_MAX_BYTES,
    DEFAULT_FILE,
    DEFAULT_PUBLIC_CLIENT_ID,
    ENV_CONFIG,
    ENV_NAME,
    GUID,
    PARTNER_SOURCES,
    SECRET_MAX_BYTES,
    TENANT_NAME_MAX_CHARS,
    TENANTS_FILE_MAX_BYTES,
    TENANTS_SOURCES,
    TOKEN_CACHE_NAME,
)
from fetcher.config.files import FileProblem, file_problem, read_regular_file
from fetcher.config.model import (
    CLOUDS,
    AlertChannel,
    AlertRule,
    AlertsConfig,
    AuthConfig,
    ChannelType,
    Config,
    DatabaseConfig,
    FetchConfig,
    GraphConfig,
    PartnerConfig,
    Purpose,
    RuleKind,
    TenantConfig,
)
from fetcher.config.secret import Secret, reference_only
from fetcher.config.shape import (
    AlertChannelTable,
    AlertRuleTable,
    AlertsTable,
    AuthTable,
    DatabaseTable,
    FileTable,
    GraphTable,
    PartnerTable,
    TenantTable,
)
from fetcher.config.shape_errors import describe_errors, tenant_label
from fetcher.config.tenants_file import csv_rows, enabled_flag
from fetcher.errors import ConfigError

StrEnumT = TypeVar("StrEnumT", bound=StrEnum)


def find_config_file(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] = os.environ) -> Path:
    """`--config`, else `$FETCHER_CONFIG`, else `./fetcher.toml`."""
    if explicit:
        return Path(explicit)
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    return Path(DEFAULT_FILE)


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] = os.environ, *, purpose: Purpose = Purpose.FETCH
) -> Config:
    """Read, validate and resolve a configuration file for `purpose`; raises ConfigError (one line)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file (pass --config PATH, set {ENV_CONFIG}, "
            f"or write ./{DEFAULT_FILE} with `fetcher config init`)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path=path, environ=environ, purpose=purpose)


def parse_config(
    raw: Mapping[str, Any],
    *,
    path: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    purpose: Purpose = Purpose.FETCH,
) -> Config:
    """Validate a configuration already parsed from TOML."""
    where = str(path or "configuration")
    try:
        file = FileTable.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {describe_errors(error.errors(include_url=False), raw)}") from None
    return _Loader(path, environ, purpose).load(file)


@dataclass(frozen=True)
class _Entry:
    """One tenant as listed, before its auth is resolved; `where` is its place in the file(s)."""

    where: str
    tenant_id: str
    name: str
    enabled: bool
    auth: AuthTable

    @property
    def label(self) -> str:
        return tenant_label(self.tenant_id, self.name, self.where)


class _Loader:
    """Holds one file's context (its folder, the environment, the purpose) while it is resolved."""

    def __init__(self, path: Path | None, environ: Mapping[str, str], purpose: Purpose) -> None:
        self.path = path
        self.environ = environ
        self.purpose = purpose
        self.base = path.resolve().parent if path else Path.cwd()
        self.warnings: list[str] = []
        self.literals: list[str] = []
        self._resolved: dict[tuple[str, str], Secret] = {}

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path or 'configuration'}: {message}")

    def load(self, file: FileTable) -> Config:
        database = self.database(file.database)
        graph = self.graph(file.graph)
        fetch = FetchConfig(**file.fetch.model_dump())
        discovered = self.tenants_source(file)
        entries = [*self.listed_tenants(file.tenants), *self.tenants_file(file.tenants_file, discovered=discovered)]
        tenants = self.tenants(entries, file.auth)
        if self.purpose is Purpose.FETCH and not discovered:
            self.require_enabled(tenants, file.tenants_file)
        partner = self.partner(file.partner, file.auth)
        self.note_literals(file)
        self.note_channel_literals(file.alerts)
        self.check_mode()
        shared = self.auth_as_written(file.auth)
        tenants_file = self.resolve_path(file.tenants_file) if file.tenants_file else None
        alerts = self.alerts(file.alerts, tenants)  # before the warnings: it may add some
        warnings = tuple(self.warnings)
        config = Config(database, graph, fetch, shared, tenants, self.path, warnings, alerts, partner, tenants_file)
        return dataclasses.replace(config, tenants_source=file.tenants_source)

    def tenants_source(self, file: FileTable) -> bool:
        """True when the tenants to fetch are discovered at the partner (`tenants_source = "partner"`)."""
        if file.tenants_source not in TENANTS_SOURCES:
            raise self.fail(f"tenants_source must be one of {', '.join(TENANTS_SOURCES)}, got {file.tenants_source!r}")
        if file.tenants_source == "partner" and file.partner is None:
            raise self.fail(
                'tenants_source = "partner" needs a [partner] table with the partner\'s own tenant_id '
                "(where the customers are discovered)"
            )
        return file.tenants_source == "partner"

    def partner(self, table: PartnerTable | None, shared: AuthTable) -> PartnerConfig | None:
        """`[partner]`, required when discovering; its token comes from `[auth]`."""
        if table is None:
            if self.purpose is Purpose.DISCOVER:
                raise self.fail("[partner] is required to discover tenants: add it with the partner's tenant_id")
            return None
        if table.tenant_id is None:
            raise self.fail("[partner] tenant_id is required (the partner's own tenant GUID)")
        if table.source not in PARTNER_SOURCES:
            raise self.fail(f"[partner] source must be one of {', '.join(PARTNER_SOURCES)}, got {table.source!r}")
        tenant_id = self.guid(table.tenant_id, "[partner]")
        auth = self.tenant_auth(_Entry("[partner]", tenant_id, "partner", True, AuthTable()), shared)
        return PartnerConfig(tenant_id, auth, table.source, table.refresh_hours)

    def resolve_path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    # -- [database] and [graph]

    def database(self, table: DatabaseTable) -> DatabaseConfig:
        value = table.url
        if value.startswith(("env:", "file:")):
            value = self.secret(value, "[database] url ").reveal()
        url = self.database_url(value)
        if not table.url.startswith(("env:", "file:")) and make_url(url).password:
            self.literals.append("[database] url")
        salt = self.people_salt(table)
        if table.partition != "none" and make_url(url).get_backend_name() != "postgresql":
            raise self.fail(
                f'[database] partition = "{table.partition}" needs PostgreSQL: SQLite keeps each day table as one '
                'table (remove the key, or set partition = "none")'
            )
        return DatabaseConfig(
            url, table.keep_raw, float(table.busy_timeout_seconds), table.store_people, salt, table.partition
        )

    def people_salt(self, table: DatabaseTable) -> Secret | None:
        """The key of the hashes that replace people's names; needed only when `store_people = false`."""
        if table.people_salt is None:
            if not table.store_people:
                raise self.fail(
                    "[database] store_people = false needs people_salt (env:NAME or file:PATH): the key of the "
                    "hashes that replace people's names"
                )
            return None
        if not table.people_salt.startswith(("env:", "file:")):
            self.literals.append("[database] people_salt")
            return self.secret(table.people_salt, "[database] people_salt ")
        if self.purpose is not Purpose.FETCH:
            return Secret(table.people_salt, "")
        return self.secret(table.people_salt, "[database] people_salt ")

    def database_url(self, value: str) -> str:
        try:
            url = make_url(value)
            url.port  # noqa: B018 - parsing the port is what raises on "host:54x2"
        except (ArgumentError, ValueError):
            raise self.fail(
                "[database] url is not a database URL (sqlite+aiosqlite:///file.db or "
                "postgresql+asyncpg://user@host/db)"
            ) from None
        drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
        url = url.set(drivername=drivers.get(url.drivername, url.drivername))
        if url.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            raise self.fail(
                f"[database] url: driver {url.drivername!r} is not supported "
                "(use sqlite+aiosqlite or postgresql+asyncpg)"
            )
        if url.drivername == "sqlite+aiosqlite" and url.database and url.database != ":memory:":
            url = url.set(database=str(self.resolve_path(url.database)))
        if url.database == ":memory:":
            return f"{url.drivername}:///:memory:"
        return url.render_as_string(hide_password=False)

    def graph(self, table: GraphTable) -> GraphConfig:
        cloud = CLOUDS.get(table.cloud)
        if cloud is None:
            raise self.fail(f"[graph] cloud must be one of {', '.join(CLOUDS)}, got {table.cloud!r}")
        if not cloud.secure_score:
            raise self.fail(
                f"[graph] cloud = {table.cloud!r}: Microsoft Graph operated by 21Vianet does not "
                "offer the secureScores API, so there is nothing to fetch there"
            )
        base_url = (cloud.graph if table.base_url is None else table.base_url).rstrip("/")
        authority = (cloud.authority if table.authority_host is None else table.authority_host).rstrip("/")
        for key, url in (("base_url", base_url), ("authority_host", authority)):
            if not re.match(r"^https://[^/\s]+", url):
                raise self.fail(f"[graph] {key} must be an https:// URL, got {url!r}")
        ca_bundle = None
        if table.ca_bundle is not None:
            ca_bundle = self.resolve_path(table.ca_bundle)
            if self.purpose.talks_to_graph:
                self.check_file(ca_bundle, CA_BUNDLE_MAX_BYTES, "[graph] ca_bundle: ")
        return GraphConfig(
            table.cloud,
            base_url,
            authority,
            table.scope or default_scope(base_url),
            ca_bundle,
            float(table.timeout_seconds),
            table.max_response_bytes,
            self.proxy(table.proxy) if table.proxy is not None else None,
        )

    def proxy(self, value: str) -> Secret:
        """An HTTP proxy for Graph and Entra ID alike; it may carry a password, so it is a secret."""
        if value.startswith(("env:", "file:")):
            if not self.purpose.talks_to_graph:
                return Secret(value, "")
            secret = self.secret(value, "[graph] proxy ")
        else:
            secret = Secret("[graph] proxy", value)
            if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", value):
                self.literals.append("[graph] proxy")
        url = secret.reveal()
        if url and not re.match(r"^https?://[^/\s@]*@?[^/\s@]+(:\d+)?/?$", url):
            raise self.fail("[graph] proxy must be an http:// or https:// URL such as http://proxy.example:3128")
        return secret

    # -- tenants

    def listed_tenants(self, tables: Sequence[TenantTable]) -> Iterator[_Entry]:
        for number, table in enumerate(tables, 1):
            where = f"[[tenants]] #{number}"
            if table.tenant_id is None:
                raise self.fail(f"{where}: tenant_id is required (the tenant's GUID)")
            yield _Entry(where, self.guid(table.tenant_id, where), table.name, table.enabled, table.auth)

    def guid(self, tenant_id: str, where: str) -> str:
        if not GUID.match(tenant_id):
            raise self.fail(f"{where}: tenant_id {tenant_id!r} is not a GUID")
        return tenant_id.lower()

    def tenants_file(self, name: str | None, *, discovered: bool = False) -> Iterator[_Entry]:
        """Rows of the CSV tenants file, read whole with the csv module (quoted newlines survive).

        `discovered` (tenants_source = "partner"): a missing or empty file has no rows, the file only adds
        overrides, and its `source_status` is not read (the database's list says who is gone). A missing file
        is said in a warning: a path mistyped or moved would otherwise fetch the customers it disables.
        """
        if name is None:
            return
        path = self.resolve_path(name)
        if (discovered or self.purpose is Purpose.DISCOVER) and (not path.exists() or path.stat().st_size == 0):
            if discovered and self.purpose is not Purpose.DISCOVER and not path.exists():
                self.warnings.append(
                    f"tenants_file {path} does not exist: every discovered customer is fetched under its "
                    f"discovered name, none renamed or disabled by it (`fetcher tenants discover` writes it; or "
                    "remove tenants_file)"
                )
            return  # discovery is how the file comes to be
        try:
            text = read_regular_file(path, TENANTS_FILE_MAX_BYTES).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise self.fail(f"tenants_file: cannot read {path}: not UTF-8 text") from None
        except FileProblem as problem:
            raise self.fail(f"tenants_file: cannot read {path}: {problem}") from None
        for line, row in csv_rows(path, text):
            where = f"{path}:{line}"
            tenant_id = self.guid(row.get("tenant_id", ""), where)
            # a customer `tenants discover --write` no longer found is kept in the file (and its history),
            # not fetched; with tenants_source = "partner" the database's list says who is gone
            gone = row.get("source_status", "").startswith("gone since")
            enabled = enabled_flag(row, where) and (discovered or not gone)
            yield _Entry(where, tenant_id, row.get("name", ""), enabled, AuthTable())

    def tenants(self, entries: list[_Entry], shared: AuthTable) -> tuple[TenantConfig, ...]:
        seen: dict[str, str] = {}
        tenants = []
        for entry in entries:
            if entry.tenant_id in seen:
                first = seen[entry.tenant_id]
                raise self.fail(f"{entry.where}: tenant {entry.tenant_id} is listed twice (first at {first})")
            seen[entry.tenant_id] = entry.where
            if len(entry.name) > TENANT_NAME_MAX_CHARS:
                raise self.fail(
                    f"{entry.where}: tenant {entry.tenant_id}: name is {len(entry.name)} characters long; "
                    f"at most {TENANT_NAME_MAX_CHARS} (the tenants.name column)"
                )
            auth = self.tenant_auth(entry, shared)
            tenants.append(TenantConfig(entry.tenant_id, entry.name, auth, entry.enabled))
        return tuple(tenants)

    def require_enabled(self, tenants: tuple[TenantConfig, ...], tenants_file: str | None) -> None:
        """Nothing to fetch is an error: say where tenants come from."""
        if any(t.enabled for t in tenants):
            return
        if tenants:
            raise self.fail(
                f"no enabled tenant: all {len(tenants)} configured tenant(s) have enabled = false "
                "(set enabled = true on the tenants to fetch)"
            )
        source = f"tenants_file {self.resolve_path(tenants_file)} lists none, and " if tenants_file else ""
        raise self.fail(
            f"no tenants to fetch: {source}there is no [[tenants]] table; add [[tenants]] tables with "
            "tenant_id and name, or point tenants_file at a CSV file with a tenant_id column"
        )

    # -- auth

    def tenant_auth(self, entry: _Entry, shared: AuthTable) -> AuthConfig:
        """The tenant's effective auth: [auth] with the keys its [tenants.auth] sets replaced.

        Each value is checked and reported where it was written; a missing key is reported where
        the method was chosen.
        """
        own_where = f"{entry.label}: [tenants.auth] "

        def pick(key: str) -> tuple[str | None, str]:
            if key in entry.auth.model_fields_set:
                return getattr(entry.auth, key), own_where
            return getattr(shared, key), "[auth] "

        method, method_where = pick("method")
        method = self.method(method, method_where)
        client_id, id_where = pick("client_id")
        values: dict[str, Any] = {
            "method": method,
            "client_id": self.client_id(client_id, id_where) if client_id is not None else None,
        }
        if not self.purpose.talks_to_graph:
            return AuthConfig(**values, **self.unresolved(entry.auth, shared))
        if method == "device_code" and values["client_id"] is None:
            values["client_id"] = DEFAULT_PUBLIC_CLIENT_ID
        if values["client_id"] is None and method not in ("managed_identity", "azure_cli"):
            raise self.fail(f"{method_where}client_id is required for method {method!r}{self.by(entry, method_where)}")
        return AuthConfig(**values, **self.credentials(method, pick, method_where, entry), **self.cache(pick))

    def cache(self, pick: typing.Callable[[str], tuple[typing.Any, str]]) -> dict[str, Any]:
        """device_code's token cache: a name msal-extensions keeps it under (~/.IdentityService/NAME)."""
        name, where = pick("token_cache")
        if name is not None and not TOKEN_CACHE_NAME.match(name):
            raise self.fail(
                f"{where}token_cache {name!r} must be a name (letters, digits, '.', '_' or '-'), such as \"fetcher\""
            )
        unencrypted, _ = pick("allow_unencrypted_storage")
        return {"token_cache": name, "allow_unencrypted_storage": bool(unencrypted)}

    @staticmethod
    def by(entry: _Entry, where: str) -> str:
        return f" (used by {entry.label})" if where == "[auth] " else ""

    def method(self, value: str | None, where: str) -> str:
        method = value or "client_secret"
        if method not in AUTH_METHODS:
            raise self.fail(f"{where}method must be one of {', '.join(AUTH_METHODS)}, got {method!r}")
        return method

    def client_id(self, value: str, where: str) -> str:
        if not GUID.match(value):
            raise self.fail(f"{where}client_id {value!r} is not a GUID")
        return value.lower()

    def credentials(
        self, method: str, pick: typing.Callable[[str], tuple[str | None, str]], method_where: str, entry: _Entry
    ) -> dict[str, Any]:
        """The secrets and files the method uses, resolved; one it does not use is not read."""
        values: dict[str, Any] = {}
        secret, where = pick("client_secret")
        if method == "client_secret":
            if secret is None:
                raise self.fail(
                    f"{method_where}client_secret is required for this auth method{self.by(entry, method_where)}"
                )
            values["client_secret"] = self.secret(secret, f"{where}client_secret ")
        if method == "certificate":
            values["certificate_path"] = self.certificate(pick, method_where, entry)
            password, where = pick("certificate_password")
            if password is not None:
                values["certificate_password"] = self.secret(password, f"{where}certificate_password ")
        token_file, _ = pick("token_file")
        if token_file is not None:
            values["token_file"] = self.resolve_path(token_file)
        return values

    def certificate(
        self, pick: typing.Callable[[str], tuple[str | None, str]], method_where: str, entry: _Entry
    ) -> Path:
        value, where = pick("certificate_path")
        if value is None:
            raise self.fail(
                f"{method_where}certificate_path is required for method 'certificate'{self.by(entry, method_where)}"
            )
        path = self.resolve_path(value)
        self.check_file(path, CERTIFICATE_MAX_BYTES, f"{where}certificate_path: ")
        return path

    def unresolved(self, own: AuthTable, shared: AuthTable) -> dict[str, Any]:
        """For Purpose.DATABASE: secrets by reference only, paths resolved but not opened."""
        merged = {**shared.model_dump(exclude_unset=True), **own.model_dump(exclude_unset=True)}
        values: dict[str, Any] = {}
        for key in ("client_secret", "certificate_password"):
            if key in merged:
                values[key] = reference_only(merged[key])
        for key in ("certificate_path", "token_file"):
            if key in merged:
                values[key] = self.resolve_path(merged[key])
        values["token_cache"] = merged.get("token_cache")
        values["allow_unencrypted_storage"] = bool(merged.get("allow_unencrypted_storage"))
        return values

    def auth_as_written(self, table: AuthTable) -> AuthConfig:
        """`[auth]` itself, for showing: its secrets by reference, never read here (device_code's default
        public client filled in, as each tenant's resolved auth has it)."""
        client_id = table.client_id.lower() if table.client_id else None
        if table.method == "device_code" and client_id is None:
            client_id = DEFAULT_PUBLIC_CLIENT_ID
        return AuthConfig(
            method=table.method or "client_secret",
            client_id=client_id,
            client_secret=reference_only(table.client_secret) if table.client_secret is not None else None,
            certificate_path=self.resolve_path(table.certificate_path) if table.certificate_path else None,
            certificate_password=(
                reference_only(table.certificate_password) if table.certificate_password is not None else None
            ),
            token_file=self.resolve_path(table.token_file) if table.token_file else None,
            token_cache=table.token_cache,
            allow_unencrypted_storage=bool(table.allow_unencrypted_storage),
        )

    # -- [alerts]

    def alerts(self, table: AlertsTable, tenants: tuple[TenantConfig, ...]) -> AlertsConfig:
        """Rules and channels: names unique, kinds and types known, every rule's channels and tenants exist."""
        channels = tuple(self.alert_channel(c, n) for n, c in enumerate(table.channels, 1))
        _unique([c.name for c in channels], "[[alerts.channels]]", self.fail)
        known = {t.tenant_id for t in tenants}
        rules = tuple(self.alert_rule(r, n, {c.name for c in channels}, known) for n, r in enumerate(table.rules, 1))
        _unique([r.name for r in rules], "[[alerts.rules]]", self.fail)
        values = table.model_dump(exclude={"rules", "channels"})
        return AlertsConfig(rules=rules, channels=channels, **values)

    def alert_rule(self, table: AlertRuleTable, number: int, channels: set[str], tenants: set[str]) -> AlertRule:
        where = f"[[alerts.rules]] {table.name!r}" if table.name else f"[[alerts.rules]] #{number}"
        kind = self.choice(RuleKind, table.kind, f"{where}: kind")
        if not table.channels:
            raise self.fail(f"{where}: channels must name at least one [[alerts.channels]]")
        for name in table.channels:
            if name not in channels:
                raise self.fail(
                    f"{where}: channel {name!r} is not defined in [[alerts.channels]]{_closest_name(name, channels)}"
                )
        chosen = tuple(self.guid(t, f"{where}: tenants") for t in table.tenants)
        for tenant_id in chosen:
            if tenant_id not in tenants:
                raise self.fail(f"{where}: tenant {tenant_id} is not a configured tenant")
        values = table.model_dump(exclude={"kind", "channels", "tenants"})
        return AlertRule(kind=kind, channels=tuple(table.channels), tenants=chosen, **values)

    def alert_channel(self, table: AlertChannelTable, number: int) -> AlertChannel:
        where = f"[[alerts.channels]] {table.name!r}" if table.name else f"[[alerts.channels]] #{number}"
        kind = self.choice(ChannelType, table.type, f"{where}: type")
        ca_bundle = self.resolve_path(table.ca_bundle) if table.ca_bundle else None
        if ca_bundle is not None:
            self.check_file(ca_bundle, CA_BUNDLE_MAX_BYTES, f"{where}: ca_bundle: ")
        if kind is ChannelType.EMAIL:
            return self.email_channel(table, where, ca_bundle)
        if table.url is None:
            raise self.fail(f"{where}: url is required for type {kind.value!r} (env:NAME or file:PATH)")
        url = self.channel_secret(table.url, f"{where}: url ")
        if url.reveal() and not re.match(r"^https?://[^/\s]+", url.reveal()):
            raise self.fail(f"{where}: url must be an https:// (or http://) URL")
        return AlertChannel(table.name, kind, url=url, ca_bundle=ca_bundle)

    def email_channel(self, table: AlertChannelTable, where: str, ca_bundle: Path | None) -> AlertChannel:
        for key, value in (("smtp_host", table.smtp_host), ("from", table.sender)):
            if not value:
                raise self.fail(f"{where}: {key} is required for type 'email'")
        if not table.to:
            raise self.fail(f"{where}: to must list at least one address")
        if table.password is not None and not table.username:
            raise self.fail(f"{where}: password is given without username")
        password = self.channel_secret(table.password, f"{where}: password ") if table.password else None
        return AlertChannel(
            table.name,
            ChannelType.EMAIL,
            smtp_host=table.smtp_host or "",
            smtp_port=table.smtp_port,
            starttls=table.starttls,
            username=table.username,
            password=password,
            sender=table.sender or "",
            to=tuple(table.to),
            ca_bundle=ca_bundle,
        )

    def channel_secret(self, value: str, where: str) -> Secret:
        """A webhook URL or SMTP password: read when this purpose sends, else kept by reference."""
        if self.purpose in (Purpose.FETCH, Purpose.ALERTS):
            return self.secret(value, where)
        return reference_only(value)

    def choice(self, kind: type[StrEnumT], value: str, where: str) -> StrEnumT:
        try:
            return kind(value)
        except ValueError:
            valid = ", ".join(k.value for k in kind)
            raise self.fail(f"{where} must be one of {valid}, got {value!r}") from None

    def note_channel_literals(self, table: AlertsTable) -> None:
        for channel in table.channels:
            for key, value in (("url", channel.url), ("password", channel.password)):
                if value and not value.startswith(("env:", "file:")):
                    self.literals.append(f"[[alerts.channels]] {channel.name!r}: {key}")

    # -- secrets and files

    def secret(self, reference: str, where: str) -> Secret:
        """Resolve a reference once per place it is written; `where` is "[auth] client_secret "."""
        key = (where, reference)
        if key not in self._resolved:
            self._resolved[key] = self.read_secret(reference, where.rstrip())
        return self._resolved[key]

    def read_secret(self, reference: str, where: str) -> Secret:
        if reference.startswith("env:"):
            return Secret(reference, self.environment(reference, where))
        if reference.startswith("file:"):
            file = self.resolve_path(reference[5:])
            try:
                value = read_regular_file(file, SECRET_MAX_BYTES).decode("utf-8").strip()
            except UnicodeDecodeError:
                raise self.fail(f"{where} = {reference!r}: cannot read {file}: not UTF-8 text") from None
            except FileProblem as problem:
                raise self.fail(f"{where} = {reference!r}: cannot read {file}: {problem}") from None
            if not value:
                raise self.fail(f"{where} = {reference!r}: {file} is empty")
            return Secret(reference, value)
        if not reference:
            raise self.fail(f"{where} is empty")
        self.warnings.append(f"{where} holds a literal secret; prefer env:NAME or file:PATH")
        return Secret("literal value", reference)

    def environment(self, reference: str, where: str) -> str:
        name = reference[4:]
        if not ENV_NAME.match(name):
            raise self.fail(f"{where} = {reference!r}: {name!r} is not an environment variable name")
        value = self.environ.get(name)
        if value is None:
            raise self.fail(f"{where} = {reference!r}: environment variable {name} is not set")
        if not value.strip():
            raise self.fail(f"{where} = {reference!r}: environment variable {name} is empty")
        return value

    def check_file(self, path: Path, limit: int, where: str) -> None:
        """A file another library reads later: it must be a readable regular file of sane size."""
        try:
            info = path.stat()
        except OSError as exc:
            raise self.fail(f"{where}cannot read {path}: {exc.strerror}") from None
        problem = file_problem(info, limit)
        if problem is None and not os.access(path, os.R_OK):
            problem = "permission denied"
        if problem:
            raise self.fail(f"{where}cannot read {path}: {problem}")

    def check_mode(self) -> None:
        """A literal secret in a file that others can read: warn, naming the mode."""
        if not self.literals or self.path is None:
            return
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except OSError:
            return
        readers = [who for bit, who in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "others")) if mode & bit]
        if readers:
            self.warnings.append(
                f"holds a literal secret ({', '.join(dict.fromkeys(self.literals))}) and is readable by "
                f"{' and '.join(readers)} (mode {mode:04o}): chmod 600 {self.path}, or use env:NAME or file:PATH"
            )

    def note_literals(self, file: FileTable) -> None:
        """Literal secrets written in the file, whether or not this purpose reads them."""
        tables = [("[auth] ", file.auth)]
        tables += [
            (f"{tenant_label(t.tenant_id, t.name, f'[[tenants]] #{n}')}: [tenants.auth] ", t.auth)
            for n, t in enumerate(file.tenants, 1)
        ]
        for where, table in tables:
            for key in ("client_secret", "certificate_password"):
                value = getattr(table, key)
                if value and not value.startswith(("env:", "file:")):
                    self.literals.append(f"{where}{key}")


def _unique(names: Sequence[str], where: str, fail: Callable[[str], ConfigError]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise fail(f"{where}: name {name!r} is used twice")
        seen.add(name)


def _closest_name(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def default_scope(base_url: str) -> str:
    """Graph's `.default` scope for a base URL: its scheme and host."""
    match = re.match(r"^(https://[^/]+)", base_url)
    origin = match.group(1) if match else base_url
    return f"{origin}/.default"
