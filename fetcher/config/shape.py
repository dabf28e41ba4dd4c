"""The file's shape, declared once as pydantic models: strict types, no unknown keys, bounds with why.

Adding a section: declare its keys on a `Table` subclass (types, defaults, bounds with a `description`
that says why) and add it to `FileTable`; then its dataclass in `model` and its checks in `loader`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from fetcher.config.constants import (
    DEFAULT_REFRESH_HOURS,
    GRAPH_HISTORY_DAYS,
    GRAPH_MAX_PER_TENANT_CONCURRENCY,
    GRAPH_MAX_PER_TENANT_RATE,
    MAX_CONCURRENCY,
    MAX_SHARDS,
)
from fetcher.config.model import AlertChannel, AlertRule, AlertsConfig, DatabaseConfig, FetchConfig, GraphConfig
from fetcher.text import control_character

CONTROL_CHARACTER = "control_character"


def _no_control_character(value: str) -> str:
    """A configured string reaches the database (a NUL fails every PostgreSQL statement) and terminals."""
    found = control_character(value)
    if found:
        raise PydanticCustomError(CONTROL_CHARACTER, "holds {found}", {"found": found})
    return value


Text = Annotated[str, AfterValidator(_no_control_character)]
"""Every string of the file: no control character (NUL, ESC, newline...) and no lone surrogate."""


class Table(BaseModel):
    """A TOML table: exact types (no "16" for 16), no unknown keys, finite numbers."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class DatabaseTable(Table):
    url: Text = DatabaseConfig.url
    keep_raw: bool = DatabaseConfig.keep_raw
    busy_timeout_seconds: Annotated[float, Field(ge=0)] = DatabaseConfig.busy_timeout_seconds
    store_people: bool = DatabaseConfig.store_people
    people_salt: Text | None = None
    partition: Literal["none", "monthly"] = "none"


class GraphTable(Table):
    cloud: Text = GraphConfig.cloud
    base_url: Text | None = None
    authority_host: Text | None = None
    scope: Text | None = None
    ca_bundle: Text | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = GraphConfig.timeout_seconds
    max_response_bytes: Annotated[int, Field(ge=1)] = GraphConfig.max_response_bytes
    proxy: Text | None = None


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

    method: Text | None = None
    client_id: Text | None = None
    client_secret: Text | None = None
    certificate_path: Text | None = None
    certificate_password: Text | None = None
    token_file: Text | None = None
    token_cache: Text | None = None
    allow_unencrypted_storage: bool | None = None


class TenantTable(Table):
    tenant_id: Text | None = None
    name: Text = ""
    enabled: bool = True
    auth: AuthTable = AuthTable()


class AlertRuleTable(Table):
    name: Text
    kind: Text
    channels: list[Text]
    points: Annotated[float, Field(ge=0, le=100, description="(percentage points)")] = AlertRule.points
    days: Annotated[int, Field(ge=1)] = AlertRule.days
    percent: Annotated[float, Field(ge=0, le=100)] = AlertRule.percent
    runs: Annotated[int, Field(ge=1)] = AlertRule.runs
    hours: Annotated[float, Field(gt=0)] = AlertRule.hours
    tenants: list[Text] = Field(default_factory=list)
    send_resolved: bool = AlertRule.send_resolved


class AlertChannelTable(Table):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=False)

    name: Text
    type: Text
    url: Text | None = None
    smtp_host: Text | None = None
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = AlertChannel.smtp_port
    starttls: bool = AlertChannel.starttls
    username: Text | None = None
    password: Text | None = None
    sender: Text | None = Field(default=None, alias="from")
    to: list[Text] = Field(default_factory=list)
    ca_bundle: Text | None = None


class AlertsTable(Table):
    repeat_hours: Annotated[float, Field(gt=0)] = AlertsConfig.repeat_hours
    timeout_seconds: Annotated[float, Field(gt=0)] = AlertsConfig.timeout_seconds
    max_attempts: Annotated[int, Field(ge=1, le=10)] = AlertsConfig.max_attempts
    max_retry_wait_seconds: Annotated[float, Field(ge=0)] = AlertsConfig.max_retry_wait_seconds
    top_controls: Annotated[int, Field(ge=0, le=50)] = AlertsConfig.top_controls
    rules: list[AlertRuleTable] = Field(default_factory=list)
    channels: list[AlertChannelTable] = Field(default_factory=list)


class PartnerTable(Table):
    tenant_id: Text | None = None
    source: Text = "gdap"
    refresh_hours: Annotated[
        float, Field(ge=0, description="(hours the discovered customer list is reused; 0: discover every run)")
    ] = DEFAULT_REFRESH_HOURS


class FileTable(Table):
    database: DatabaseTable = DatabaseTable()
    partner: PartnerTable | None = None
    graph: GraphTable = GraphTable()
    fetch: FetchTable = FetchTable()
    auth: AuthTable = AuthTable()
    tenants_file: Text | None = None
    tenants_source: Text = "config"
    tenants: list[TenantTable] = Field(default_factory=list)
    alerts: AlertsTable = AlertsTable()


TOP_KEYS = tuple(FileTable.model_fields)
