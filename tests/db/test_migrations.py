"""Migrations are the schema of record: they agree with the models, and go down and up again,
on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

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


def _execute(*statements: str) -> Any:
    def run(connection: Connection) -> list[Any]:
        results = []
        for statement in statements:
            result = connection.execute(text(statement))
            results.append(result.all() if result.returns_rows else [])
        connection.commit()
        return results

    return run


_MESSAGE = (
    "INSERT INTO messages (id, tenant_id, session_id, seq, role, content, created_at{extra})"
    " VALUES ('{id}', 't', 's', {seq}, 'assistant', '{content}', '2026-01-01'{values})"
)


async def test_0006_keeps_stored_messages_completed_and_goes_back_with_in_progress_ones(
    fresh_database: Database,
) -> None:
    """Messages stored before 0006 read `completed`; going back to 0005 with an in-progress
    message stored keeps it (searchable again on SQLite, where 0006 left it out of the index:
    FTS5's integrity check then finds the index and the texts in agreement)."""
    await fresh_database.migrate("0005")
    await fresh_database.run_sync(
        _execute(
            "INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', '2026-01-01')",
            "INSERT INTO sessions (id, tenant_id, traits, status, message_count, last_seq,"
            " token_total, created_at, updated_at, version)"
            " VALUES ('s', 't', '{}', 'active', 2, 2, 0, '2026-01-01', '2026-01-01', 1)",
            _MESSAGE.format(id="m1", seq=1, content="older words", extra="", values=""),
        )
    )
    await fresh_database.migrate()
    await fresh_database.run_sync(
        _execute(
            _MESSAGE.format(
                id="m2", seq=2, content="partial", extra=", status", values=", 'in_progress'"
            )
        )
    )
    statuses = await fresh_database.run_sync(
        _execute("SELECT id, status FROM messages ORDER BY seq")
    )
    assert [tuple(row) for row in statuses[0]] == [("m1", "completed"), ("m2", "in_progress")]
    if fresh_database.is_sqlite:  # what the indexer does: the in-progress row is passed over
        await fresh_database.run_sync(
            _execute(
                "INSERT INTO messages_fts (rowid, content) SELECT rowid, content FROM messages"
                " WHERE rowid > (SELECT indexed_through FROM messages_fts_watermark)"
                " AND status <> 'in_progress'",
                "UPDATE messages_fts_watermark SET indexed_through = 2",
            )
        )

    await fresh_database.run_sync(lambda connection: downgrade_on_connection(connection, "0005"))

    kept = await fresh_database.run_sync(_execute("SELECT id, content FROM messages ORDER BY seq"))
    assert [tuple(row) for row in kept[0]] == [("m1", "older words"), ("m2", "partial")]
    if fresh_database.is_sqlite:
        await fresh_database.run_sync(
            _execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'partial'",
            )
        )
    await fresh_database.migrate()
    assert await fresh_database.run_sync(_differences) == []


async def test_0007_gives_stored_messages_their_linear_parents_and_sessions_their_heads(
    fresh_database: Database,
) -> None:
    """Every stored message follows the session's stored message before it (a hole left by
    a deleted item skipped), the first one follows 0; every head is the last seq; no
    session has branched. Down to 0006 and up again keeps every message."""
    await fresh_database.migrate("0006")
    session = (
        "INSERT INTO sessions (id, tenant_id, traits, status, message_count, last_seq,"
        " token_total, created_at, updated_at, version)"
        " VALUES ('{id}', 't', '{{}}', 'active', {count}, {last}, 0, '2026-01-01', '2026-01-01', 1)"
    )
    await fresh_database.run_sync(
        _execute(
            "INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', '2026-01-01')",
            session.format(id="s", count=3, last=4),
            session.format(id="e", count=0, last=0),
            session.format(id="o", count=1, last=1),
            _MESSAGE.format(id="m1", seq=1, content="one", extra="", values=""),
            _MESSAGE.format(id="m2", seq=2, content="two", extra="", values=""),
            _MESSAGE.format(id="m4", seq=4, content="four", extra="", values=""),
            _MESSAGE.format(id="o1", seq=1, content="other", extra="", values="").replace(
                "'s'", "'o'"
            ),
        )
    )
    await fresh_database.migrate()

    def tree(connection: Connection) -> tuple[list[Any], list[Any]]:
        rows = _execute(
            "SELECT session_id, seq, parent_seq FROM messages ORDER BY session_id, seq",
            "SELECT id, head_seq, first_branch_seq FROM sessions ORDER BY id",
        )(connection)
        return [tuple(row) for row in rows[0]], [tuple(row) for row in rows[1]]

    messages_after, sessions_after = await fresh_database.run_sync(tree)
    assert messages_after == [("o", 1, 0), ("s", 1, 0), ("s", 2, 1), ("s", 4, 2)]
    assert sessions_after == [("e", 0, None), ("o", 1, None), ("s", 4, None)]

    await fresh_database.run_sync(lambda connection: downgrade_on_connection(connection, "0006"))
    kept = await fresh_database.run_sync(_execute("SELECT id FROM messages ORDER BY id"))
    assert [row[0] for row in kept[0]] == ["m1", "m2", "m4", "o1"]
    await fresh_database.migrate()
    assert await fresh_database.run_sync(tree) == (messages_after, sessions_after)
    assert await fresh_database.run_sync(_differences) == []
