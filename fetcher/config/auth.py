"""Each tenant's effective `[auth]`: `[auth]` with what its `[tenants.auth]` overrides, each value checked
where it was written, its secrets and files read only when the purpose needs them."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fetcher.config.constants import (
    AUTH_METHODS,
    CERTIFICATE_MAX_BYTES,
    DEFAULT_PUBLIC_CLIENT_ID,
    GUID,
    TOKEN_CACHE_NAME,
)
from fetcher.config.model import AuthConfig
from fetcher.config.resolver import Resolver
from fetcher.config.secret import reference_only
from fetcher.config.shape import AuthTable
from fetcher.config.shape_errors import tenant_label


@dataclass(frozen=True)
class TenantEntry:
    """One tenant as listed, before its auth is resolved; `where` is its place in the file(s)."""

    where: str
    tenant_id: str
    name: str
    enabled: bool
    auth: AuthTable

    @property
    def label(self) -> str:
        return tenant_label(self.tenant_id, self.name, self.where)


class AuthResolver(Resolver):
    """`[auth]` and `[tenants.auth]` resolved."""

    def tenant_auth(self, entry: TenantEntry, shared: AuthTable) -> AuthConfig:
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
    def by(entry: TenantEntry, where: str) -> str:
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
        self, method: str, pick: typing.Callable[[str], tuple[str | None, str]], method_where: str, entry: TenantEntry
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
        self, pick: typing.Callable[[str], tuple[str | None, str]], method_where: str, entry: TenantEntry
    ) -> Path:
        value, where = pick("certificate_path")
        if value is None:
            raise self.fail(
                f"{method_where}certificate_path is required for method 'certificate'{self.by(entry, method_where)}"
            )
        path = self.resolve_path(value)
        self.check_file(path, CERTIFICATE_MAX_BYTES, f"{where}certificate_path: ")
        return path

    def unresolved(self, own: AuthTable, shared: AuthTable) -> dict[str, Any]:
        """For Purpose.DATABASE: secrets by reference only, paths resolved but not opened."""
        merged = {**shared.model_dump(exclude_unset=True), **own.model_dump(exclude_unset=True)}
        values: dict[str, Any] = {}
        for key in ("client_secret", "certificate_password"):
            if key in merged:
                values[key] = reference_only(merged[key])
        for key in ("certificate_path", "token_file"):
            if key in merged:
                values[key] = self.resolve_path(merged[key])
        values["token_cache"] = merged.get("token_cache")
        values["allow_unencrypted_storage"] = bool(merged.get("allow_unencrypted_storage"))
        return values

    def auth_as_written(self, table: AuthTable) -> AuthConfig:
        """`[auth]` itself, for showing: its secrets by reference, never read here (device_code's default
        public client filled in, as each tenant's resolved auth has it)."""
        client_id = table.client_id.lower() if table.client_id else None
        if table.method == "device_code" and client_id is None:
            client_id = DEFAULT_PUBLIC_CLIENT_ID
        return AuthConfig(
            method=table.method or "client_secret",
            client_id=client_id,
            client_secret=reference_only(table.client_secret) if table.client_secret is not None else None,
            certificate_path=self.resolve_path(table.certificate_path) if table.certificate_path else None,
            certificate_password=(
                reference_only(table.certificate_password) if table.certificate_password is not None else None
            ),
            token_file=self.resolve_path(table.token_file) if table.token_file else None,
            token_cache=table.token_cache,
            allow_unencrypted_storage=bool(table.allow_unencrypted_storage),
        )
