"""The tenants to fetch: `[[tenants]]` and the CSV tenants file, each listed once, with its auth."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from fetcher.config.auth import AuthResolver, TenantEntry
from fetcher.config.constants import TENANT_NAME_MAX_CHARS, TENANTS_FILE_MAX_BYTES
from fetcher.config.files import FileProblem, read_regular_file
from fetcher.config.model import Purpose, TenantConfig
from fetcher.config.shape import AuthTable, TenantTable
from fetcher.config.tenants_file import FileRow, file_rows
from fetcher.errors import ConfigError


class TenantsResolver(AuthResolver):
    """`[[tenants]]` and `tenants_file` resolved."""

    def listed_tenants(self, tables: Sequence[TenantTable]) -> Iterator[TenantEntry]:
        for number, table in enumerate(tables, 1):
            where = f"[[tenants]] #{number}"
            if table.tenant_id is None:
                raise self.fail(f"{where}: tenant_id is required (the tenant's GUID)")
            yield TenantEntry(where, self.guid(table.tenant_id, where), table.name, table.enabled, table.auth)

    def tenants_file(self, name: str | None, *, discovered: bool = False) -> Iterator[TenantEntry]:
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
        for row in self.file_rows(path, text):
            # a customer `tenants discover --write` no longer found is kept in the file (and its history),
            # not fetched; with tenants_source = "partner" the database's list says who is gone
            gone = row.source_status.startswith("gone since")
            enabled = row.enabled and (discovered or not gone)
            yield TenantEntry(row.where, row.tenant_id, row.name, enabled, AuthTable())

    def file_rows(self, path: Path, text: str) -> Iterator[FileRow]:
        """The file's rows by the rule `tenants discover` reads it with; its errors (`file.csv:3: ...`) named
        after the configuration, as every other."""
        try:
            yield from file_rows(path, text)
        except ConfigError as error:
            raise self.fail(str(error)) from None

    def tenants(self, entries: list[TenantEntry], shared: AuthTable) -> tuple[TenantConfig, ...]:
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
