"""Configuration: a TOML file read into frozen dataclasses, validated at load.

Loading is two steps. First the file's *shape* (which tables and keys exist, their types, their bounds)
is declared once as pydantic models (`_File` and the `_*Table` classes below: strict, frozen, unknown
keys forbidden) and checked in one `model_validate` call. Then the *domain* checks this module writes by
hand: GUIDs, clouds and URLs, secret references (`env:NAME`, `file:PATH`, literal), the CSV tenants file,
and each tenant's effective `[auth]`. The result is the frozen dataclasses (`Config` and its parts) that
the rest of the package uses; they are plain dataclasses, so code and tests may build them directly.

Why pydantic v2 and not msgspec: pydantic reports each problem as data (`type` such as
`extra_forbidden` or `greater_than_equal`, `loc` as a tuple of keys, `input`, and `ctx` with the bound),
so every message here is built from those facts in our one-line form (the file, the section or tenant,
the key, the closest valid key, the bound and why it is there) and a secret's value is never echoed.
msgspec reports a problem as an English sentence with a `$.path` inside; getting back the key, the
bound or the value would mean parsing text that its releases may reword. msgspec is faster, but a
configuration is read once per command, in milliseconds either way.

Every problem becomes one `ConfigError` line (exit 2) that names the file, the section or tenant and
the key at fault. A value written in `[auth]` is reported against `[auth]`, not against the first tenant
that inherits it. Secrets are given as `env:NAME` or `file:PATH` references (a literal works, with a
warning), resolved here once, and carried in `Secret`, whose text form is always redacted. A `file:`
reference must name a regular file of at most `SECRET_MAX_BYTES` (a FIFO, a device or a folder is
refused before it is read); a certificate may be up to `CERTIFICATE_MAX_BYTES`.

What a command needs is its `Purpose`: `FETCH` (run, backfill, get, config check) resolves every
secret, requires a complete `[auth]` for each tenant and at least one enabled tenant; `DATABASE`
(status, report, rebuild, migrate, and the commands that only read the database) resolves `[database]`
alone and checks `[auth]` for form only, so a reporting host needs no client secret.

Adding a section: declare its keys on a `_Table` subclass (types, defaults, bounds with a
`description` that says why), add it to `_File`, add its frozen dataclass with the same field names,
and build that dataclass in `_Loader.load` (with any domain checks beside it).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fetcher.errors import ConfigError
from fetcher.text import hide_password

DEFAULT_FILE = "fetcher.toml"
ENV_CONFIG = "FETCHER_CONFIG"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_KEYS = frozenset({"url", "client_secret", "certificate_password", "proxy", "password", "people_salt"})
APP_ONLY_METHODS = ("client_secret", "certificate", "workload_identity", "managed_identity")
# A person signs in: the token carries the user's rights; for one-off work at a terminal, never for cron.
DELEGATED_METHODS = ("device_code", "azure_cli")
AUTH_METHODS = APP_ONLY_METHODS + DELEGATED_METHODS
# device_code's default public client: Microsoft Graph Command Line Tools (the app Microsoft Graph PowerShell
# signs in with), a first-party public client that may ask for any Graph delegated permission.
DEFAULT_PUBLIC_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
TOKEN_CACHE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
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
TENANT_NAME_MAX_CHARS = 256  # tenants.name is varchar(256); PostgreSQL refuses longer, SQLite would not
TENANT_COLUMNS = ("tenant_id", "name", "enabled", "source_status")  # source_status: `fetcher tenants discover`
GRAPH_MAX_PER_TENANT_CONCURRENCY = 4
GRAPH_MAX_PER_TENANT_RATE = 150
GRAPH_HISTORY_DAYS = 90
MAX_SHARDS = 1000  # `--shard K/N`, `[fetch] shards`: more would be more processes than any database takes
SECRET_MAX_BYTES = 8 * 1024  # a client secret is about 40 bytes, a database URL rarely 500
CERTIFICATE_MAX_BYTES = 1024 * 1024  # a PEM or PKCS#12 file with its chain is a few KB
CA_BUNDLE_MAX_BYTES = 16 * 1024 * 1024  # a whole system bundle is about 250 KB
TENANTS_FILE_MAX_BYTES = 64 * 1024 * 1024  # about 600,000 tenants


StrEnumT = TypeVar("StrEnumT", bound=StrEnum)


class Purpose(StrEnum):
    """What the loaded configuration will be used for, and so what it must hold."""

    FETCH = "fetch"  # talks to Entra ID and Graph: every secret, a complete [auth], an enabled tenant
    DATABASE = "database"  # reads or maintains the database: [database] and the tenants' names only
    ALERTS = "alerts"  # `fetcher alerts`: what DATABASE reads, and the secrets of the [alerts] channels
    DISCOVER = "discover"  # talks to the partner tenant: every secret, [partner]; no tenant needed yet

    @property
    def talks_to_graph(self) -> bool:
        return self in (Purpose.FETCH, Purpose.DISCOVER)


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
    store_people: bool = True  # false: people named by control state updates are stored as keyed hashes
    people_salt: Secret | None = field(default=None, repr=False)  # the key of those hashes (a secret)
    partition: str = "none"  # "monthly": `fetcher migrate` partitions the day tables by month (PostgreSQL)

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
    control_profiles: bool = True  # also fetch secureScoreControlProfiles
    profiles_max_age_hours: float = 24.0  # `run` fetches a tenant's profiles once they are this old
    per_sign_in_concurrency: int = 1  # tenants fetched at once with one person's sign-in (device_code, azure_cli)
    shards: int = 1  # how many shards JOB_COMPLETION_INDEX counts from (a Kubernetes Indexed Job's completions)


@dataclass(frozen=True)
class AuthConfig:
    """`[auth]` or a tenant's `[tenants.auth]`: how to get a token."""

    method: str = "client_secret"
    client_id: str | None = None
    client_secret: Secret | None = None
    certificate_path: Path | None = None
    certificate_password: Secret | None = None
    token_file: Path | None = None
    token_cache: str | None = None  # device_code: the persistent token cache's name (None: memory only)
    allow_unencrypted_storage: bool = False  # device_code: a plain file (mode 0600) where encryption is impossible

    @property
    def delegated(self) -> bool:
        """A person signs in (device_code, azure_cli): the token carries that user's rights."""
        return self.method in DELEGATED_METHODS


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


class RuleKind(StrEnum):
    """What an alert rule watches (README: Alerts)."""

    SCORE_DROP = "score_drop"  # percent fell by `points` percentage points or more over `days` days
    BELOW_PERCENT = "below_percent"  # percent below `percent`
    TENANT_FAILING = "tenant_failing"  # the tenant's last `runs` runs failed
    STALE = "stale"  # newest stored day older than `hours` hours


class ChannelType(StrEnum):
    """Where an alert channel delivers."""

    TEAMS = "teams"  # a Teams Workflows webhook ("When a Teams webhook request is received"): an Adaptive Card
    SLACK = "slack"  # a Slack incoming webhook: a message with blocks
    WEBHOOK = "webhook"  # any HTTP endpoint: the versioned JSON document (README: Alerts)
    EMAIL = "email"  # SMTP with STARTTLS and login


@dataclass(frozen=True)
class AlertRule:
    """One `[[alerts.rules]]`. Only the parameters of its kind are read; no `tenants` means every enabled tenant."""

    name: str
    kind: RuleKind
    channels: tuple[str, ...]
    points: float = 5.0
    days: int = 7
    percent: float = 50.0
    runs: int = 3
    hours: float = 48.0
    tenants: tuple[str, ...] = ()
    send_resolved: bool = True

    def applies_to(self, tenant_id: str) -> bool:
        return not self.tenants or tenant_id in self.tenants


@dataclass(frozen=True)
class AlertChannel:
    """One `[[alerts.channels]]`: webhook types use `url` (a secret); email the SMTP keys (`from` is `sender`)."""

    name: str
    type: ChannelType
    url: Secret | None = None
    smtp_host: str = ""
    smtp_port: int = 587
    starttls: bool = True
    username: str | None = None
    password: Secret | None = None
    sender: str = ""
    to: tuple[str, ...] = ()
    ca_bundle: Path | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values this channel holds, for the log redactor."""
        return tuple(s.reveal() for s in (self.url, self.password) if s is not None and s.reveal())


@dataclass(frozen=True)
class AlertsConfig:
    """`[alerts]`: rules, channels, and how delivery behaves."""

    rules: tuple[AlertRule, ...] = ()
    channels: tuple[AlertChannel, ...] = ()
    repeat_hours: float = 24.0
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    max_retry_wait_seconds: float = 60.0
    top_controls: int = 5

    def channel(self, name: str) -> AlertChannel:
        return next(c for c in self.channels if c.name == name)


PARTNER_SOURCES = ("gdap", "contracts", "both")
TENANTS_SOURCES = ("config", "partner")
DEFAULT_REFRESH_HOURS = 24.0


@dataclass(frozen=True)
class PartnerConfig:
    """`[partner]`: the partner's own tenant, where its customers are discovered (`fetcher tenants`).

    `auth` is `[auth]` resolved for the partner tenant; `source` is "gdap", "contracts" or "both";
    `refresh_hours` is how long the customer list discovered by `run` and `backfill` is reused when
    `tenants_source = "partner"` (0: discover at every run).
    """

    tenant_id: str
    auth: AuthConfig
    source: str = "gdap"
    refresh_hours: float = DEFAULT_REFRESH_HOURS


@dataclass(frozen=True)
class Config:
    """The whole, validated configuration.

    `auth` is `[auth]` as written (secrets by reference; each tenant's `auth` is the resolved one).
    `tenants_source` is "config" (the tenants are `[[tenants]]` and `tenants_file`) or "partner" (`run`
    and `backfill` fetch the customers discovered at `[partner]`; the configured tenants then only name,
    disable or give their own `[tenants.auth]` to discovered customers).
    """

    database: DatabaseConfig
    graph: GraphConfig
    fetch: FetchConfig
    auth: AuthConfig
    tenants: tuple[TenantConfig, ...]
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    partner: PartnerConfig | None = None
    tenants_file: Path | None = None
    tenants_source: str = "config"

    @property
    def enabled_tenants(self) -> tuple[TenantConfig, ...]:
        return tuple(t for t in self.tenants if t.enabled)

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        wanted = tenant_id.lower()
        return next((t for t in self.tenants if t.tenant_id == wanted), None)


# ------------------------------------------------------------------------------------ the file's shape


class _Table(BaseModel):
    """A TOML table: exact types (no "16" for 16), no unknown keys, finite numbers."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _DatabaseTable(_Table):
    url: str = DatabaseConfig.url
    keep_raw: bool = DatabaseConfig.keep_raw
    busy_timeout_seconds: Annotated[float, Field(ge=0)] = DatabaseConfig.busy_timeout_seconds
    store_people: bool = DatabaseConfig.store_people
    people_salt: str | None = None
    partition: Literal["none", "monthly"] = "none"


class _GraphTable(_Table):
    cloud: str = GraphConfig.cloud
    base_url: str | None = None
    authority_host: str | None = None
    scope: str | None = None
    ca_bundle: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = GraphConfig.timeout_seconds
    max_response_bytes: Annotated[int, Field(ge=1)] = GraphConfig.max_response_bytes
    proxy: str | None = None


class _FetchTable(_Table):
    concurrency: Annotated[int, Field(ge=1)] = FetchConfig.concurrency
    per_tenant_concurrency: Annotated[
        int,
        Field(
            ge=1,
            le=GRAPH_MAX_PER_TENANT_CONCURRENCY,
            description="(Graph allows 4 concurrent secureScore requests per app per tenant)",
        ),
    ] = FetchConfig.per_tenant_concurrency
    per_tenant_rate: Annotated[
        int, Field(ge=1, le=GRAPH_MAX_PER_TENANT_RATE, description="requests a minute (Graph's per-tenant limit)")
    ] = FetchConfig.per_tenant_rate
    history_days: Annotated[int, Field(ge=1, le=GRAPH_HISTORY_DAYS, description="(Graph keeps 90 days)")] = (
        FetchConfig.history_days
    )
    max_attempts: Annotated[int, Field(ge=1)] = FetchConfig.max_attempts
    max_retry_wait_seconds: Annotated[float, Field(ge=0)] = FetchConfig.max_retry_wait_seconds
    control_profiles: bool = FetchConfig.control_profiles
    profiles_max_age_hours: Annotated[float, Field(gt=0)] = FetchConfig.profiles_max_age_hours
    per_sign_in_concurrency: Annotated[int, Field(ge=1)] = FetchConfig.per_sign_in_concurrency
    shards: Annotated[int, Field(ge=1, le=MAX_SHARDS, description="(an Indexed Job's completions)")] = (
        FetchConfig.shards
    )


class _AuthTable(_Table):
    """`[auth]` or `[tenants.auth]`: every key optional, so a tenant's table says what it overrides."""

    method: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_password: str | None = None
    token_file: str | None = None
    token_cache: str | None = None
    allow_unencrypted_storage: bool | None = None


class _TenantTable(_Table):
    tenant_id: str | None = None
    name: str = ""
    enabled: bool = True
    auth: _AuthTable = _AuthTable()


class _AlertRuleTable(_Table):
    name: str
    kind: str
    channels: list[str]
    points: Annotated[float, Field(ge=0, le=100, description="(percentage points)")] = AlertRule.points
    days: Annotated[int, Field(ge=1)] = AlertRule.days
    percent: Annotated[float, Field(ge=0, le=100)] = AlertRule.percent
    runs: Annotated[int, Field(ge=1)] = AlertRule.runs
    hours: Annotated[float, Field(gt=0)] = AlertRule.hours
    tenants: list[str] = Field(default_factory=list)
    send_resolved: bool = AlertRule.send_resolved


class _AlertChannelTable(_Table):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=False)

    name: str
    type: str
    url: str | None = None
    smtp_host: str | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = AlertChannel.smtp_port
    starttls: bool = AlertChannel.starttls
    username: str | None = None
    password: str | None = None
    sender: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    ca_bundle: str | None = None


class _AlertsTable(_Table):
    repeat_hours: Annotated[float, Field(gt=0)] = AlertsConfig.repeat_hours
    timeout_seconds: Annotated[float, Field(gt=0)] = AlertsConfig.timeout_seconds
    max_attempts: Annotated[int, Field(ge=1, le=10)] = AlertsConfig.max_attempts
    max_retry_wait_seconds: Annotated[float, Field(ge=0)] = AlertsConfig.max_retry_wait_seconds
    top_controls: Annotated[int, Field(ge=0, le=50)] = AlertsConfig.top_controls
    rules: list[_AlertRuleTable] = Field(default_factory=list)
    channels: list[_AlertChannelTable] = Field(default_factory=list)


class _PartnerTable(_Table):
    tenant_id: str | None = None
    source: str = "gdap"
    refresh_hours: Annotated[
        float, Field(ge=0, description="(hours the discovered customer list is reused; 0: discover every run)")
    ] = DEFAULT_REFRESH_HOURS


class _File(_Table):
    database: _DatabaseTable = _DatabaseTable()
    partner: _PartnerTable | None = None
    graph: _GraphTable = _GraphTable()
    fetch: _FetchTable = _FetchTable()
    auth: _AuthTable = _AuthTable()
    tenants_file: str | None = None
    tenants_source: str = "config"
    tenants: list[_TenantTable] = Field(default_factory=list)
    alerts: _AlertsTable = _AlertsTable()


TOP_KEYS = tuple(_File.model_fields)


# --------------------------------------------------------------------------------------------- loading


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
        file = _File.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{where}: {_describe_errors(error.errors(include_url=False), raw)}") from None
    return _Loader(path, environ, purpose).load(file)


# ------------------------------------------------------------------------------- shape errors, one line


def _describe_errors(errors: Sequence[ErrorDetails], raw: Mapping[str, Any]) -> str:
    """The first problem pydantic found, in our words; the count of any others."""
    message = _describe(errors[0], raw)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message


def _describe(error: ErrorDetails, raw: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{_where(loc[:-1], raw)}unknown key {loc[-1]!r}{_closest(str(loc[-1]), _model_at(loc[:-1]))}"
    if loc[:1] == ("tenants",) and len(loc) <= 2 and kind in ("list_type", "model_type"):
        return "tenants must be an array of tables: [[tenants]]"
    key = str(loc[-1])
    where = _where(loc[:-1], raw) + key
    if kind == "missing":
        return f"{where} is required"
    if kind == "model_type":
        table = "[" + ".".join(str(k) for k in loc) + "]" if len(loc) == 1 else where
        return f"{table} must be a table, got {type(error['input']).__name__}"
    got = type(error["input"]).__name__ if key in SECRET_KEYS else repr(error["input"])
    return f"{where} must {_expected(error, _model_at(loc[:-1]), key)}, got {got}"


def _expected(error: ErrorDetails, model: type[_Table], key: str) -> str:
    """What a key must be, from pydantic's error type and the bounds (and why) declared on the field."""
    simple = {
        "int_type": "be an integer",
        "float_type": "be a number",
        "bool_type": "be true or false",
        "string_type": "be a string",
        "finite_number": "be a finite number",
    }
    if error["type"] in simple:
        return simple[error["type"]]
    info = model.model_fields[key]
    bounds = {name: getattr(m, name) for m in info.metadata for name in ("ge", "le", "gt") if hasattr(m, name)}
    why = f" {info.description}" if info.description else ""
    if "ge" in bounds and "le" in bounds:
        return f"be between {bounds['ge']:g} and {bounds['le']:g}{why}"
    if bounds.get("gt") == 0:
        return "be positive"
    if bounds.get("ge") == 0:
        return "not be negative"
    if "ge" in bounds:
        return f"be at least {bounds['ge']:g}{why}"
    return "be " + error["msg"].removeprefix("Input should be ").lower()


def _where(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    """The prefix that names a table: "", "[fetch] ", "tenant X (Name): ", "tenant X: [tenants.auth] "."""
    if not loc:
        return ""
    if loc[0] == "alerts" and len(loc) > 2 and isinstance(loc[2], int):
        entry = raw["alerts"][loc[1]][loc[2]]
        name = entry.get("name") if isinstance(entry, dict) else None
        return f"[[alerts.{loc[1]}]] " + (f"{name!r}: " if isinstance(name, str) and name else f"#{loc[2] + 1}: ")
    if loc[0] != "tenants":
        return f"[{'.'.join(str(k) for k in loc)}] "
    index = int(loc[1])
    entry = raw["tenants"][index]
    label = _tenant_label(entry.get("tenant_id"), entry.get("name"), f"[[tenants]] #{index + 1}")
    return f"{label}: [tenants.auth] " if len(loc) > 2 else f"{label}: "


def _tenant_label(tenant_id: Any, name: Any, fallback: str) -> str:
    """`tenant <id> (<name>)` once the id is a GUID, else where the entry is."""
    if not (isinstance(tenant_id, str) and GUID.match(tenant_id)):
        return fallback
    return f"tenant {tenant_id.lower()}" + (f" ({name})" if isinstance(name, str) and name else "")


def _model_at(loc: tuple[int | str, ...]) -> type[_Table]:
    """The table model at a location of `_File`."""
    model: type[_Table] = _File
    for key in loc:
        if isinstance(key, int):
            continue
        annotation = model.model_fields[key].annotation
        if typing.get_origin(annotation) in (list, types.UnionType):  # list[_X] or an optional table, _X | None
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        model = typing.cast(type[_Table], annotation)
    return model


def _closest(key: str, model: type[_Table]) -> str:
    valid = tuple(info.alias or name for name, info in model.model_fields.items())
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"


# -------------------------------------------------------------------------------------- domain checks


@dataclass(frozen=True)
class _Entry:
    """One tenant as listed, before its auth is resolved; `where` is its place in the file(s)."""

    where: str
    tenant_id: str
    name: str
    enabled: bool
    auth: _AuthTable

    @property
    def label(self) -> str:
        return _tenant_label(self.tenant_id, self.name, self.where)


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

    def load(self, file: _File) -> Config:
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

    def tenants_source(self, file: _File) -> bool:
        """True when the tenants to fetch are discovered at the partner (`tenants_source = "partner"`)."""
        if file.tenants_source not in TENANTS_SOURCES:
            raise self.fail(f"tenants_source must be one of {', '.join(TENANTS_SOURCES)}, got {file.tenants_source!r}")
        if file.tenants_source == "partner" and file.partner is None:
            raise self.fail(
                'tenants_source = "partner" needs a [partner] table with the partner\'s own tenant_id '
                "(where the customers are discovered)"
            )
        return file.tenants_source == "partner"

    def partner(self, table: _PartnerTable | None, shared: _AuthTable) -> PartnerConfig | None:
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
        auth = self.tenant_auth(_Entry("[partner]", tenant_id, "partner", True, _AuthTable()), shared)
        return PartnerConfig(tenant_id, auth, table.source, table.refresh_hours)

    def resolve_path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base / p

    # -- [database] and [graph]

    def database(self, table: _DatabaseTable) -> DatabaseConfig:
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

    def people_salt(self, table: _DatabaseTable) -> Secret | None:
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

    def graph(self, table: _GraphTable) -> GraphConfig:
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

    def listed_tenants(self, tables: Sequence[_TenantTable]) -> Iterator[_Entry]:
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
        for line, row in _csv_rows(path, text):
            where = f"{path}:{line}"
            tenant_id = self.guid(row.get("tenant_id", ""), where)
            # a customer `tenants discover --write` no longer found is kept in the file (and its history),
            # not fetched; with tenants_source = "partner" the database's list says who is gone
            gone = row.get("source_status", "").startswith("gone since")
            enabled = _enabled(row, where) and (discovered or not gone)
            yield _Entry(where, tenant_id, row.get("name", ""), enabled, _AuthTable())

    def tenants(self, entries: list[_Entry], shared: _AuthTable) -> tuple[TenantConfig, ...]:
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

    def tenant_auth(self, entry: _Entry, shared: _AuthTable) -> AuthConfig:
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

    def unresolved(self, own: _AuthTable, shared: _AuthTable) -> dict[str, Any]:
        """For Purpose.DATABASE: secrets by reference only, paths resolved but not opened."""
        merged = {**shared.model_dump(exclude_unset=True), **own.model_dump(exclude_unset=True)}
        values: dict[str, Any] = {}
        for key in ("client_secret", "certificate_password"):
            if key in merged:
                values[key] = _reference_only(merged[key])
        for key in ("certificate_path", "token_file"):
            if key in merged:
                values[key] = self.resolve_path(merged[key])
        values["token_cache"] = merged.get("token_cache")
        values["allow_unencrypted_storage"] = bool(merged.get("allow_unencrypted_storage"))
        return values

    def auth_as_written(self, table: _AuthTable) -> AuthConfig:
        """`[auth]` itself, for showing: its secrets by reference, never read here (device_code's default
        public client filled in, as each tenant's resolved auth has it)."""
        client_id = table.client_id.lower() if table.client_id else None
        if table.method == "device_code" and client_id is None:
            client_id = DEFAULT_PUBLIC_CLIENT_ID
        return AuthConfig(
            method=table.method or "client_secret",
            client_id=client_id,
            client_secret=_reference_only(table.client_secret) if table.client_secret is not None else None,
            certificate_path=self.resolve_path(table.certificate_path) if table.certificate_path else None,
            certificate_password=(
                _reference_only(table.certificate_password) if table.certificate_password is not None else None
            ),
            token_file=self.resolve_path(table.token_file) if table.token_file else None,
            token_cache=table.token_cache,
            allow_unencrypted_storage=bool(table.allow_unencrypted_storage),
        )

    # -- [alerts]

    def alerts(self, table: _AlertsTable, tenants: tuple[TenantConfig, ...]) -> AlertsConfig:
        """Rules and channels: names unique, kinds and types known, every rule's channels and tenants exist."""
        channels = tuple(self.alert_channel(c, n) for n, c in enumerate(table.channels, 1))
        _unique([c.name for c in channels], "[[alerts.channels]]", self.fail)
        known = {t.tenant_id for t in tenants}
        rules = tuple(self.alert_rule(r, n, {c.name for c in channels}, known) for n, r in enumerate(table.rules, 1))
        _unique([r.name for r in rules], "[[alerts.rules]]", self.fail)
        values = table.model_dump(exclude={"rules", "channels"})
        return AlertsConfig(rules=rules, channels=channels, **values)

    def alert_rule(self, table: _AlertRuleTable, number: int, channels: set[str], tenants: set[str]) -> AlertRule:
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

    def alert_channel(self, table: _AlertChannelTable, number: int) -> AlertChannel:
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

    def email_channel(self, table: _AlertChannelTable, where: str, ca_bundle: Path | None) -> AlertChannel:
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
        return _reference_only(value)

    def choice(self, kind: type[StrEnumT], value: str, where: str) -> StrEnumT:
        try:
            return kind(value)
        except ValueError:
            valid = ", ".join(k.value for k in kind)
            raise self.fail(f"{where} must be one of {valid}, got {value!r}") from None

    def note_channel_literals(self, table: _AlertsTable) -> None:
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
        problem = _file_problem(info, limit)
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

    def note_literals(self, file: _File) -> None:
        """Literal secrets written in the file, whether or not this purpose reads them."""
        tables = [("[auth] ", file.auth)]
        tables += [
            (f"{_tenant_label(t.tenant_id, t.name, f'[[tenants]] #{n}')}: [tenants.auth] ", t.auth)
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


def _reference_only(value: str) -> Secret:
    """A secret not read: an env:/file: reference keeps its name, a literal is never copied."""
    return Secret(value, "") if value.startswith(("env:", "file:")) else Secret("literal value", "")


def read_tenant_rows(path: Path) -> Iterator[tuple[str, str, bool, str]]:
    """(tenant_id, name, enabled, source_status) of each row of a CSV tenants file.

    Raises ConfigError naming the file and line of an unreadable or malformed row.
    """
    try:
        text = read_regular_file(path, TENANTS_FILE_MAX_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except FileProblem as problem:
        raise ConfigError(f"{path}: cannot read: {problem}") from None
    for line, row in _csv_rows(path, text):
        where = f"{path}:{line}"
        tenant_id = row.get("tenant_id", "")
        if not GUID.match(tenant_id):
            raise ConfigError(f"{where}: tenant_id {tenant_id!r} is not a GUID")
        yield tenant_id.lower(), row.get("name", ""), _enabled(row, where), row.get("source_status", "")


def _enabled(row: Mapping[str, str], where: str) -> bool:
    flag = row.get("enabled", "")
    if flag.lower() not in ENABLED_WORDS:
        raise ConfigError(f"{where}: enabled must be true or false (or yes/no, 1/0), got {flag!r}")
    return ENABLED_WORDS[flag.lower()]


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(first line, row) for each non-blank row; a malformed file is refused with the line it breaks at.

    `strict` makes the csv module raise on an unbalanced quote instead of swallowing the rest of the
    file into one field; the line given is where the broken row starts.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns = _csv_header(path, reader)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigError(f"{path}:{start}: not valid CSV ({_csv_reason(exc)})") from None
        if len(row) > len(columns):
            raise ConfigError(
                f"{path}:{start}: {len(row)} fields, but the header names {len(columns)} ({', '.join(columns)})"
            )
        if any(v.strip() for v in row):
            yield start, {c: v.strip() for c, v in zip(columns, row, strict=False)}
        start = reader.line_num + 1


def _csv_header(path: Path, reader: Any) -> list[str]:
    try:
        columns = [c.strip() for c in next(reader, [])]
    except csv.Error as exc:
        raise ConfigError(f"{path}:1: not valid CSV ({_csv_reason(exc)})") from None
    if "tenant_id" not in columns:
        raise ConfigError(f"{path}: the first line must name the columns, with tenant_id (and name)")
    for column in columns:
        if column not in TENANT_COLUMNS:
            raise ConfigError(f"{path}: unknown column {column!r} (columns: {', '.join(TENANT_COLUMNS)})")
        if columns.count(column) > 1:
            raise ConfigError(f"{path}: column {column!r} appears twice")
    return columns


def _csv_reason(exc: csv.Error) -> str:
    reason = str(exc)
    if "unexpected end of data" in reason:
        return 'a quoted field opened on this line is never closed: an unbalanced "'
    return reason


class FileProblem(Exception):
    """Why a referenced file was not read (its text is the reason, without the path)."""


def _file_problem(info: os.stat_result, limit: int) -> str | None:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in kinds if test(info.st_mode)), "not a regular file")
        return f"it is {kind}, not a regular file"
    if info.st_size > limit:
        return f"it is {info.st_size:,} bytes, more than the {limit:,} allowed here"
    return None


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; raises FileProblem otherwise.

    The file is opened without blocking (a FIFO would wait for a writer) and checked on the open
    descriptor, so a path swapped between a check and the read cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FileProblem(exc.strerror or str(exc)) from None
    try:
        problem = _file_problem(os.fstat(fd), limit)
        if problem:
            raise FileProblem(problem)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileProblem(f"it is more than the {limit:,} bytes allowed here")
    return data


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
