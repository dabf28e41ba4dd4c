"""The file's shape, declared once as pydantic models: strict types, no unknown keys, bounds with why.

Adding a section: declare its keys on a `Table` subclass (types, defaults, bounds with a `description`
that says why) and add it to `FileTable`; then its dataclass in `model` and its checks in `loader`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from fetcher.config.constants import (
    DEFAULT_REFRESH_HOURS,
    GRAPH_HISTORY_DAYS,
    GRAPH_MAX_PER_TENANT_CONCURRENCY,
    GRAPH_MAX_PER_TENANT_RATE,
    MAX_CONCURRENCY,
    MAX_SHARDS,
)
from fetcher.config.model import AlertChannel, AlertRule, AlertsConfig, DatabaseConfig, FetchConfig, GraphConfig


class Table(BaseModel):
    """A TOML table: exact types (no "16" for 16), no unknown keys, finite numbers."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class DatabaseTable(Table):
    url: str = DatabaseConfig.url
    keep_raw: bool = DatabaseConfig.keep_raw
    busy_timeout_seconds: Annotated[float, Field(ge=0)] = DatabaseConfig.busy_timeout_seconds
    store_people: bool = DatabaseConfig.store_people
    people_salt: str | None = None
    partition: Literal["none", "monthly"] = "none"


class GraphTable(Table):
    cloud: str = GraphConfig.cloud
    base_url: str | None = None
    authority_host: str | None = None
    scope: str | None = None
    ca_bundle: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = GraphConfig.timeout_seconds
    max_response_bytes: Annotated[int, Field(ge=1)] = GraphConfig.max_response_bytes
    proxy: str | None = None


class FetchTable(Table):
    concurrency: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_CONCURRENCY,
            description="(about 27 MB of memory each on a first night; for more, split the tenants into shards)",
        ),
    ] = FetchConfig.concurrency
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


class AuthTable(Table):
    """`[auth]` or `[tenants.auth]`: every key optional, so a tenant's table says what it overrides."""

    method: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_password: str | None = None
    token_file: str | None = None
    token_cache: str | None = None
    allow_unencrypted_storage: bool | None = None


class TenantTable(Table):
    tenant_id: str | None = None
    name: str = ""
    enabled: bool = True
    auth: AuthTable = AuthTable()


class AlertRuleTable(Table):
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


class AlertChannelTable(Table):
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


class AlertsTable(Table):
    repeat_hours: Annotated[float, Field(gt=0)] = AlertsConfig.repeat_hours
    timeout_seconds: Annotated[float, Field(gt=0)] = AlertsConfig.timeout_seconds
    max_attempts: Annotated[int, Field(ge=1, le=10)] = AlertsConfig.max_attempts
    max_retry_wait_seconds: Annotated[float, Field(ge=0)] = AlertsConfig.max_retry_wait_seconds
    top_controls: Annotated[int, Field(ge=0, le=50)] = AlertsConfig.top_controls
    rules: list[AlertRuleTable] = Field(default_factory=list)
    channels: list[AlertChannelTable] = Field(default_factory=list)


class PartnerTable(Table):
    tenant_id: str | None = None
    source: str = "gdap"
    refresh_hours: Annotated[
        float, Field(ge=0, description="(hours the discovered customer list is reused; 0: discover every run)")
    ] = DEFAULT_REFRESH_HOURS


class FileTable(Table):
    database: DatabaseTable = DatabaseTable()
    partner: PartnerTable | None = None
    graph: GraphTable = GraphTable()
    fetch: FetchTable = FetchTable()
    auth: AuthTable = AuthTable()
    tenants_file: str | None = None
    tenants_source: str = "config"
    tenants: list[TenantTable] = Field(default_factory=list)
    alerts: AlertsTable = AlertsTable()


TOP_KEYS = tuple(FileTable.model_fields)
