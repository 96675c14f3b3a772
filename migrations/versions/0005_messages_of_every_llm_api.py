"""Version 1.1: content parts and provider items, sessions keyed by the caller's id, end-user state

- `messages.content_parts`: a message's content when it was sent as an array of parts, kept
  as sent (JSON, not JSONB: key order and numbers as written). `messages.content` keeps the
  text (the text of the text parts), so search, previews and /context read one column.
- `messages.item`: a provider-native item, verbatim.
- `sessions.external_id`: the caller's own id for a session, unique per tenant where set
  (a partial unique index, which also serves prefix ranges); compared byte by byte on
  PostgreSQL too (collation "C"), so a prefix is an index range there as on SQLite.
- `end_users`: traits shared by all of one end-user's sessions, keyed by (tenant, user).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EXTERNAL_ID = sa.String(256).with_variant(sa.String(256, collation="C"), "postgresql")
_WITH_EXTERNAL_ID = sa.text("external_id IS NOT NULL")


def upgrade() -> None:
    # ADD COLUMN of a nullable column: SQLite does it in place, without a table rebuild.
    op.add_column("messages", sa.Column("content_parts", sa.JSON(none_as_null=True)))
    op.add_column("messages", sa.Column("item", sa.JSON(none_as_null=True)))
    op.add_column("sessions", sa.Column("external_id", _EXTERNAL_ID))
    op.create_index(
        "ix_sessions_tenant_id_external_id",
        "sessions",
        ["tenant_id", "external_id"],
        unique=True,
        sqlite_where=_WITH_EXTERNAL_ID,
        postgresql_where=_WITH_EXTERNAL_ID,
    )
    op.create_table(
        "end_users",
        sa.Column("tenant_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column(
            "traits",
            sa.JSON(none_as_null=True).with_variant(
                sa.dialects.postgresql.JSONB(none_as_null=True), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_end_users_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name="pk_end_users"),
    )


def downgrade() -> None:
    op.drop_table("end_users")
    op.drop_index("ix_sessions_tenant_id_external_id", table_name="sessions")
    # Plain DROP COLUMN (SQLite >= 3.35), not a batch rebuild: rebuilding `messages` would
    # drop the search triggers that live on it.
    op.drop_column("sessions", "external_id")
    op.drop_column("messages", "item")
    op.drop_column("messages", "content_parts")
