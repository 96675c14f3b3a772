"""Wire shapes of tool calls (the tool executions of an agent run)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from chat_sessions.wire import MAX_STORED_INT

ToolCallStatus = Literal["pending", "executing", "completed", "failed"]
Name = Annotated[str, Meta(min_length=1, max_length=256)]


class ToolCallCreate(Struct, forbid_unknown_fields=True):
    tool_call_id: Name
    tool_name: Name
    arguments: Any = msgspec.field(default_factory=dict)
    message_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class ToolCallUpdate(Struct, forbid_unknown_fields=True):
    status: ToolCallStatus
    result: Any | UnsetType = UNSET
    error: Annotated[str, Meta(max_length=65536)] | UnsetType | None = UNSET
    duration_ms: Annotated[int, Meta(ge=0, le=MAX_STORED_INT)] | UnsetType | None = UNSET


class ToolCallRead(Struct):
    id: str
    session_id: str
    message_id: str | None
    tool_call_id: str
    tool_name: str
    arguments: Any
    status: str
    result: Any
    error: str | None
    duration_ms: int | None
    created_at: datetime
    completed_at: datetime | None


class ToolCallPage(Struct):
    data: list[ToolCallRead]
    next_cursor: str | None
