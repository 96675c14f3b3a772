"""Wire shapes of messages and of the LLM context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from chat_sessions.bounds import TokenCount

# `developer` is OpenAI's successor of `system` for newer models; /context keeps both always.
Role = Literal["system", "developer", "user", "assistant", "tool"]
Name = Annotated[str, Meta(min_length=1, max_length=256)]
# A string, or an array of content parts (messages/parts.py), kept exactly as sent.
Content = str | list[dict[str, Any]]
MAX_BATCH = 500


class MessageCreate(Struct, forbid_unknown_fields=True):
    role: Role
    content: Content
    name: Name | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: Name | None = None
    metadata: dict[str, Any] | None = None
    token_count: TokenCount | None = None
    # A provider-native item (an OpenAI Responses item, an ADK event, ...), kept verbatim.
    item: dict[str, Any] | None = None


# A JSON Merge Patch (RFC 7396) applied in the appending transaction (sessions/state.py).
TraitsPatch = Annotated[
    dict[str, Any],
    Meta(description="A JSON Merge Patch of the session's traits, applied with the append"),
]
UserTraitsPatch = Annotated[
    dict[str, Any],
    Meta(
        description="A JSON Merge Patch of the traits of the session's user, applied with the "
        "append; 400 when the session has no user_id"
    ),
]


class MessageAppend(MessageCreate):
    """The body of a single append: a message, and state changes that happen with it."""

    traits_patch: TraitsPatch | UnsetType = UNSET
    user_traits_patch: UserTraitsPatch | UnsetType = UNSET


class MessageBatch(Struct, forbid_unknown_fields=True):
    messages: Annotated[list[MessageCreate], Meta(min_length=1, max_length=MAX_BATCH)]
    traits_patch: TraitsPatch | UnsetType = UNSET
    user_traits_patch: UserTraitsPatch | UnsetType = UNSET


class MessageRead(Struct):
    id: str
    session_id: str
    seq: int
    role: str
    content: Content
    name: str | None
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    metadata: dict[str, Any] | None
    item: dict[str, Any] | None
    token_count: int | None
    created_at: datetime


class MessagePage(Struct):
    data: list[MessageRead]
    next_cursor: str | None


class MessageList(Struct):
    data: list[MessageRead]


class Truncation(Struct):
    deleted: int


class ContextMessage(Struct, omit_defaults=True):
    """One message in chat-completions shape; absent optional fields are left out."""

    role: str
    content: str
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class Context(Struct):
    messages: list[ContextMessage]
