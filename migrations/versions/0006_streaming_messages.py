"""Streaming messages: `messages.status` and the last activity of an in-progress one

- `messages.status`: `completed` (every existing row, the server default), `in_progress` (an
  answer still being generated, growing by deltas) or `interrupted` (closed so, or silent for
  STREAM_IDLE_SECONDS).
- `messages.last_activity_at`: when an in-progress message last got something (its append,
  a delta); NULL for a message that was never in progress. A partial index over the
  in-progress rows only (a few at any time) lets the idle sweep find the silent ones without
  reading the rest. It is keyed by `session_id`, which a delta does not change, not by
  `last_activity_at`, which every delta does: on SQLite that would be an index entry
  rewritten per delta.
- SQLite's search index leaves in-progress messages out (they are indexed once closed), so a
  delta, an UPDATE of `content` on an in-progress row, costs no FTS5 work: re-tokenising a
  growing message on every delta would cost 35-55 µs each, more than the delta itself. The
  triggers of 0004 are recreated with that rule; the indexer skips in-progress rows.
- PostgreSQL's GIN index becomes partial (`status <> 'in_progress'`) for the same reason:
  a delta no longer computes the tsvector of the whole text so far. Rebuilding it reads the
  table once, at this migration.

Both columns are plain ADD COLUMN / DROP COLUMN: a batch rebuild of `messages` would drop the
search triggers that live on it.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IN_PROGRESS = sa.text("status = 'in_progress'")
_WATERMARK = "(SELECT indexed_through FROM messages_fts_watermark)"
_TOP = "COALESCE((SELECT max(rowid) FROM messages), 0)"
_INDEXED_OLD = f"old.rowid <= {_WATERMARK} AND old.status <> 'in_progress'"

SQLITE_UP = [
    "DROP TRIGGER messages_fts_delete",
    "DROP TRIGGER messages_fts_update",
    f"""CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.rowid, old.content WHERE {_INDEXED_OLD};
        UPDATE messages_fts_watermark SET indexed_through = {_TOP}
        WHERE indexed_through > {_TOP};
    END""",
    # A row at or below the watermark is in the index unless it is in progress: take out what
    # was indexed, put in what is to be (a delta does neither; a close does the second).
    f"""CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages
    WHEN old.rowid <= {_WATERMARK}
         AND (old.status <> 'in_progress' OR new.status <> 'in_progress') BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.rowid, old.content WHERE old.status <> 'in_progress';
        INSERT INTO messages_fts (rowid, content)
        SELECT new.rowid, new.content WHERE new.status <> 'in_progress';
    END""",
]

# Back to 0004: the in-progress rows below the watermark are indexed as they are, then 0004's
# triggers come back.
SQLITE_DOWN = [
    f"""INSERT INTO messages_fts (rowid, content) SELECT rowid, content FROM messages
        WHERE rowid <= {_WATERMARK} AND status = 'in_progress'""",
    "DROP TRIGGER messages_fts_delete",
    "DROP TRIGGER messages_fts_update",
    f"""CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
        SELECT 'delete', old.rowid, old.content WHERE old.rowid <= {_WATERMARK};
        UPDATE messages_fts_watermark SET indexed_through = {_TOP}
        WHERE indexed_through > {_TOP};
    END""",
    f"""CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages
    WHEN old.rowid <= {_WATERMARK} BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, content)
        VALUES ('delete', old.rowid, old.content);
        INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
    END""",
]

_GIN = (
    "CREATE INDEX ix_messages_content_fts ON messages"
    " USING gin (to_tsvector('simple'::regconfig, content))"
)
POSTGRES_UP = ["DROP INDEX ix_messages_content_fts", _GIN + " WHERE status <> 'in_progress'"]
POSTGRES_DOWN = ["DROP INDEX ix_messages_content_fts", _GIN]


def _run(sqlite: list[str], postgres: list[str]) -> None:
    for statement in sqlite if op.get_bind().dialect.name == "sqlite" else postgres:
        op.execute(statement)


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("status", sa.String(16), nullable=False, server_default="completed"),
    )
    op.add_column("messages", sa.Column("last_activity_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_messages_in_progress",
        "messages",
        ["session_id"],
        sqlite_where=_IN_PROGRESS,
        postgresql_where=_IN_PROGRESS,
    )
    _run(SQLITE_UP, POSTGRES_UP)


def downgrade() -> None:
    # The triggers and index that name `status` go first: SQLite refuses to drop a column
    # that the schema still refers to.
    _run(SQLITE_DOWN, POSTGRES_DOWN)
    op.drop_index("ix_messages_in_progress", table_name="messages")
    op.drop_column("messages", "last_activity_at")
    op.drop_column("messages", "status")
