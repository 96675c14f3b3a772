"""Migrations are the schema of record: they agree with the models, and go down and up again,
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from chat_sessions.db import Database, head_revision
from chat_sessions.db.migrate import downgrade_on_connection, include_in_autogenerate
from chat_sessions.models import metadata

TABLES = {"tenants", "api_keys", "sessions", "messages", "tool_calls"}


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": include_in_autogenerate}
    )
    return list(compare_metadata(context, metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) & TABLES


async def test_migrations_create_exactly_the_models_schema(fresh_database: Database) -> None:
    await fresh_database.migrate()
    assert await fresh_database.run_sync(_differences) == []
    assert await fresh_database.schema_revision() == head_revision()


async def test_upgrade_downgrade_upgrade(fresh_database: Database) -> None:
    await fresh_database.migrate()
    assert await fresh_database.run_sync(_tables) == TABLES

    await fresh_database.run_sync(lambda connection: downgrade_on_connection(connection, "base"))
    assert await fresh_database.run_sync(_tables) == set()
    assert await fresh_database.schema_revision() is None

    await fresh_database.migrate()
    assert await fresh_database.run_sync(_tables) == TABLES
    assert await fresh_database.run_sync(_differences) == []


@pytest.mark.postgres_only
async def test_json_columns_are_jsonb_on_postgresql(fresh_database: Database) -> None:
    await fresh_database.migrate()

    json_columns = {
        "sessions.traits",
        "messages.tool_calls",
        "messages.metadata",
        "tool_calls.arguments",
        "tool_calls.result",
    }

    def column_types(connection: Connection) -> dict[str, str]:
        rows = connection.execute(
            text(
                "SELECT table_name || '.' || column_name, data_type"
                " FROM information_schema.columns WHERE table_schema = 'public'"
            )
        )
        return {name: kind for name, kind in rows if name in json_columns}

    types = await fresh_database.run_sync(column_types)
    assert types == dict.fromkeys(json_columns, "jsonb")


@pytest.mark.sqlite_only
async def test_sqlite_migrations_leave_foreign_keys_on(fresh_database: Database) -> None:
    await fresh_database.migrate()

    def foreign_keys(connection: Connection) -> int:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        return int(raw.execute("PRAGMA foreign_keys").fetchone()[0])

    assert await fresh_database.run_sync(foreign_keys) == 1
