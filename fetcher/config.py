"""Configuration: a TOML file read into frozen dataclasses, validated at load.

Every problem becomes one `ConfigError` line that names the file, the tenant and the key at fault.
Secrets are given as `env:NAME` or `file:PATH` references (a literal works, with a warning), resolved
here once, and carried in `Secret`, whose text form is always redacted.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import math
import os
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fetcher.errors import ConfigError
from fetcher.text import hide_password

DEFAULT_FILE = "fetcher.toml"
ENV_CONFIG = "FETCHER_CONFIG"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SECRET_KEYS = frozenset({"url", "client_secret", "certificate_password", "proxy"})
AUTH_METHODS = ("client_secret", "certificate", "workload_identity", "managed_identity")
ENABLED_WORDS = {
    "": True,
    "true": True,
    "yes": True,
    "y": True,
    "1": True,
    "false": False,
    "no": False,
    "n": False,
    "0": False,
}
GRAPH_MAX_PER_TENANT_CONCURRENCY = 4
GRAPH_MAX_PER_TENANT_RATE = 150
GRAPH_HISTORY_DAYS = 90


@dataclass(frozen=True)
class Cloud:
    """A national cloud's Graph and Entra ID endpoints."""

    graph: str
    authority: str
    secure_score: bool = True


CLOUDS: Mapping[str, Cloud] = {
    "global": Cloud("https://graph.microsoft.com/v1.0", "https://login.microsoftonline.com"),
    "usgov": Cloud("https://graph.microsoft.us/v1.0", "https://login.microsoftonline.us"),
    "dod": Cloud("https://dod-graph.microsoft.us/v1.0", "https://login.microsoftonline.us"),
    "china": Cloud(
        "https://microsoftgraph.chinacloudapi.cn/v1.0", "https://login.chinacloudapi.cn", secure_score=False
    ),
}


@dataclass(frozen=True)
class Secret:
    """A secret value and where it came from; shown only as its reference."""

    reference: str
    value: str = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"<secret from {self.reference}>"

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"

    def reveal(self) -> str:
        return self.value


@dataclass(frozen=True)
class DatabaseConfig:
    """`[database]`; the URL may hold a password, so its repr shows it hidden."""

    url: str = field(default="sqlite+aiosqlite:///securescores.db", repr=False)
    keep_raw: bool = True
    busy_timeout_seconds: float = 30.0

    @property
    def display_url(self) -> str:
        return hide_password(make_url(self.url).render_as_string(hide_password=False))

    def __repr__(self) -> str:
        return (
            f"DatabaseConfig(url={self.display_url!r}, keep_raw={self.keep_raw!r}, "
            f"busy_timeout_seconds={self.busy_timeout_seconds!r})"
        )


@dataclass(frozen=True)
class GraphConfig:
    """`[graph]`: where Graph and Entra ID are, and how long to wait for them."""

    cloud: str = "global"
    base_url: str = ""
    authority_host: str = ""
    scope: str = ""
    ca_bundle: Path | None = None
    timeout_seconds: float = 60.0
    max_response_bytes: int = 64 * 1024 * 1024
    proxy: Secret | None = field(default=None, repr=False)  # http(s)://[user:password@]host:port

    @property
    def display_proxy(self) -> str | None:
        return make_url_safe(self.proxy.reveal()) if self.proxy and self.proxy.reveal() else None


@dataclass(frozen=True)
class FetchConfig:
    """`[fetch]`: concurrency, Graph's per-tenant limits, history and retries."""

    concurrency: int = 16
    per_tenant_concurrency: int = 4
    per_tenant_rate: int = 150
    history_days: int = 90
    max_attempts: int = 6
    max_retry_wait_seconds: float = 300.0


@dataclass(frozen=True)
class AuthConfig:
    """`[auth]` or a tenant's `[tenants.auth]`: how to get a token."""

    method: str = "client_secret"
    client_id: str | None = None
    client_secret: Secret | None = None
    certificate_path: Path | None = None
    certificate_password: Secret | None = None
    token_file: Path | None = None


@dataclass(frozen=True)
class TenantConfig:
    """One customer tenant."""

    tenant_id: str
    name: str
    auth: AuthConfig
    enabled: bool = True

    @property
    def label(self) -> str:
        return f"{self.tenant_id} ({self.name})" if self.name else self.tenant_id


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration."""

    database: DatabaseConfig
    graph: GraphConfig
    fetch: FetchConfig
    auth: AuthConfig
    tenants: tuple[TenantConfig, ...]
    path: Path | None = None
    warnings: tuple[str, ...] = ()

    @property
    def enabled_tenants(self) -> tuple[TenantConfig, ...]:
        return tuple(t for t in self.tenants if t.enabled)

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        wanted = tenant_id.lower()
        return next((t for t in self.tenants if t.tenant_id == wanted), None)


# --------------------------------------------------------------------------------------------- loading


def find_config_file(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] = os.environ) -> Path:
    """`--config`, else `$FETCHER_CONFIG`, else `./fetcher.toml`."""
    if explicit:
        return Path(explicit)
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG])
    return Path(DEFAULT_FILE)


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] = os.environ, *, secrets: bool = True
) -> Config:
    """Read, validate and resolve a configuration file.

    `secrets=False` is for commands that never talk to Entra ID or Graph (status, report, rebuild): the
    references are checked for form but not read, so a monitoring host needs no client secret.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file (pass --config PATH, set {ENV_CONFIG}, "
            f"or copy config.example.toml to ./{DEFAULT_FILE})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path=path, environ=environ, secrets=secrets)


def parse_config(
    raw: Mapping[str, Any],
    *,
    path: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    secrets: bool = True,
) -> Config:
    """Validate a configuration already parsed from TOML."""
    return _Parser(path, environ, secrets=secrets).parse(raw)


class _Parser:
    """Holds the file's context (its folder, the environment) while one configuration is checked."""

    TOP_KEYS = ("database", "graph", "fetch", "auth", "tenants_file", "tenants")
    TENANT_KEYS = ("tenant_id", "name", "enabled", "auth")
    AUTH_KEYS = tuple(f.name for f in dataclasses.fields(AuthConfig))

    def __init__(self, path: Path | None, environ: Mapping[str, str], *, secrets: bool = True) -> None:
        self.path = path
        self.resolve_secrets = secrets
        self.base = path.resolve().parent if path else Path.cwd()
        self.environ = environ
        self.warnings: list[str] = []
        self._secrets: dict[str, Secret] = {}

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path or 'configuration'}: {message}")

    def parse(self, raw: Mapping[str, Any]) -> Config:
        self.check_keys(raw, self.TOP_KEYS, "")
        database = self.database(self.table(raw, "database"))
        graph = self.graph(self.table(raw, "graph"))
        fetch = self.fetch(self.table(raw, "fetch"))
        auth_raw = self.table(raw, "auth")
        self.check_keys(auth_raw, self.AUTH_KEYS, "[auth] ")
        tenants = self.tenants(raw, auth_raw)
        auth = self.auth(auth_raw, where="[auth] ", required=not tenants)
        return Config(database, graph, fetch, auth, tenants, self.path, tuple(self.warnings))

    # -- generic checks

    def table(self, raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"[{key}] must be a table, got {type(value).__name__}")
        return value

    def check_keys(self, table: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
                raise self.fail(f"{where}unknown key {key!r}{hint}")

    def section(self, cls: type[Any], table: Mapping[str, Any], name: str) -> dict[str, Any]:
        """Check a plain section against the fields of its dataclass: known keys, right types."""
        hints = typing.get_type_hints(cls)
        names = tuple(f.name for f in dataclasses.fields(cls))
        self.check_keys(table, names, f"[{name}] ")
        values: dict[str, Any] = {}
        for key, value in table.items():
            values[key] = self.typed(value, hints[key], f"[{name}] {key}", secret=key in SECRET_KEYS)
        return values

    def typed(self, value: Any, hint: Any, where: str, *, secret: bool = False) -> Any:
        kinds = typing.get_args(hint) or (hint,)
        # A secret given with the wrong type is still a secret: name its type, never its value.
        got = type(value).__name__ if secret else repr(value)
        if bool in kinds:
            if isinstance(value, bool):
                return value
            raise self.fail(f"{where} must be true or false, got {got}")
        if isinstance(value, bool):
            raise self.fail(f"{where} must be {self.describe(kinds)}, got {got}")
        if int in kinds and isinstance(value, int):
            return value
        if float in kinds and isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise self.fail(f"{where} must be a finite number, got {got}")
            return float(value)
        if (str in kinds or Path in kinds or Secret in kinds) and isinstance(value, str):
            return value
        raise self.fail(f"{where} must be {self.describe(kinds)}, got {got}")

    @staticmethod
    def describe(kinds: tuple[Any, ...]) -> str:
        if int in kinds:
            return "an integer"
        if float in kinds:
            return "a number"
        return "a string"

    def resolve_path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    def positive(self, value: float, where: str, *, upper: float | None = None, why: str = "") -> None:
        if value < 1 or (upper is not None and value > upper):
            bound = f"between 1 and {upper:g}" if upper is not None else "at least 1"
            raise self.fail(f"{where} must be {bound}{why}, got {value:g}")

    # -- sections

    def database(self, table: Mapping[str, Any]) -> DatabaseConfig:
        values = self.section(DatabaseConfig, table, "database")
        if "url" in values:
            values["url"] = self.database_url(values["url"])
        else:
            values["url"] = self.database_url(DatabaseConfig.url)
        if values.get("busy_timeout_seconds", 1) < 0:
            raise self.fail("[database] busy_timeout_seconds must not be negative")
        return DatabaseConfig(**values)

    def database_url(self, value: str) -> str:
        if value.startswith(("env:", "file:")):
            value = self.secret(value, "[database] url", always=True).reveal()
        try:
            url = make_url(value)
            url.port  # noqa: B018 - parsing the port is what raises on "host:54x2"
        except (ArgumentError, ValueError):
            raise self.fail(
                "[database] url is not a database URL (sqlite+aiosqlite:///file.db or "
                "postgresql+asyncpg://user@host/db)"
            ) from None
        if url.drivername == "sqlite":
            url = url.set(drivername="sqlite+aiosqlite")
        elif url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
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

    def graph(self, table: Mapping[str, Any]) -> GraphConfig:
        values = self.section(GraphConfig, table, "graph")
        cloud_name = values.get("cloud", "global")
        cloud = CLOUDS.get(cloud_name)
        if cloud is None:
            raise self.fail(f"[graph] cloud must be one of {', '.join(CLOUDS)}, got {cloud_name!r}")
        if not cloud.secure_score:
            raise self.fail(
                f"[graph] cloud = {cloud_name!r}: Microsoft Graph operated by 21Vianet does not "
                "offer the secureScores API, so there is nothing to fetch there"
            )
        base_url = values.get("base_url", cloud.graph).rstrip("/")
        authority = values.get("authority_host", cloud.authority).rstrip("/")
        for key, url in (("base_url", base_url), ("authority_host", authority)):
            if not re.match(r"^https://[^/\s]+", url):
                raise self.fail(f"[graph] {key} must be an https:// URL, got {url!r}")
        scope = values.get("scope") or default_scope(base_url)
        ca_bundle = self.resolve_path(values["ca_bundle"]) if "ca_bundle" in values else None
        if ca_bundle is not None and not ca_bundle.is_file():
            raise self.fail(f"[graph] ca_bundle: {ca_bundle} is not a readable file")
        timeout = values.get("timeout_seconds", GraphConfig.timeout_seconds)
        if timeout <= 0:
            raise self.fail(f"[graph] timeout_seconds must be positive, got {timeout:g}")
        max_bytes = values.get("max_response_bytes", GraphConfig.max_response_bytes)
        self.positive(max_bytes, "[graph] max_response_bytes")
        proxy = self.proxy(values["proxy"]) if "proxy" in values else None
        return GraphConfig(cloud_name, base_url, authority, scope, ca_bundle, timeout, max_bytes, proxy)

    def proxy(self, value: str) -> Secret:
        """An HTTP proxy for Graph and Entra ID alike; it may carry a password, so it is a secret."""
        if value.startswith(("env:", "file:")):
            secret = self.secret(value, "[graph] proxy")
        else:
            secret = Secret("[graph] proxy", value)
        url = secret.reveal()
        if url and not re.match(r"^https?://[^/\s@]*@?[^/\s@]+(:\d+)?/?$", url):
            raise self.fail("[graph] proxy must be an http:// or https:// URL such as http://proxy.example:3128")
        return secret

    def fetch(self, table: Mapping[str, Any]) -> FetchConfig:
        config = FetchConfig(**self.section(FetchConfig, table, "fetch"))
        self.positive(config.concurrency, "[fetch] concurrency")
        self.positive(
            config.per_tenant_concurrency,
            "[fetch] per_tenant_concurrency",
            upper=GRAPH_MAX_PER_TENANT_CONCURRENCY,
            why=" (Graph allows 4 concurrent secureScore requests per app per tenant)",
        )
        self.positive(
            config.per_tenant_rate,
            "[fetch] per_tenant_rate",
            upper=GRAPH_MAX_PER_TENANT_RATE,
            why=" requests a minute (Graph's per-tenant limit)",
        )
        self.positive(
            config.history_days, "[fetch] history_days", upper=GRAPH_HISTORY_DAYS, why=" (Graph keeps 90 days)"
        )
        self.positive(config.max_attempts, "[fetch] max_attempts")
        if config.max_retry_wait_seconds < 0:
            raise self.fail("[fetch] max_retry_wait_seconds must not be negative")
        return config

    # -- auth and tenants

    def auth(self, table: Mapping[str, Any], *, where: str, required: bool = True) -> AuthConfig:
        """Resolve one effective auth table; `where` prefixes each key in errors ("[auth] ", "tenant X: auth.")."""
        hints = {
            "method": str,
            "client_id": str,
            "client_secret": str,
            "certificate_path": str,
            "certificate_password": str,
            "token_file": str,
        }
        values = {k: self.typed(v, hints[k], f"{where}{k}", secret=k in SECRET_KEYS) for k, v in table.items()}
        method = values.get("method", "client_secret")
        if method not in AUTH_METHODS:
            raise self.fail(f"{where}method must be one of {', '.join(AUTH_METHODS)}, got {method!r}")
        client_id = values.get("client_id")
        if client_id is not None and not GUID.match(client_id):
            raise self.fail(f"{where}client_id {client_id!r} is not a GUID")
        if not required:
            return AuthConfig(method=method, client_id=client_id and client_id.lower())
        if client_id is None and method != "managed_identity":
            raise self.fail(f"{where}client_id is required for method {method!r}")
        return AuthConfig(
            method=method,
            client_id=client_id.lower() if client_id else None,
            client_secret=self.required_secret(values, "client_secret", method == "client_secret", where),
            certificate_path=self.certificate(values, method, where),
            certificate_password=(
                self.optional_secret(values, "certificate_password", where) if method == "certificate" else None
            ),
            token_file=self.resolve_path(values["token_file"]) if "token_file" in values else None,
        )

    def required_secret(self, values: Mapping[str, str], key: str, needed: bool, where: str) -> Secret | None:
        """A secret the method uses; one it does not use (say, inherited from [auth]) is not resolved."""
        if not needed:
            return None
        if key not in values:
            raise self.fail(f"{where}{key} is required for this auth method")
        return self.secret(values[key], f"{where}{key}")

    def optional_secret(self, values: Mapping[str, str], key: str, where: str) -> Secret | None:
        return self.secret(values[key], f"{where}{key}") if key in values else None

    def certificate(self, values: Mapping[str, str], method: str, where: str) -> Path | None:
        if "certificate_path" not in values:
            if method == "certificate":
                raise self.fail(f"{where}certificate_path is required for method 'certificate'")
            return None
        path = self.resolve_path(values["certificate_path"])
        if not os.access(path, os.R_OK) or not path.is_file():
            raise self.fail(f"{where}certificate_path: cannot read {path}")
        return path

    def secret(self, reference: str, where: str, *, always: bool = False) -> Secret:
        """Resolve a reference; without `resolve_secrets` only those marked `always` (the database URL)."""
        if reference in self._secrets:
            return self._secrets[reference]
        if not (self.resolve_secrets or always) and reference.startswith(("env:", "file:")):
            return Secret(reference, "")
        if reference.startswith("env:"):
            name = reference[4:]
            if not self.environ.get(name):
                raise self.fail(f"{where} = {reference!r}: environment variable {name} is not set")
            secret = Secret(reference, self.environ[name])
        elif reference.startswith("file:"):
            file = self.resolve_path(reference[5:])
            try:
                value = file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise self.fail(f"{where} = {reference!r}: cannot read {file}: {reason}") from None
            if not value:
                raise self.fail(f"{where} = {reference!r}: {file} is empty")
            secret = Secret(reference, value)
        else:
            if not reference:
                raise self.fail(f"{where} is empty")
            self.warnings.append(f"{where} holds a literal secret; prefer env:NAME or file:PATH")
            secret = Secret("literal value", reference)
        self._secrets[reference] = secret
        return secret

    def tenants(self, raw: Mapping[str, Any], auth_raw: Mapping[str, Any]) -> tuple[TenantConfig, ...]:
        entries = list(self.tenant_entries(raw))
        seen: dict[str, str] = {}
        tenants = []
        for where, entry in entries:
            tenant = self.tenant(entry, auth_raw, where)
            if tenant.tenant_id in seen:
                first = seen[tenant.tenant_id]
                raise self.fail(f"{where}: tenant {tenant.tenant_id} is listed twice (first at {first})")
            seen[tenant.tenant_id] = where
            tenants.append(tenant)
        return tuple(tenants)

    def tenant_entries(self, raw: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        listed = raw.get("tenants", [])
        if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
            raise self.fail("tenants must be an array of tables: [[tenants]]")
        for i, entry in enumerate(listed, 1):
            yield f"[[tenants]] #{i}", entry
        if "tenants_file" in raw:
            if not isinstance(raw["tenants_file"], str):
                raise self.fail("tenants_file must be a string")
            yield from self.tenants_file(self.resolve_path(raw["tenants_file"]))

    def tenants_file(self, path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise self.fail(f"tenants_file: cannot read {path}: {reason}") from None
        reader = csv.DictReader(text.splitlines())
        columns = [c.strip() for c in reader.fieldnames or []]
        if "tenant_id" not in columns:
            raise ConfigError(f"{path}: the first line must name the columns, with tenant_id (and name)")
        for extra in set(columns) - {"tenant_id", "name", "enabled"}:
            raise ConfigError(f"{path}: unknown column {extra!r} (columns: tenant_id, name, enabled)")
        for row in reader:
            entry: dict[str, Any] = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if not any(entry.values()):
                continue
            where = f"{path}:{reader.line_num}"
            if "enabled" in entry:
                flag = entry["enabled"].lower()
                if flag not in ENABLED_WORDS:
                    raise ConfigError(
                        f"{where}: enabled must be true or false (or yes/no, 1/0), got {entry['enabled']!r}"
                    )
                entry["enabled"] = ENABLED_WORDS[flag]
            yield where, entry

    def tenant(self, entry: Mapping[str, Any], auth_raw: Mapping[str, Any], where: str) -> TenantConfig:
        self.check_keys(entry, self.TENANT_KEYS, f"{where}: ")
        tenant_id = entry.get("tenant_id")
        if not isinstance(tenant_id, str) or not GUID.match(tenant_id):
            raise self.fail(f"{where}: tenant_id {tenant_id!r} is not a GUID")
        tenant_id = tenant_id.lower()
        name = entry.get("name", "")
        if not isinstance(name, str):
            raise self.fail(f"{where}: tenant {tenant_id}: name must be a string")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.fail(f"{where}: tenant {tenant_id}: enabled must be true or false")
        override = entry.get("auth", {})
        if not isinstance(override, dict):
            raise self.fail(f"{where}: tenant {tenant_id}: auth must be a table")
        self.check_keys(override, self.AUTH_KEYS, f"tenant {tenant_id}: [tenants.auth] ")
        label = f"tenant {tenant_id}" + (f" ({name})" if name else "") + ": auth."
        auth = self.auth({**auth_raw, **override}, where=label)
        return TenantConfig(tenant_id, name, auth, enabled)


def make_url_safe(url: str) -> str:
    """A URL with any password replaced, for showing."""
    return hide_password(url)


def default_scope(base_url: str) -> str:
    """Graph's `.default` scope for a base URL: its scheme and host."""
    match = re.match(r"^(https://[^/]+)", base_url)
    origin = match.group(1) if match else base_url
    return f"{origin}/.default"


# ----------------------------------------------------------------------------------------------- showing


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, secrets shown by reference only."""

    def plain(value: Any) -> Any:
        if isinstance(value, Secret):
            return str(value)
        if isinstance(value, Path):
            return str(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    data = plain(config)
    data["database"]["url"] = config.database.display_url
    data["graph"]["proxy"] = config.graph.display_proxy
    data["path"] = str(config.path) if config.path else None
    return typing.cast(dict[str, Any], data)
