"""Wire shapes of sessions. Request bodies are strict: unknown fields are a 400."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

SessionStatus = Literal["active", "running", "waiting_for_user_input", "completed", "failed"]
UserId = Annotated[str, Meta(min_length=1, max_length=256)]
Title = Annotated[str, Meta(max_length=1000)]
Outcome = Annotated[str, Meta(max_length=65536)]


class SessionCreate(Struct, forbid_unknown_fields=True):
    user_id: UserId | None = None
    title: Title | None = None
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    status: SessionStatus = "active"
    result: Outcome | None = None
    error: Outcome | None = None


class SessionUpdate(Struct, forbid_unknown_fields=True):
    """PATCH body: absent fields stay as they are; `traits` is a JSON Merge Patch."""

    title: Title | UnsetType | None = UNSET
    user_id: UserId | UnsetType | None = UNSET
    status: SessionStatus | UnsetType = UNSET
    result: Outcome | UnsetType | None = UNSET
    error: Outcome | UnsetType | None = UNSET
    traits: dict[str, Any] | UnsetType = UNSET


class SessionRead(Struct):
    id: str
    user_id: str | None
    title: str | None
    traits: dict[str, Any]
    status: str
    result: str | None
    error: str | None
    message_count: int
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class SessionListItem(SessionRead):
    preview: str | None


class SessionPage(Struct):
    data: list[SessionListItem]
    next_cursor: str | None
