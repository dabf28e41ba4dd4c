"""Configuration: a TOML file read into frozen dataclasses, validated at load.

Loading is two steps. First the file's *shape* (which tables and keys exist, their types, their bounds)
is declared once as pydantic models (`shape`: strict, frozen, unknown keys forbidden) and checked in one
`model_validate` call; `shape_errors` turns pydantic's problems into our one-line messages. Then the
*domain* checks `loader` writes by hand: GUIDs, clouds and URLs, secret references (`env:NAME`,
`file:PATH`, literal), the CSV tenants file (`tenants_file`), and each tenant's effective `[auth]`. The
result is the frozen dataclasses (`model`: `Config` and its parts) that the rest of the package uses;
they are plain dataclasses, so code and tests may build them directly. `constants` holds the names,
patterns and limits; `files` reads a referenced file safely; `secret` is the `Secret` value;
`redaction` shows a configuration with its secrets by reference. Everything other modules use is
imported from here, `fetcher.config`.

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
warning), resolved once, and carried in `Secret`, whose text form is always redacted. A `file:`
reference must name a regular file of at most `SECRET_MAX_BYTES` (a FIFO, a device or a folder is
refused before it is read); a certificate may be up to `CERTIFICATE_MAX_BYTES`.

What a command needs is its `Purpose`: `FETCH` (run, backfill, get, config check) resolves every
secret, requires a complete `[auth]` for each tenant and at least one enabled tenant; `DATABASE`
(status, report, rebuild, migrate, and the commands that only read the database) resolves `[database]`
alone and checks `[auth]` for form only, so a reporting host needs no client secret.

Adding a section: declare its keys on a `shape.Table` subclass (types, defaults, bounds with a
`description` that says why), add it to `shape.FileTable`, add its frozen dataclass with the same field
names to `model`, and build that dataclass in `loader._Loader.load` (with any domain checks beside it).
"""

from __future__ import annotations

from fetcher.config.constants import (
    APP_ONLY_METHODS,
    AUTH_METHODS,
    CA_BUNDLE_MAX_BYTES,
    CERTIFICATE_MAX_BYTES,
    DEFAULT_FILE,
    DEFAULT_PUBLIC_CLIENT_ID,
    DEFAULT_REFRESH_HOURS,
    DELEGATED_METHODS,
    ENABLED_WORDS,
    ENV_CONFIG,
    ENV_NAME,
    GRAPH_HISTORY_DAYS,
    GRAPH_MAX_PER_TENANT_CONCURRENCY,
    GRAPH_MAX_PER_TENANT_RATE,
    GUID,
    MAX_SHARDS,
    PARTNER_SOURCES,
    SECRET_KEYS,
    SECRET_MAX_BYTES,
    TENANT_COLUMNS,
    TENANT_NAME_MAX_CHARS,
    TENANTS_FILE_MAX_BYTES,
    TENANTS_SOURCES,
    TOKEN_CACHE_NAME,
)
from fetcher.config.files import FileProblem, read_regular_file
from fetcher.config.graph import default_scope
from fetcher.config.loader import find_config_file, load_config, parse_config
from fetcher.config.model import (
    CLOUDS,
    AlertChannel,
    AlertRule,
    AlertsConfig,
    AuthConfig,
    ChannelType,
    Cloud,
    Config,
    DatabaseConfig,
    FetchConfig,
    GraphConfig,
    PartnerConfig,
    Purpose,
    RuleKind,
    TenantConfig,
    make_url_safe,
)
from fetcher.config.redaction import redacted
from fetcher.config.secret import Secret
from fetcher.config.shape import TOP_KEYS
from fetcher.config.tenants_file import read_tenant_rows

__all__ = [
    "APP_ONLY_METHODS",
    "AUTH_METHODS",
    "CA_BUNDLE_MAX_BYTES",
    "CERTIFICATE_MAX_BYTES",
    "CLOUDS",
    "DEFAULT_FILE",
    "DEFAULT_PUBLIC_CLIENT_ID",
    "DEFAULT_REFRESH_HOURS",
    "DELEGATED_METHODS",
    "ENABLED_WORDS",
    "ENV_CONFIG",
    "ENV_NAME",
    "GRAPH_HISTORY_DAYS",
    "GRAPH_MAX_PER_TENANT_CONCURRENCY",
    "GRAPH_MAX_PER_TENANT_RATE",
    "GUID",
    "MAX_SHARDS",
    "PARTNER_SOURCES",
    "SECRET_KEYS",
    "SECRET_MAX_BYTES",
    "TENANTS_FILE_MAX_BYTES",
    "TENANTS_SOURCES",
    "TENANT_COLUMNS",
    "TENANT_NAME_MAX_CHARS",
    "TOKEN_CACHE_NAME",
    "TOP_KEYS",
    "AlertChannel",
    "AlertRule",
    "AlertsConfig",
    "AuthConfig",
    "ChannelType",
    "Cloud",
    "Config",
    "DatabaseConfig",
    "FetchConfig",
    "FileProblem",
    "GraphConfig",
    "PartnerConfig",
    "Purpose",
    "RuleKind",
    "Secret",
    "TenantConfig",
    "default_scope",
    "find_config_file",
    "load_config",
    "make_url_safe",
    "parse_config",
    "read_regular_file",
    "read_tenant_rows",
    "redacted",
]
