"""Typed results: the service's answers as dataclasses (plain `dataclasses`, so the client
depends on httpx alone). Fields the service adds later are ignored, not an error."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Content = str | list[dict[str, Any]]


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    # Python 3.10's fromisoformat does not read a trailing "Z".
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def _known(cls: type, data: dict[str, Any], *times: str) -> dict[str, Any]:
    """The fields of `cls` found in `data`, with the named times parsed."""
    names = {item.name for item in fields(cls)}
    values = {name: value for name, value in data.items() if name in names}
    for name in times:
        if name in values:
            values[name] = parse_time(values[name])
    return values


@dataclass
class Session:
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
    # The last message of the active branch (0: none); what history reads follow by default.
    head_seq: int = 0
    preview: str | None = None  # in listings only: the start of the last message's text
    # Whether the create that answered it made it (False: an `external_id` already in use).
    created: bool | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        return cls(**_known(cls, data, "last_message_at", "created_at", "updated_at"))


@dataclass
class Message:
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
    status: str = "completed"
    # The seq of the message it follows (0: a first message); siblings share it.
    parent_seq: int = 0
    # Whether the service answered an earlier store of this same append (Idempotent-Replayed).
    replayed: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(**_known(cls, data, "created_at"))


@dataclass
class NewMessage:
    """A message to append (in a batch; `append_message` takes the same fields directly)."""

    role: str
    content: Content = ""
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    metadata: dict[str, Any] | None = None
    token_count: int | None = None
    item: dict[str, Any] | None = None
    status: str | None = None  # "in_progress" starts a streamed assistant answer

    def to_json(self) -> dict[str, Any]:
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if getattr(self, item.name) is not None
        }


@dataclass
class Page(Generic[T]):
    data: list[T]
    next_cursor: str | None


@dataclass
class ContextMessage:
    """One message of `/context`, in chat-completions shape; `as_dict()` is what an LLM SDK
    takes."""

    role: str
    content: str
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContextMessage:
        return cls(**_known(cls, data))

    def as_dict(self) -> dict[str, Any]:
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if getattr(self, item.name) is not None
        }


@dataclass
class ToolCall:
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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        return cls(**_known(cls, data, "created_at", "completed_at"))


@dataclass
class SearchHit:
    session_id: str
    message_id: str
    seq: int
    role: str
    snippet: str
    score: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchHit:
        return cls(**_known(cls, data))


@dataclass
class Stats:
    sessions: int
    messages: int
    tokens: int
    users: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stats:
        return cls(**_known(cls, data))


@dataclass
class UserTraits:
    """An end-user's traits, shared by all their sessions; version 0 and no `updated_at` when
    nothing was ever written."""

    user_id: str
    traits: dict[str, Any]
    version: int
    updated_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserTraits:
        return cls(**_known(cls, data, "updated_at"))


@dataclass
class SessionSnapshot:
    """`get_snapshot`'s answer: the session, its newest messages (newest first; the page's
    `next_cursor` reads further back with `order="desc"`) and the named end-users' traits."""

    session: Session
    messages: Page[Message]
    user_traits: list[UserTraits]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSnapshot:
        page = data["messages"]
        return cls(
            session=Session.from_json(data["session"]),
            messages=Page([Message.from_json(m) for m in page["data"]], page["next_cursor"]),
            user_traits=[UserTraits.from_json(traits) for traits in data["user_traits"]],
        )


@dataclass
class DeltaAck:
    """A streamed message's state after a delta: its content's length in characters so far."""

    id: str
    seq: int
    length: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeltaAck:
        return cls(**_known(cls, data))


@dataclass
class SessionExport:
    """An export document: the typed session and messages, and `document`, the document
    itself, which `import_session` takes back (in this tenant or another)."""

    session: Session
    messages: list[Message]
    tool_calls: list[ToolCall]
    document: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionExport:
        return cls(
            session=Session.from_json(data["session"]),
            messages=[Message.from_json(message) for message in data["messages"]],
            tool_calls=[ToolCall.from_json(call) for call in data.get("tool_calls", [])],
            document=data,
        )
