"""The ceiling: a bare Litestar app with the service's hot routes and response shapes, but no
database, no auth, no middleware. The benchmark serves it on the same uvicorn settings as the
service and reports each service figure as a ratio to this one.

Reads of the session named by BENCH_PARTS_SESSION (bench/run.py sets it to the seeded session
of messages with content parts and an item) answer such messages; every other session's, the
plain ones.

Run: uvicorn --app-dir bench bare_app:app --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import uuid_utils
from litestar import Litestar, Response, get, post
from litestar.params import QueryParameter
from payloads import message, parts_message

# The service's own wire shapes: parsing and encoding cost exactly what they cost there.
from chat_sessions.messages.schemas import (
    MessageBatch,
    MessageCreate,
    MessageList,
    MessagePage,
    MessageRead,
)
from chat_sessions.sessions.schemas import (
    SessionCreate,
    SessionListItem,
    SessionPage,
    SessionRead,
)

_seq = itertools.count(1)
_STARTED = datetime.now(UTC)


def _default(kind: Any) -> Any:
    """A value of a field's type, for fields the service may add to its shapes later."""
    inspect = msgspec.inspect
    if isinstance(kind, inspect.UnionType):
        if any(isinstance(option, inspect.NoneType) for option in kind.types):
            return None
        kind = kind.types[0]
    simple = {
        inspect.IntType: 0,
        inspect.FloatType: 0.0,
        inspect.StrType: "",
        inspect.BoolType: False,
        inspect.DateTimeType: _STARTED,
    }
    for type_, value in simple.items():
        if isinstance(kind, type_):
            return value
    if isinstance(kind, inspect.DictType):
        return {}
    if isinstance(kind, inspect.ListType):
        return []
    return None


_DEFAULTS: dict[type, dict[str, Any]] = {}


def build(shape: Any, row: dict[str, Any]) -> Any:
    """A response shape from a row by field name (the service builds its shapes from rows in
    the shape's order, wire.build): the shape's own fields, any the row lacks filled with a
    value of the right type."""
    defaults = _DEFAULTS.get(shape)
    if defaults is None:
        fields = msgspec.inspect.type_info(shape).fields  # type: ignore[attr-defined]
        defaults = _DEFAULTS[shape] = {field.name: _default(field.type) for field in fields}
    return shape(**{name: row.get(name, defaults[name]) for name in shape.__struct_fields__})


def _new_id() -> str:
    return str(uuid_utils.uuid7())


def _message_row(session_id: str, seq: int, new: MessageCreate) -> dict[str, Any]:
    return {
        "id": _new_id(),
        "session_id": session_id,
        "seq": seq,
        "role": new.role,
        "content": new.content,
        "name": new.name,
        "tool_calls": new.tool_calls,
        "tool_call_id": new.tool_call_id,
        "metadata": new.metadata,
        "item": new.item,
        "token_count": new.token_count,
        "created_at": datetime.now(UTC),
    }


def _session_row(session_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": session_id,
        "user_id": "u-1",
        "title": "Trip to Lisbon",
        "traits": {"plan": "pro", "locale": "pt-PT", "tags": ["bench"]},
        "status": "active",
        "result": None,
        "error": None,
        "message_count": 10_000,
        "last_message_at": _STARTED,
        "created_at": _STARTED,
        "updated_at": _STARTED,
        "version": 10_001,
        **extra,
    }


# What a read finds: rows shaped like the stored ones (the tail of the seeded 10,000-message
# session, where seq n holds message(n - 1)), and sessions for the list.
_HISTORY = [
    _message_row("00000000-0000-7000-8000-000000000000", seq, MessageCreate(**message(seq - 1)))
    for seq in range(9_001, 10_001)
]
# The session whose messages carry parts and an item (seq n holds parts_message(n - 1)): one
# string comparison a read tells it apart, where the service looks every session up anyway.
_PARTS_SESSION = os.environ.get("BENCH_PARTS_SESSION", "")
_PARTS_HISTORY = [
    _message_row(
        "00000000-0000-7000-8000-000000000001", seq, MessageCreate(**parts_message(seq - 1))
    )
    for seq in range(1, 1_001)
]
_SESSIONS = [_session_row(_new_id(), preview=message(i)["content"][:80]) for i in range(100)]


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@post("/v1/sessions", status_code=201)
async def create_session(data: SessionCreate) -> Response[SessionRead]:
    now = datetime.now(UTC)
    session_id = _new_id()
    row = build(
        SessionRead,
        {
            "id": session_id,
            "user_id": data.user_id,
            "title": data.title,
            "traits": data.traits,
            "status": data.status,
            "result": data.result,
            "error": data.error,
            "message_count": 0,
            "last_message_at": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        },
    )
    return Response(
        row, status_code=201, headers={"ETag": '"1"', "Location": f"/v1/sessions/{session_id}"}
    )


@get("/v1/sessions")
async def list_sessions(
    user_id: Annotated[str | None, QueryParameter(min_length=1, max_length=256)] = None,
    status: str | None = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> SessionPage:
    rows = _SESSIONS[:limit]
    return SessionPage(
        data=[build(SessionListItem, row) for row in rows],
        next_cursor="WyJhYmNkZWYwMTIzNDU2Nzg5IiwiMjAyNi0xMS0yMlQxMDowMDowMCIsIngiXQ",
    )


@get("/v1/sessions/{session_id:str}")
async def get_session(session_id: str) -> Response[SessionRead]:
    return Response(build(SessionRead, _session_row(session_id)), headers={"ETag": '"10001"'})


@post("/v1/sessions/{session_id:str}/messages", status_code=201)
async def append_message(session_id: str, data: MessageCreate) -> Response[MessageRead]:
    row = build(MessageRead, _message_row(session_id, next(_seq), data))
    return Response(row, status_code=201)


@post("/v1/sessions/{session_id:str}/messages/batch", status_code=201)
async def append_batch(session_id: str, data: MessageBatch) -> Response[MessageList]:
    rows = [build(MessageRead, _message_row(session_id, next(_seq), new)) for new in data.messages]
    return Response(MessageList(data=rows), status_code=201)


@get("/v1/sessions/{session_id:str}/messages")
async def list_messages(
    session_id: str,
    order: Literal["asc", "desc"] = "asc",
    after_seq: Annotated[int | None, QueryParameter(ge=0)] = None,
    before_seq: Annotated[int | None, QueryParameter(ge=0)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> MessagePage:
    history = _PARTS_HISTORY if session_id == _PARTS_SESSION else _HISTORY
    rows = history[-limit:][::-1] if order == "desc" else history[:limit]
    return MessagePage(
        data=[build(MessageRead, {**row, "session_id": session_id}) for row in rows],
        next_cursor="WyJhYmNkZWYwMTIzNDU2Nzg5IiwgOTk1MF0",
    )


app = Litestar(
    route_handlers=[
        health,
        create_session,
        list_sessions,
        get_session,
        append_message,
        append_batch,
        list_messages,
    ],
    debug=False,
)
