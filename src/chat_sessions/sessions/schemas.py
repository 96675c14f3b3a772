"""Wire shapes of sessions. Request bodies are strict: unknown fields are a 400."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from chat_sessions.bounds import MAX_SEQ
from chat_sessions.messages.schemas import MessagePage
from chat_sessions.users.schemas import UserId, UserTraits

SessionStatus = Literal["active", "running", "waiting_for_user_input", "completed", "failed"]
Title = Annotated[str, Meta(max_length=1000)]
Outcome = Annotated[str, Meta(max_length=65536)]
# The caller's own id for a session: 1..256 printable characters, that is, no control
# character (Unicode's Cc: U+0000-U+001F, U+007F-U+009F). A pattern rather than a check in
# code, so the OpenAPI document states the rule and a client can test it before sending. It
# ends in "nothing follows" rather than `$`: Python's `$` (msgspec, Litestar) also matches
# before a final newline, JSON Schema's does not; this reads the same in both.
MAX_EXTERNAL_ID = 256
EXTERNAL_ID_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]+(?![\\s\\S])"
EXTERNAL_ID_RULE = f"1..{MAX_EXTERNAL_ID} characters, none of them a control character"
ExternalId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        pattern=EXTERNAL_ID_PATTERN,
        description=f"The caller's own id for the session, unique in the tenant: "
        f"{EXTERNAL_ID_RULE}",
    ),
]


HeadSeq = Annotated[
    int,
    Meta(
        ge=0,
        le=MAX_SEQ,
        description="Switch branch: the head moves to the most recently appended message "
        "among this seq and its descendants (0: the newest message of all); a seq the "
        "session does not have is a 400",
    ),
]


class SessionCreate(Struct, forbid_unknown_fields=True):
    """With an `external_id` the tenant already uses: that session, unchanged (get-or-create)."""

    user_id: UserId | None = None
    external_id: ExternalId | None = None
    title: Title | None = None
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    status: SessionStatus = "active"
    result: Outcome | None = None
    error: Outcome | None = None


class SessionUpdate(Struct, forbid_unknown_fields=True):
    """PATCH body: absent fields stay as they are; `traits` is a JSON Merge Patch."""

    title: Title | UnsetType | None = UNSET
    user_id: UserId | UnsetType | None = UNSET
    external_id: ExternalId | UnsetType | None = UNSET
    status: SessionStatus | UnsetType = UNSET
    result: Outcome | UnsetType | None = UNSET
    error: Outcome | UnsetType | None = UNSET
    traits: dict[str, Any] | UnsetType = UNSET
    # Switch branch: the head moves to the newest message among this seq and its descendants.
    head_seq: HeadSeq | UnsetType = UNSET


class SessionFork(Struct, forbid_unknown_fields=True):
    """POST /fork: a new session whose history is a copy of the branch up to `at_seq`
    (default: the head); title, traits and user_id copied unless given."""

    at_seq: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=MAX_SEQ,
                description="The last message copied, with its ancestors (default: the head; "
                "0: none); a seq the session does not have is a 400",
            ),
        ]
        | None
    ) = None
    title: Title | UnsetType | None = UNSET
    traits: dict[str, Any] | UnsetType = UNSET
    user_id: UserId | UnsetType | None = UNSET
    external_id: ExternalId | None = None


class SessionRead(Struct):
    id: str
    user_id: str | None
    external_id: str | None
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
    # The last message of the active branch (0: none).
    head_seq: int


class SessionListItem(SessionRead):
    preview: str | None


class SessionPage(Struct):
    data: list[SessionListItem]
    next_cursor: str | None


class SessionSnapshot(Struct):
    """GET /snapshot: a session, its newest messages (newest first) and named end-users'
    traits, in one read."""

    session: SessionRead
    messages: MessagePage
    user_traits: list[UserTraits]
