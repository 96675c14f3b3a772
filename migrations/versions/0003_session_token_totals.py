"""per-session token totals

sessions.token_total is the sum of the session's message token counts, kept by appends and
truncations, so tenant stats never scan every message; backfilled from the messages here.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(
            sa.Column("token_total", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE sessions SET token_total = (SELECT COALESCE(SUM(token_count), 0)"
        " FROM messages WHERE messages.session_id = sessions.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("token_total")
