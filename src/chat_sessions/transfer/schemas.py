"""The export document: one session with its messages and tool calls, versioned.

The import shapes accept exactly what an export contains; ids, counters and versions in it are
read for mapping only and never reused: an import always gets new ids in the caller's tenant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from chat_sessions.bounds import MAX_INT32, MAX_SEQ, DurationMs, TokenCount
from chat_sessions.messages.schemas import Content, MessageRead, MessageStatus, Name, Role
from chat_sessions.sessions.schemas import (
    ExternalId,
    Outcome,
    SessionRead,
    SessionStatus,
    Title,
    UserId,
)
from chat_sessions.tool_calls.schemas import ToolCallRead, ToolCallStatus

FORMAT = "chat-sessions.v1"
Id = Annotated[str, Meta(min_length=1, max_length=64)]


class ExportDocument(Struct):
    format: str
    session: SessionRead
    messages: list[MessageRead]
    tool_calls: list[ToolCallRead]


class ImportedSession(Struct, forbid_unknown_fields=True):
    user_id: UserId | None = None
    # Kept: the imported session answers to it (409 when the tenant already uses it; leave
    # it out, or null, to import a copy beside the original).
    external_id: ExternalId | None = None
    title: Title | None = None
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    status: SessionStatus = "active"
    result: Outcome | None = None
    error: Outcome | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Present in an export; recomputed from the messages on import.
    id: Id | None = None
    message_count: Annotated[int, Meta(ge=0, le=MAX_INT32)] | None = None
    last_message_at: datetime | None = None
    version: Annotated[int, Meta(ge=1, le=MAX_INT32)] | None = None
    # The active branch's last message; absent (an export from before branches): the last.
    head_seq: Annotated[int, Meta(ge=0, le=MAX_SEQ)] | None = None


class ImportedMessage(Struct, forbid_unknown_fields=True):
    seq: Annotated[int, Meta(ge=1, le=MAX_SEQ)]
    role: Role
    content: Content
    created_at: datetime
    id: Id | None = None
    session_id: Id | None = None
    name: Name | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: Name | None = None
    metadata: dict[str, Any] | None = None
    token_count: TokenCount | None = None
    item: dict[str, Any] | None = None
    # An in_progress message is imported `interrupted`: nothing streams into the copy.
    status: MessageStatus = "completed"
    # The message it follows (0: a first message); absent (an export from before branches):
    # the document's message before it.
    parent_seq: Annotated[int, Meta(ge=0, le=MAX_SEQ)] | None = None


class ImportedToolCall(Struct, forbid_unknown_fields=True):
    tool_call_id: Name
    tool_name: Name
    created_at: datetime
    arguments: Any = msgspec.field(default_factory=dict)
    status: ToolCallStatus = "pending"
    result: Any = None
    error: str | None = None
    duration_ms: DurationMs | None = None
    completed_at: datetime | None = None
    message_id: Id | None = None
    id: Id | None = None
    session_id: Id | None = None


class ImportDocument(Struct, forbid_unknown_fields=True):
    format: Literal["chat-sessions.v1"]  # FORMAT
    session: ImportedSession
    messages: list[ImportedMessage] = msgspec.field(default_factory=list)
    tool_calls: list[ImportedToolCall] = msgspec.field(default_factory=list)
