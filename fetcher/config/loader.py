"""Loading: find the file, parse its TOML, check its shape (`shape`), then resolve each section (`database`,
`graph`, `tenants` with their `auth`, `alerts`, `[partner]` here) into a `Config`."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fetcher.config.alerts import AlertsResolver
from fetcher.config.auth import TenantEntry
from fetcher.config.constants import DEFAULT_FILE, ENV_CONFIG, PARTNER_SOURCES, TENANTS_SOURCES
from fetcher.config.database import DatabaseResolver
from fetcher.config.graph import GraphResolver
from fetcher.config.model import Config, FetchConfig, PartnerConfig, Purpose
from fetcher.config.shape import AuthTable, FileTable, PartnerTable
from fetcher.config.shape_errors import describe_errors
from fetcher.config.tenants import TenantsResolver
from fetcher.errors import ConfigError


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


class _Loader(DatabaseResolver, GraphResolver, TenantsResolver, AlertsResolver):
    """One file resolved into a `Config`: each section by its resolver, in `load`."""

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
        alerts = self.alerts(file.alerts, tenants, discovered=discovered)  # before the warnings: it may add some
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
        auth = self.tenant_auth(TenantEntry("[partner]", tenant_id, "partner", True, AuthTable()), shared)
        return PartnerConfig(tenant_id, auth, table.source, table.refresh_hours)
