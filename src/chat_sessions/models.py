"""Every table, in one file: the schema of record that Alembic reads.

Foreign keys cascade in the database itself, so a delete by any path (HTTP, CLI, retention,
raw SQL) removes the children in the same transaction. `messages.tenant_id` and
`tool_calls.tenant_id` are scope columns, not foreign keys: their rows already go with their
session, and a second foreign key would need one more index on the hottest table.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

# SQL NULL for None (by default the JSON type would store the JSON text "null").
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# JSON kept as the text that was sent, on both engines: PostgreSQL's JSONB would reorder keys
# and drop duplicates. For what the service stores and returns without reading inside it
# (content parts, provider items).
VerbatimJSON = JSON(none_as_null=True)
# The caller's own session id. Compared byte by byte on both engines (SQLite's BINARY is the
# default; PostgreSQL's "C" collation), so a prefix is an index range: every id that starts
# with P sorts between P and P followed by the highest character.
ExternalIdType = String(256).with_variant(String(256, collation="C"), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC and always comes back timezone-aware.

    SQLite has no timezone type and returns naive values; PostgreSQL stores `timestamptz`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # The text SQLAlchemy's SQLite DateTime stores (YYYY-MM-DD HH:MM:SS.ffffff, UTC), made
        # in one call: its own chain (astimezone, replace, a %-format) costs 3 µs a value.
        # (Remembering the last value formatted gains nothing measurable: each bound column
        # has a processor of its own, and Prepared converts a batch's shared `now` once;
        # bench/micro_checks.py.)
        def format_utc(value: datetime | None) -> str | None:
            if value is None:
                return None
            utc = value.astimezone(UTC) if value.utcoffset() else value
            return utc.isoformat(" ", "microseconds")[:26]

        return format_utc

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite hands back the stored text; one C-level parse per value instead of a chain of
        # processors, as the history of a session reads dozens of these per request.
        def parse(value: str | None) -> datetime | None:
            # Stored as naive UTC text; naming the offset in the text is 5x cheaper than
            # datetime.replace(tzinfo=...) afterwards.
            return None if value is None else datetime.fromisoformat(value + "+00:00")

        return parse

    def column_converter(self, dialect: Any) -> Any:
        """A page of values at once (see db.Prepared): the same parse as `result_processor`,
        with the loop in C when the column holds no NULL."""
        if dialect.name != "sqlite":
            return None
        parse = self.result_processor(dialect, None)
        utc_suffix = itertools.repeat("+00:00")

        def convert(values: Sequence[str | None]) -> Sequence[datetime | None]:
            if None in values:
                return [parse(value) for value in values]
            return list(map(datetime.fromisoformat, map(operator.add, values, utc_suffix)))

        return convert


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A UUIDv7: time-sortable, so primary-key order is creation order."""
    return str(uuid_utils.uuid7())


def _created_at() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200, unique=True)
    max_sessions: int | None = None
    retention_days: int | None = None
    rate_limit_per_minute: int | None = None
    created_at: datetime = _created_at()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", ondelete="CASCADE", index=True, max_length=36)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _created_at()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Session(SQLModel, table=True):
    __tablename__ = "sessions"
    __table_args__ = (
        Index(None, "tenant_id", "updated_at", "id"),
        Index(None, "tenant_id", "user_id", "updated_at", "id"),
        # Unique per tenant, and the range that `external_id_prefix` lists.
        Index(
            None,
            "tenant_id",
            "external_id",
            unique=True,
            sqlite_where=Column("external_id").isnot(None),
            postgresql_where=Column("external_id").isnot(None),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", ondelete="CASCADE", max_length=36)
    user_id: str | None = Field(default=None, max_length=256)
    external_id: str | None = Field(default=None, sa_column=Column(ExternalIdType))
    title: str | None = Field(default=None, sa_type=Text)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    status: str = Field(default="active", max_length=32)
    result: str | None = Field(default=None, sa_type=Text)
    error: str | None = Field(default=None, sa_type=Text)
    message_count: int = 0
    # The highest seq handed out; appends take the next one from this row, under its lock.
    last_seq: int = 0
    # The last message of the active branch (0: none); appends follow it (messages/branches.py).
    head_seq: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The lowest seq where the history stops being one line in seq order; NULL while it is
    # one line ending at the head. Every branch is the plain seq range up to it
    # (messages/branches.py).
    first_branch_seq: int | None = None
    # Sum of the messages' token_count, kept in step by appends and truncations (for stats).
    token_total: int = Field(
        default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    last_message_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    version: int = 1


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        Index(None, "session_id", "seq", unique=True),
        Index(
            None,
            "session_id",
            "idempotency_key",
            unique=True,
            sqlite_where=Column("idempotency_key").isnot(None),
            postgresql_where=Column("idempotency_key").isnot(None),
        ),
        # The in-progress messages only (a few at any time): what the idle sweep reads. Keyed
        # by a column a delta leaves alone, so a delta writes no index entry.
        Index(
            "ix_messages_in_progress",
            "session_id",
            sqlite_where=Column("status") == "in_progress",
            postgresql_where=Column("status") == "in_progress",
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=36)
    session_id: str = Field(foreign_key="sessions.id", ondelete="CASCADE", max_length=36)
    seq: int
    # The seq of the message this one follows (0: a first message); branches share parents.
    parent_seq: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    role: str = Field(max_length=16)
    # The text: the string sent, or the text of the text parts (what search indexes, previews
    # show and /context passes on).
    content: str = Field(sa_type=Text)
    # The content parts as sent, when `content` was an array; NULL for a string.
    content_parts: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(VerbatimJSON))
    # A provider-native item (OpenAI Responses item, ADK event, ...), stored verbatim.
    item: dict[str, Any] | None = Field(default=None, sa_column=Column(VerbatimJSON))
    name: str | None = Field(default=None, max_length=256)
    tool_calls: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONType))
    tool_call_id: str | None = Field(default=None, max_length=256)
    # `metadata` is reserved on declarative classes, hence the attribute name.
    meta: dict[str, Any] | None = Field(default=None, sa_column=Column("metadata", JSONType))
    token_count: int | None = None
    idempotency_key: str | None = Field(default=None, max_length=255)
    request_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = _created_at()
    # completed / in_progress (growing by deltas) / interrupted (messages/streaming.py).
    status: str = Field(
        default="completed", max_length=16, sa_column_kwargs={"server_default": "completed"}
    )
    # When an in-progress message last got something (its append, a delta); NULL for one
    # that was never in progress. The idle sweep reads it through the partial index above.
    last_activity_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ToolCall(SQLModel, table=True):
    __tablename__ = "tool_calls"
    __table_args__ = (Index(None, "session_id", "status"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=36)
    session_id: str = Field(foreign_key="sessions.id", ondelete="CASCADE", max_length=36)
    # Indexed: deleting (truncating) messages looks their tool calls up by this column.
    message_id: str | None = Field(
        default=None, foreign_key="messages.id", ondelete="CASCADE", index=True, max_length=36
    )
    tool_call_id: str = Field(max_length=256)
    tool_name: str = Field(max_length=256)
    arguments: Any = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    status: str = Field(default="pending", max_length=16)
    result: Any = Field(default=None, sa_column=Column(JSONType))
    error: str | None = Field(default=None, sa_type=Text)
    duration_ms: int | None = Field(default=None, sa_type=Integer)
    created_at: datetime = _created_at()
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EndUser(SQLModel, table=True):
    """State shared by every session of one end-user of a tenant (ADK's `user:` scope).
    A user without a row has empty traits; erasing the user deletes the row."""

    __tablename__ = "end_users"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "user_id"),)

    tenant_id: str = Field(foreign_key="tenants.id", ondelete="CASCADE", max_length=36)
    user_id: str = Field(max_length=256)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    version: int = 1


# The tables themselves, for SQLAlchemy Core statements on the hot paths.
tenants: Table = Tenant.__table__  # type: ignore[attr-defined]
api_keys: Table = ApiKey.__table__  # type: ignore[attr-defined]
sessions: Table = Session.__table__  # type: ignore[attr-defined]
messages: Table = Message.__table__  # type: ignore[attr-defined]
tool_calls: Table = ToolCall.__table__  # type: ignore[attr-defined]
end_users: Table = EndUser.__table__  # type: ignore[attr-defined]
