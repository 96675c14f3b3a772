"""Alembic environment: URL and metadata come from the app's own settings and models.

The app and the tests hand in a connection of their own (`config.attributes["connection"]`):
that is how a `:memory:` database gets its schema on the one connection that will serve it.
"""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import Connection

from chat_sessions.db.migrate import include_in_autogenerate
from chat_sessions.db.postgres import create_postgres_engine
from chat_sessions.db.sqlite import create_sqlite_engine, set_sqlite_foreign_keys
from chat_sessions.models import metadata
from chat_sessions.settings import Settings

config = context.config
if config.config_file_name is not None and not config.attributes.get("connection"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters most constraints only by rebuilding the table.
        render_as_batch=True,
        compare_type=True,
        include_name=include_in_autogenerate,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_on_connection(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        _configure_and_run(connection)
        return
    # A batch migration rebuilds a table and drops the old one; with foreign keys on, that drop
    # fires the cascades and deletes every child row. So: off before the transaction begins,
    # and a foreign key check at the end.
    set_sqlite_foreign_keys(connection, enabled=False)
    try:
        _configure_and_run(connection)
        raw = connection.connection.dbapi_connection
        assert raw is not None
        problems = raw.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign key check failed after migrating: {problems[:5]}")
    finally:
        set_sqlite_foreign_keys(connection, enabled=True)


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_on_connection(given)
        return
    settings = Settings()
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        engine = create_sqlite_engine(url, settings)
        with engine.connect() as connection:
            run_on_connection(connection)
        engine.dispose()
        return

    async def run_async() -> None:
        async_engine = create_postgres_engine(url, settings)
        async with async_engine.connect() as connection:
            await connection.run_sync(run_on_connection)
        await async_engine.dispose()

    asyncio.run(run_async())


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run them against a database")
run_migrations_online()
