"""`[database]`: the URL (a secret when it holds a password), its driver, and the people-hashing salt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from fetcher.config.model import DatabaseConfig, Purpose
from fetcher.config.resolver import Resolver
from fetcher.config.secret import Secret
from fetcher.config.shape import DatabaseTable

# libpq's and asyncpg's sslmode values (asyncpg.connect_utils.SSLMode): what `ssl` may say as text.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Query parameters SQLAlchemy hands to asyncpg.connect() that work as text. Any other (application_name,
# options, search_path...) is a server setting, as asyncpg's own DSN parsing takes it: `create_engine` passes
# those as connect()'s `server_settings` (SQLAlchemy would pass each as a keyword connect() refuses).
ASYNCPG_PARAMETERS = ("ssl", "target_session_attrs", "host", "passfile", "krbsrvname", "gsslib")
# libpq's certificate parameters: asyncpg reads them from its DSN or the environment, never as arguments.
CERTIFICATE_VARIABLES = {
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
}


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
        if url.drivername == "postgresql+asyncpg":
            self.refuse_empty_query(value)
            url = url.set(query=self.asyncpg_query(url.query))
        if url.drivername == "sqlite+aiosqlite" and url.database and url.database != ":memory:":
            url = url.set(database=str(self.resolve_path(url.database)))
        if url.database == ":memory:":
            return f"{url.drivername}:///:memory:"
        return url.render_as_string(hide_password=False)

    def refuse_empty_query(self, value: str) -> None:
        """`?sslmode=` was dropped by the URL parsing, silently: a connection without the SSL the line asks for."""
        for name, given in parse_qsl(urlsplit(value).query, keep_blank_values=True):
            if not given.strip():
                raise self.fail(f"[database] url: query parameter {name!r} is empty (give it a value, or leave it out)")

    def asyncpg_query(self, query: Mapping[str, str | Sequence[str]]) -> dict[str, str | Sequence[str]]:
        """A PostgreSQL URL's query parameters as asyncpg takes them: libpq's `sslmode` becomes `ssl` (as asyncpg's
        own DSN parsing does); any other than asyncpg's own is a server setting (`create_engine`); a certificate
        parameter, which asyncpg reads only from its environment, is refused here."""
        where = "[database] url"
        kept: dict[str, str | Sequence[str]] = {}
        for name, value in query.items():
            if name == "host":  # SQLAlchemy's own: a socket folder, or several hosts
                kept[name] = value
                continue
            if not isinstance(value, str):
                raise self.fail(f"{where}: query parameter {name!r} is given {len(value)} times (give it once)")
            if name in CERTIFICATE_VARIABLES:
                raise self.fail(
                    f"{where}: query parameter {name!r} is not passed to asyncpg from the URL: set the environment "
                    f"variable {CERTIFICATE_VARIABLES[name]} instead"
                )
            if name in ("sslmode", "ssl") and value not in SSL_MODES:
                raise self.fail(f"{where}: {name}={value!r} is not an SSL mode (one of {', '.join(SSL_MODES)})")
            kept["ssl" if name == "sslmode" else name] = value
        if "sslmode" in query and "ssl" in query:
            raise self.fail(f"{where}: both sslmode and ssl are given (give one: sslmode is libpq's name for ssl)")
        return kept
