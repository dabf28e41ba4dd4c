"""The configuration's names, patterns and limits: file and variable names, GUIDs, auth methods, Graph's
bounds, and how large a referenced file may be."""

from __future__ import annotations

import re

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


# `[fetch] concurrency`: a first night holds about 27 MB per connection (docs/deploy.md), so 256 is about 7 GB
# and some 290 open files; a typo beyond it is refused rather than fitted to `ulimit -n`, and more throughput
# comes from shards (each its own process and memory).
MAX_CONCURRENCY = 256


GRAPH_MAX_PER_TENANT_RATE = 150


GRAPH_HISTORY_DAYS = 90


MAX_SHARDS = 1000  # `--shard K/N`, `[fetch] shards`: more would be more processes than any database takes


SECRET_MAX_BYTES = 8 * 1024  # a client secret is about 40 bytes, a database URL rarely 500


CERTIFICATE_MAX_BYTES = 1024 * 1024  # a PEM or PKCS#12 file with its chain is a few KB


CA_BUNDLE_MAX_BYTES = 16 * 1024 * 1024  # a whole system bundle is about 250 KB


TENANTS_FILE_MAX_BYTES = 64 * 1024 * 1024  # about 600,000 tenants


PARTNER_SOURCES = ("gdap", "contracts", "both")


TENANTS_SOURCES = ("config", "partner")


DEFAULT_REFRESH_HOURS = 24.0
