"""`[database]`: the URL (a secret when it holds a password), its driver, and the people-hashing salt."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fetcher.config.model import DatabaseConfig, Purpose
from fetcher.config.resolver import Resolver
from fetcher.config.secret import Secret
from fetcher.config.shape import DatabaseTable


class DatabaseResolver(Resolver):
    """`[database]` resolved."""

    def database(self, table: DatabaseTable) -> DatabaseConfig:
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

    def people_salt(self, table: DatabaseTable) -> Secret | None:
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
