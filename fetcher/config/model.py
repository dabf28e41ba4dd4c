"""The validated configuration: frozen dataclasses (`Config` and its parts) that the rest of the package
uses; code and tests may build them directly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlalchemy.engine import make_url

from fetcher.config.constants import DEFAULT_REFRESH_HOURS, DELEGATED_METHODS
from fetcher.config.secret import Secret
from fetcher.text import hide_password


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

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file's path (None: PostgreSQL, in memory, or a `file:` URI)."""
        url = make_url(self.url)
        path = url.database
        if url.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
            return None
        return Path(path)

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


def make_url_safe(url: str) -> str:
    """A URL with any password replaced, for showing."""
    return hide_password(url)
