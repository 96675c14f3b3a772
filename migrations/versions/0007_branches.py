"""Branches: `messages.parent_seq`, `sessions.head_seq`, `sessions.first_branch_seq`

- `messages.parent_seq`: the seq of the message this one follows (0 for a first message).
  Every stored message gets its linear parent: the session's previous stored seq (`seq - 1`
  in a session without holes; a conversation item deleted by id leaves a hole, and the
  message after it follows the one before the hole), 0 for the first.
- `sessions.head_seq`: the last message of the active branch; every session gets its
  `last_seq` (its history is one line).
- `sessions.first_branch_seq`: the lowest seq at which the history stops being one line in
  seq order (NULL: it never did, for every stored session). Up to it, every branch is the
  plain seq range, which is what lets a never-branched session read as it did before
  (messages/branches.py).

All are plain ADD COLUMN / DROP COLUMN: a batch rebuild of `messages` would drop the search
triggers that live on it, and neither engine needs one to add or drop a column.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One indexed seek a message, through (session_id, seq).
_LINEAR_PARENTS = """
UPDATE messages SET parent_seq = COALESCE(
    (SELECT max(earlier.seq) FROM messages AS earlier
     WHERE earlier.session_id = messages.session_id AND earlier.seq < messages.seq), 0)
"""


def upgrade() -> None:
    op.add_column(
        "messages", sa.Column("parent_seq", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "sessions", sa.Column("head_seq", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("sessions", sa.Column("first_branch_seq", sa.Integer(), nullable=True))
    op.execute(_LINEAR_PARENTS)
    op.execute("UPDATE sessions SET head_seq = last_seq")


def downgrade() -> None:
    # Every branch but the active one was only reachable through the parents: 0006 reads a
    # session as one line, so what it keeps is every message, in seq order.
    op.drop_column("sessions", "first_branch_seq")
    op.drop_column("sessions", "head_seq")
    op.drop_column("messages", "parent_seq")
