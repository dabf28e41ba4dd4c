"""The SQL tables: the public contract documented in the README.

One `MetaData` with a naming convention, so that Alembic's migrations name every constraint the
same way on SQLite and PostgreSQL. Times are timezone-aware UTC (`UTCDateTime`); JSON columns are
JSONB on PostgreSQL and JSON text on SQLite, and Python `None` is SQL NULL, never JSON `null`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC time; SQLite keeps it as text without an offset, so restore UTC on read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002 (TypeDecorator interface)
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class SyncTime(TypeDecorator[datetime]):
    """A UTC time kept compact: microseconds since 1970 (an INTEGER) on SQLite, TIMESTAMPTZ on PostgreSQL.

    Exact both ways; the `control_scores` view shows it on SQLite as the text `UTCDateTime` stores."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(sa.Integer() if dialect.name == "sqlite" else sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        return to_microseconds(value) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002 (TypeDecorator interface)
        if value is None:
            return None
        if isinstance(value, int):
            return EPOCH + value * MICROSECOND
        time: datetime = value
        return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


EPOCH_DAY = date(1970, 1, 1)


class DayKey(TypeDecorator[date]):
    """A score day kept compact: its day key (days since 1970-01-01, an INTEGER) on SQLite, DATE on PostgreSQL.

    SQLite's text date took 10 bytes in each of a day's 230 control rows; the key takes 2. The key is the
    date's own number, so writers compute it and PostgreSQL's month bounds stay dates; `day_keys` holds each
    key's date, for the views to show and to search by (migration 0014)."""

    impl = sa.Date
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(sa.Integer() if dialect.name == "sqlite" else sa.Date())

    def process_bind_param(self, value: date | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return day_key(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> date | None:  # noqa: ARG002 (TypeDecorator interface)
        if isinstance(value, int):
            return from_day_key(value)
        return as_date(value)  # a date, or the text of a UNION's other side (a DATE column on SQLite)


def day_key(value: date) -> int:
    """A date's day key: days since 1970-01-01 (`DayKey`); a datetime is refused, not cut to its day."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"not a date: {value!r}")
    return (value - EPOCH_DAY).days


def from_day_key(key: int) -> date:
    """The date of a day key (`day_key`'s inverse)."""
    return EPOCH_DAY + timedelta(days=key)


def to_microseconds(value: datetime) -> int:
    """An aware time as whole microseconds since 1970-01-01 UTC (exact: integer arithmetic)."""
    return (value - EPOCH) // MICROSECOND


def as_date(value: Any) -> date | None:
    """A DATE read back; SQLite returns aggregates such as MAX(score_date) as text."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def as_utc(value: Any) -> datetime | None:
    """A time read back through an aggregate, as aware UTC (SQLite returns it as naive text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TenantId = sa.String(36)
# SQLite: the day tables are stored in primary-key order (WITHOUT ROWID), so each row is one b-tree
# entry instead of a rowid row plus a key index: about a third smaller and faster to upsert. Every
# reporting query reads them by a prefix of that key (tenant, day[, control]).
CLUSTERED: dict[str, Any] = {"sqlite_with_rowid": False}
# The per-day child rows (control_score_rows, comparative_scores) carry no foreign keys: the store writes a
# day and its children in one transaction and nothing else writes them, while the per-row checks
# halved PostgreSQL's insert rate (measured: 20,700 control rows in 0.41 s with them, 0.20 s without).


EMPTY_IS_NULL = "empty_is_null"  # Column.info: an empty JSON object or list is written as NULL
DIALECTS = "dialects"  # Table.info: the only dialects that have the table (the migrations make it there only)


def has_table(table: sa.Table, dialect: str) -> bool:
    """Whether the migrations make `table` on `dialect` (`DIALECTS`)."""
    return dialect in table.info.get(DIALECTS, (dialect,))


def tables_of(dialect: str) -> list[sa.Table]:
    """The tables a database of `dialect` has, in dependency order."""
    return [table for table in metadata.sorted_tables if has_table(table, dialect)]


def views_of(dialect: str) -> list[sa.Table]:
    """The reporting views a database of `dialect` has (`views`, defined below)."""
    return [view for view in views.sorted_tables if has_table(view, dialect)]


def _json(name: str, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, JSONType, **kw)


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, server_default=""),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

secure_scores = sa.Table(
    "secure_scores",
    metadata,
    sa.Column("tenant_id", TenantId, sa.ForeignKey("tenants.tenant_id"), primary_key=True),
    sa.Column("score_date", sa.Date, primary_key=True),
    # Graph's id; not unique: Graph has given one day two ids and one id two days (migration 0004).
    sa.Column("id", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("current_score", sa.Float),
    sa.Column("max_score", sa.Float),
    sa.Column("active_user_count", sa.BigInteger),
    sa.Column("licensed_user_count", sa.BigInteger),
    _json("enabled_services"),
    sa.Column("vendor", sa.String(256)),
    sa.Column("provider", sa.String(256)),
    sa.Column("provider_version", sa.String(256)),
    sa.Column("sub_provider", sa.String(256)),
    sa.Column("partial", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("warning", sa.Text),
    _json("extra", nullable=False),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(36)),
    sa.Column("id_mismatch", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_secure_scores_score_date", "score_date"),
    **CLUSTERED,
)

controls = sa.Table(
    "controls",
    metadata,
    sa.Column("control_name", sa.String(256), primary_key=True),
    sa.Column("control_category", sa.String(256)),
    sa.Column("description", sa.Text),
    sa.Column("first_seen_date", sa.Date, nullable=False),
    sa.Column("last_seen_date", sa.Date, nullable=False),
)

comparative_scores = sa.Table(
    "comparative_scores",
    metadata,
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("score_date", sa.Date, primary_key=True),
    sa.Column("basis", sa.String(128), primary_key=True),
    sa.Column("average_score", sa.Float),
    sa.Column("seat_size_lower", sa.BigInteger),
    sa.Column("seat_size_upper", sa.BigInteger),
    _json("extra", nullable=False),
    **CLUSTERED,
)

# The day's control scores, compact (migration 0011): each repeated text (tenant id, control name,
# implementation status) is an integer key into a table of its own, read back by the `control_scores` view.
# Keys are never reused or changed once assigned (`fetcher.store.keys` caches them per process).
tenant_keys = sa.Table(
    "tenant_keys",
    metadata,
    sa.Column("tenant_key", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", TenantId, nullable=False, unique=True),
)

control_keys = sa.Table(
    "control_keys",
    metadata,
    sa.Column("control_key", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("control_name", sa.String(256), nullable=False, unique=True),
)

status_texts = sa.Table(
    "status_texts",
    metadata,
    sa.Column("status_key", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("implementation_status", sa.Text, nullable=False, unique=True),
)

# SQLite only (migration 0014): the date of each day key control_score_rows holds (`DayKey`), joined by the
# views as tenant_keys is, so a filter on the views' score_date searches this table's dates, then the rows by
# key. Its writers add the days they store (`fetcher.store.keys.ensure_days`). PostgreSQL keeps DATE (4 bytes,
# as an integer) and has no such table.
day_keys = sa.Table(
    "day_keys",
    metadata,
    sa.Column("day_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("score_date", sa.Date, nullable=False, unique=True),
    info={DIALECTS: ("sqlite",)},
)

# Columns in this order so that PostgreSQL packs them without alignment padding: 4-byte ones first, then
# 8-byte ones, then the bool and the JSON. `extra` NULL means {} (most rows have none).
control_score_rows = sa.Table(
    "control_score_rows",
    metadata,
    sa.Column("tenant_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("score_date", DayKey, primary_key=True),
    sa.Column("control_key", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("status_key", sa.Integer),
    sa.Column("score", sa.Float),
    sa.Column("score_in_percentage", sa.Float),
    sa.Column("last_synced", SyncTime),
    sa.Column("count", sa.BigInteger),
    sa.Column("total", sa.BigInteger),
    sa.Column("is_on", sa.Boolean),
    _json("extra", info={EMPTY_IS_NULL: True}),
    **CLUSTERED,
)

control_profiles = sa.Table(
    "control_profiles",
    metadata,
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("control_name", sa.String(256), primary_key=True),
    sa.Column("title", sa.Text),
    sa.Column("max_score", sa.Float),
    sa.Column("rank", sa.BigInteger),
    sa.Column("tier", sa.String(64)),
    sa.Column("action_type", sa.String(64)),
    sa.Column("service", sa.String(128)),
    sa.Column("user_impact", sa.String(64)),
    sa.Column("implementation_cost", sa.String(64)),
    _json("threats"),
    sa.Column("remediation", sa.Text),
    sa.Column("remediation_impact", sa.Text),
    sa.Column("action_url", sa.Text),
    sa.Column("deprecated", sa.Boolean),
    sa.Column("control_category", sa.String(256)),
    sa.Column("last_modified_at", UTCDateTime),
    _json("extra", nullable=False),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    **CLUSTERED,
)

control_state_updates = sa.Table(
    "control_state_updates",
    metadata,
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("control_name", sa.String(256), primary_key=True),
    sa.Column("updated_at", UTCDateTime, primary_key=True),
    sa.Column("state", sa.String(64), primary_key=True),
    sa.Column("assigned_to", sa.Text),
    sa.Column("comment", sa.Text),
    sa.Column("updated_by", sa.Text),
    **CLUSTERED,
)

fetch_runs = sa.Table(
    "fetch_runs",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("command", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tenants_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tenants_succeeded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tenants_failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("scores_upserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("host", sa.String(256)),
    sa.Column("pid", sa.Integer),
    sa.Column("shard", sa.String(16)),  # "K/N" of `--shard K/N`; null: every tenant
    sa.Column("tenants_interrupted", sa.Integer, nullable=False, server_default="0"),  # stopped, not failed
    sa.Index("ix_fetch_runs_started_at", "started_at"),
)

tenant_runs = sa.Table(
    "tenant_runs",
    metadata,
    sa.Column("run_id", sa.String(36), sa.ForeignKey("fetch_runs.run_id"), primary_key=True),
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("scores_upserted", sa.Integer, nullable=False, server_default="0"),
    sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("throttled", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("partial_days", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_kind", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Index("ix_tenant_runs_tenant_id_finished_at", "tenant_id", "finished_at"),
)

run_lock = sa.Table(
    "run_lock",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("host", sa.String(256), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("shard", sa.String(16)),  # the holder's "K/N" (SQLite takes one shard at a time)
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

raw_payloads = sa.Table(
    "raw_payloads",
    metadata,
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("score_date", sa.Date, primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("last_fetched_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(36)),
    sa.Column("warning", sa.Text),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    # A delta's base (migration 0013, `fetcher.store.deltas`): the same tenant's object it is compressed
    # against, by content; NULL for a base. The foreign key keeps a base from going while a delta needs it.
    sa.Column("base_date", sa.Date),
    sa.Column("base_sha256", sa.String(64)),
    sa.ForeignKeyConstraint(
        ["tenant_id", "base_date", "base_sha256"],
        ["raw_payloads.tenant_id", "raw_payloads.score_date", "raw_payloads.sha256"],
    ),
    # No index on (tenant_id, last_fetched_at) since 0014: it only ordered a tenant's replay, which sorts
    # the tenant's rows found by the primary key instead (a few hundred), and it cost 0.15 kB a score-day.
)

raw_control_profiles = sa.Table(
    "raw_control_profiles",
    metadata,
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("last_fetched_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(36)),
    sa.Column("warning", sa.Text),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Index("ix_raw_control_profiles_tenant_id_last_fetched_at", "tenant_id", "last_fetched_at"),
)

# The zstd dictionaries the archive's bodies are compressed with (migration 0012, `fetcher.store.codec`):
# one a kind, trained on the database's own objects; the first stored wins, so shards that train at
# once end up sharing one. A dictionary is never deleted while a body may name it.
archive_dictionaries = sa.Table(
    "archive_dictionaries",
    metadata,
    sa.Column("dict_id", sa.BigInteger, primary_key=True, autoincrement=False),  # zstd's, in every frame
    sa.Column("kind", sa.String(32), nullable=False, unique=True),  # secureScores, controlProfiles
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),  # objects it was trained on
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("dictionary", sa.LargeBinary, nullable=False),
    sa.Column("recompressed_at", UTCDateTime),  # a pass found no zlib body of the kind left
)

rejected_payloads = sa.Table(
    "rejected_payloads",
    metadata,
    sa.Column("rejection_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", TenantId, nullable=False),
    sa.Column("run_id", sa.String(36)),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("truncated", sa.Boolean, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Index("ix_rejected_payloads_tenant_id_received_at", "tenant_id", "received_at"),
)

# Alert state (migration 0003): an alert per rule and tenant while its condition holds, and the
# notifications owed to each channel; a notification stays unsent (and is retried) until delivered.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("rule_name", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("tenant_id", TenantId, nullable=False),
    sa.Column("tenant_name", sa.String(256), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    _json("details", nullable=False),
    sa.Index("ix_alerts_status_rule_name_tenant_id", "status", "rule_name", "tenant_id"),
)

alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("notification_id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.alert_id"), nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    _json("details", nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("claimed_until", UTCDateTime),
    sa.Index("ix_alert_notifications_alert_id_channel", "alert_id", "channel"),
    sa.Index("ix_alert_notifications_sent_at", "sent_at"),
)

# Tenant discovery (migration 0007), for `tenants_source = "partner"`: the customers a partner tenant's
# GDAP relationships or contracts listed, never deleted (`gone_since` set when a discovery no longer
# lists one), and per partner tenant the latest discovery: when it last succeeded (the cache's age) and
# the last attempt's error. A display name is Graph data, cut to one line and 256 characters.
partner_customers = sa.Table(
    "partner_customers",
    metadata,
    sa.Column("partner_tenant_id", TenantId, primary_key=True),
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("display_name", sa.String(256), nullable=False, server_default=""),
    sa.Column("previous_display_name", sa.String(256)),  # before its latest rename upstream (0015)
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("gone_since", UTCDateTime),
)

partner_discoveries = sa.Table(
    "partner_discoveries",
    metadata,
    sa.Column("partner_tenant_id", TenantId, primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("discovered_at", UTCDateTime),
    sa.Column("customers", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Column("error_kind", sa.String(64)),
    sa.Column("error_message", sa.Text),
)


# ------------------------------------------------------------------------------------------------- views

# The reporting views (migrations 0002 and 0005), read-only. They live on their own MetaData: Alembic compares
# `metadata` with the tables it finds, and a view described there would read as a table to create.
views = sa.MetaData()

score_history = sa.Table(
    "score_history",
    views,
    sa.Column("tenant_id", TenantId),
    sa.Column("tenant_name", sa.String(256)),
    sa.Column("score_date", sa.Date),
    sa.Column("current_score", sa.Float),
    sa.Column("max_score", sa.Float),
    sa.Column("percent", sa.Float),
)

latest_scores = sa.Table(
    "latest_scores",
    views,
    sa.Column("tenant_id", TenantId),
    sa.Column("tenant_name", sa.String(256)),
    sa.Column("score_date", sa.Date),
    sa.Column("current_score", sa.Float),
    sa.Column("max_score", sa.Float),
    sa.Column("percent", sa.Float),
    sa.Column("baseline_7d_date", sa.Date),
    sa.Column("change_7d_points", sa.Float),
    sa.Column("change_7d_percent", sa.Float),
    sa.Column("baseline_30d_date", sa.Date),
    sa.Column("change_30d_points", sa.Float),
    sa.Column("change_30d_percent", sa.Float),
    sa.Column("all_tenants_average", sa.Float),
    sa.Column("all_tenants_date", sa.Date),
    sa.Column("total_seats_average", sa.Float),
    sa.Column("total_seats_date", sa.Date),
    sa.Column("total_seats_lower", sa.BigInteger),
    sa.Column("total_seats_upper", sa.BigInteger),
    sa.Column("days_since_newest", sa.Integer),
)

control_changes = sa.Table(
    "control_changes",
    views,
    sa.Column("tenant_id", TenantId),
    sa.Column("score_date", sa.Date),
    sa.Column("previous_date", sa.Date),
    sa.Column("control_name", sa.String(256)),
    sa.Column("control_category", sa.String(256)),
    sa.Column("previous_score", sa.Float),
    sa.Column("score", sa.Float),
    sa.Column("change", sa.Float),
    sa.Column("kind", sa.String(16)),
    sa.Column("title", sa.Text),
    sa.Column("state", sa.String(64)),
    sa.Column("state_updated_by", sa.Text),
    sa.Column("state_updated_at", UTCDateTime),
    sa.Column("cause", sa.String(16)),
)

control_status = sa.Table(
    "control_status",
    views,
    sa.Column("tenant_id", TenantId),
    sa.Column("tenant_name", sa.String(256)),
    sa.Column("score_date", sa.Date),
    sa.Column("control_name", sa.String(256)),
    sa.Column("title", sa.Text),
    sa.Column("control_category", sa.String(256)),
    sa.Column("score", sa.Float),
    sa.Column("max_score", sa.Float),
    sa.Column("points_available", sa.Float),
    sa.Column("state", sa.String(64)),
    sa.Column("state_updated_by", sa.Text),
    sa.Column("state_updated_at", UTCDateTime),
    sa.Column("state_comment", sa.Text),
    sa.Column("rank", sa.BigInteger),
    sa.Column("tier", sa.String(64)),
    sa.Column("action_type", sa.String(64)),
    sa.Column("service", sa.String(128)),
    sa.Column("user_impact", sa.String(64)),
    sa.Column("implementation_cost", sa.String(64)),
    sa.Column("action_url", sa.Text),
    sa.Column("deprecated", sa.Boolean),
)

category_scores = sa.Table(
    "category_scores",
    views,
    sa.Column("tenant_id", TenantId),
    sa.Column("score_date", sa.Date),
    sa.Column("control_category", sa.String(256)),
    sa.Column("score", sa.Float),
    sa.Column("max_score", sa.Float),
    sa.Column("percent", sa.Float),
    sa.Column("controls", sa.BigInteger),
    sa.Column("controls_with_max", sa.BigInteger),
)

improvement_actions = sa.Table(
    "improvement_actions",
    views,
    sa.Column("control_name", sa.String(256)),
    sa.Column("title", sa.Text),
    sa.Column("control_category", sa.String(256)),
    sa.Column("action_type", sa.String(64)),
    sa.Column("user_impact", sa.String(64)),
    sa.Column("implementation_cost", sa.String(64)),
    sa.Column("action_url", sa.Text),
    sa.Column("tenants", sa.BigInteger),
    sa.Column("tenants_with_points", sa.BigInteger),
    sa.Column("points_available_total", sa.Float),
    sa.Column("points_available_average", sa.Float),
    sa.Column("percent_gain_average", sa.Float),
    sa.Column("tenants_ignored", sa.BigInteger),
    sa.Column("tenants_third_party", sa.BigInteger),
)

# The old `control_scores` table's columns, names, order and values, over `control_score_rows` (0011). Its
# rows' identity is still (tenant_id, score_date, control_name): said here, for readers that order by it.
control_scores = sa.Table(
    "control_scores",
    views,
    sa.Column("tenant_id", TenantId, primary_key=True),
    sa.Column("score_date", sa.Date, primary_key=True),
    sa.Column("control_name", sa.String(256), primary_key=True),
    sa.Column("score", sa.Float),
    sa.Column("score_in_percentage", sa.Float),
    sa.Column("implementation_status", sa.Text),
    sa.Column("last_synced", UTCDateTime),
    sa.Column("is_on", sa.Boolean),
    sa.Column("count", sa.BigInteger),
    sa.Column("total", sa.BigInteger),
    _json("extra", nullable=False),
)
