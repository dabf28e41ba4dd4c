"""Alembic environment: async engines, batch mode on SQLite, the package's MetaData.

`fetcher migrate` hands in an open connection (config.attributes["connection"]); the `alembic`
command line, run from the repository with alembic.ini, builds its own engine from
`sqlalchemy.url` or `$FETCHER_DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from fetcher.store.schema import has_table, metadata

config = context.config


def _configure(connection: Connection) -> None:
    dialect = connection.dialect.name

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:  # noqa: ARG001 (Alembic's interface)
        """A table the models give to other dialects only (`day_keys`: SQLite's) is not missing here."""
        return not (type_ == "table" and not reflected and not has_table(obj, dialect))

    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=dialect == "sqlite",
        compare_type=True,
        compare_server_default=False,
        include_object=include,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def _offline(url: str) -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    url = os.environ.get("FETCHER_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set FETCHER_DATABASE_URL or sqlalchemy.url in alembic.ini")
    if context.is_offline_mode():
        _offline(url)
    else:
        asyncio.run(_run_with_own_engine(url))
