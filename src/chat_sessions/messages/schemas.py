"""Wire shapes of messages and of the LLM context."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from chat_sessions.bounds import MAX_SEQ, TokenCount
from chat_sessions.users.schemas import UserId

# `developer` is OpenAI's successor of `system` for newer models; /context keeps both always.
Role = Literal["system", "developer", "user", "assistant", "tool"]
Name = Annotated[str, Meta(min_length=1, max_length=256)]
# A string, or an array of content parts (messages/parts.py), kept exactly as sent.
Content = str | list[dict[str, Any]]
MAX_BATCH = 500
# A message's lifecycle (messages/streaming.py): an append may start an assistant answer
# `in_progress`; a PATCH closes it `completed` or `interrupted`, and so does the idle sweep.
MessageStatus = Literal["completed", "in_progress", "interrupted"]
AppendStatus = Annotated[
    Literal["completed", "in_progress"],
    Meta(
        description="`in_progress`: an assistant answer stored now and grown by deltas, "
        "closed by a PATCH (string content only)"
    ),
]
ClosingStatus = Literal["completed", "interrupted"]


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
    # Unset unless given, so the idempotency digest of a body without it stays what it was.
    status: AppendStatus | UnsetType = UNSET


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

MAX_END_USERS_PATCHED = 10
EndUserTraitsPatches = Annotated[
    dict[UserId, dict[str, Any]],
    Meta(
        max_length=MAX_END_USERS_PATCHED,
        description="JSON Merge Patches of the traits of up to 10 end-users, by user_id (any "
        "users, not only the session's: ADK keeps `app:` state on one), applied with the "
        "append",
    ),
]


# Where an append starts a branch (messages/branches.py).
ParentSeq = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_SEQ,
        description="The seq of the message this one follows (0: a new first message); "
        "absent: the session's head. A seq the session does not have is a 400. The message "
        "becomes the head.",
    ),
]


class MessageAppend(MessageCreate):
    """The body of a single append: a message, and state changes that happen with it."""

    # Unset unless given (as `status`), so the digest of a body without it stays what it was.
    parent_seq: ParentSeq | UnsetType = UNSET

    traits_patch: TraitsPatch | UnsetType = UNSET
    user_traits_patch: UserTraitsPatch | UnsetType = UNSET
    end_user_traits_patches: EndUserTraitsPatches | UnsetType = UNSET


class MessageBatch(Struct, forbid_unknown_fields=True):
    messages: Annotated[list[MessageCreate], Meta(min_length=1, max_length=MAX_BATCH)]
    # The first message's parent; each next one follows the one before.
    parent_seq: ParentSeq | UnsetType = UNSET
    traits_patch: TraitsPatch | UnsetType = UNSET
    user_traits_patch: UserTraitsPatch | UnsetType = UNSET
    end_user_traits_patches: EndUserTraitsPatches | UnsetType = UNSET


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
    status: MessageStatus
    # The seq of the message it follows (0: a first message); siblings share it.
    parent_seq: int


class MessageDelta(Struct, forbid_unknown_fields=True):
    """Text to add to an in-progress message's content; `""` only keeps it alive."""

    content: str


class DeltaAck(Struct):
    id: str
    seq: int
    length: Annotated[int, Meta(description="The content's length in characters so far")]


class MessageClose(Struct, forbid_unknown_fields=True):
    """Closes an in-progress message; a given `content` replaces the streamed text."""

    status: ClosingStatus
    content: Content | UnsetType = UNSET
    token_count: TokenCount | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType | None = UNSET
    item: dict[str, Any] | UnsetType | None = UNSET


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
