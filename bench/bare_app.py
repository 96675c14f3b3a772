"""The ceiling: a bare Litestar app with the service's hot routes, each answering a response
built once at start-up, on the same uvicorn settings as the service. The benchmark reports
each service figure as a ratio to this one.

What it answers: the service's own answers. Before this app starts, bench/run.py sends each
scenario's request to the service once and writes what came back to the file BENCH_ANSWERS
names (bench/answers.py); here each is decoded, once, into the wire shape the service's
handler returns (checked to encode back to the same bytes). So the JSON is the service's, byte
for byte in shape and size, content parts and items included; before each scenario the run
sends both sides the same request and holds their sizes equal, seqs' digits set apart
(answers.sanity_check; a difference fails the run).

Why this is the fair ceiling. A ratio should say what share of the framework's own throughput
the service keeps, so the ceiling must do, per request, exactly the work the framework does
for the service's kind of handler, and nothing more:

- The same handler shape. Each route takes the parameters the service's takes, with the same
  types and bounds, so Litestar parses and validates the same query string and path; a POST
  takes `data` as the same msgspec Struct, so Litestar decodes and validates the body into it
  every time, as it must for the service. Handlers return what the service's return, a Struct
  or `Response[Struct]` (built per request, as the service's are; the headers the service
  sends, ETag and Location, are strings made once here).
- No application work. The answer is a Struct built at start-up; nothing is built from rows
  (the previous ceiling built 50 Structs field by field per page, in Python, which made it
  slower and every ratio flattering). What is left per request is choosing between two
  prepared answers where the service's route serves two kinds (the session with parts or
  not, first page or a cursor's, a user's or an assistant's message): a comparison or two.
- Encoding stays in. Litestar encodes a returned Struct on every request, for the service as
  for this app: that is the framework's work for this handler shape, and the service cannot
  skip it for answers it has only just read or written. Returning pre-encoded bytes instead
  would measure another handler shape (a service route that returned bytes the database
  built, the lead issue 13 names, would be measured against a bytes-returning ceiling for
  that route). It is not small for the long answers: Litestar's `encode_json` of the page of
  50 (23 KB) took ~53 µs on the busy 2-core machine, where the bare app spent 120-150 µs
  of CPU a read in that hour's quick runs; an appended message (0.4 KB) ~1.7 µs. So a bytes
  ceiling would lower the read ratios by roughly a third (an estimate from these figures,
  not a measurement), against a figure the service's handlers cannot reach without changing
  their shape.
- The same process set-up. The service moves the objects of its start-up out of the garbage
  collector's reach (`gc.freeze`, app.py); this app does too, so that its collections do not
  walk more than the service's do.

What the ceiling leaves out, and the service therefore pays against it: authentication, the
request checks of bodies.py, the middleware, the database, the search index.

Run: BENCH_ANSWERS=answers.json uvicorn --app-dir bench bare_app:app --loop uvloop \
    --http httptools --no-access-log
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar, Response, get, post
from litestar.params import QueryParameter

from chat_sessions.bounds import MAX_COUNT, MAX_HISTORY_PAGE, PageLimit
from chat_sessions.messages.routes import Seq
from chat_sessions.messages.schemas import (
    Context,
    DeltaAck,
    MessageBatch,
    MessageCreate,
    MessageDelta,
    MessageList,
    MessagePage,
    MessageRead,
    Role,
)
from chat_sessions.pagination import Cursor
from chat_sessions.preconditions import etag
from chat_sessions.sessions.schemas import (
    SessionCreate,
    SessionFork,
    SessionPage,
    SessionRead,
    SessionStatus,
)

# Each answer's wire shape: what the service's handler for it returns.
SHAPES: dict[str, type[msgspec.Struct]] = {
    "session": SessionRead,
    "session_created": SessionRead,
    "sessions_first": SessionPage,
    "sessions_deep": SessionPage,
    "last50": MessagePage,
    "last50_parts": MessagePage,
    "last50_branched": MessagePage,
    "forked": SessionRead,
    "appended": MessageRead,
    "appended_user": MessageRead,
    "appended_parts": MessageRead,
    "batch": MessageList,
    "context": Context,
    "delta": DeltaAck,
}


class Answers(msgspec.Struct):
    """The file bench/run.py writes: the service's answers, and the sessions whose answers
    are of another kind (messages with content parts and an item)."""

    parts_session: str  # its reads answer last50_parts
    parts_append_session: str  # its appends answer appended_parts
    branched_session: str  # its reads answer last50_branched
    bodies: dict[str, str]  # answer name -> the service's JSON


def load(path: Path) -> tuple[Answers, dict[str, Any]]:
    """The answers file and each answer as its wire shape; ValueError when one does not encode
    back to the service's bytes (a shape here that no longer matches the service's)."""
    answers = msgspec.json.decode(path.read_bytes(), type=Answers)
    built: dict[str, Any] = {}
    for name, shape in SHAPES.items():
        body = answers.bodies[name].encode()
        built[name] = msgspec.json.decode(body, type=shape)
        if msgspec.json.encode(built[name]) != body:
            raise ValueError(f"the answer {name!r} does not encode back to the service's JSON")
    return answers, built


_ANSWERS, _BUILT = load(Path(os.environ["BENCH_ANSWERS"]))
_PARTS_SESSION = _ANSWERS.parts_session
_PARTS_APPEND_SESSION = _ANSWERS.parts_append_session
_SESSION: SessionRead = _BUILT["session"]
_SESSION_HEADERS = {"ETag": etag(_SESSION.version)}
_CREATED: SessionRead = _BUILT["session_created"]
_CREATED_HEADERS = {"ETag": etag(_CREATED.version), "Location": f"/v1/sessions/{_CREATED.id}"}
_SESSIONS_FIRST: SessionPage = _BUILT["sessions_first"]
_SESSIONS_DEEP: SessionPage = _BUILT["sessions_deep"]
_LAST50: MessagePage = _BUILT["last50"]
_LAST50_PARTS: MessagePage = _BUILT["last50_parts"]
_LAST50_BRANCHED: MessagePage = _BUILT["last50_branched"]
_BRANCHED_SESSION = _ANSWERS.branched_session
_FORKED: SessionRead = _BUILT["forked"]
_FORKED_HEADERS = {"ETag": etag(_FORKED.version), "Location": f"/v1/sessions/{_FORKED.id}"}
_APPENDED: MessageRead = _BUILT["appended"]
_APPENDED_USER: MessageRead = _BUILT["appended_user"]
_APPENDED_PARTS: MessageRead = _BUILT["appended_parts"]
_BATCH: MessageList = _BUILT["batch"]
_CONTEXT: Context = _BUILT["context"]
_DELTA: DeltaAck = _BUILT["delta"]


def freeze_start_up_objects() -> None:
    """As the service does at start-up (app.py's lifespan)."""
    gc.collect()
    gc.freeze()


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@post("/v1/sessions", status_code=201)
async def create_session(data: SessionCreate) -> Response[SessionRead]:
    return Response(_CREATED, status_code=201, headers=_CREATED_HEADERS)


@get("/v1/sessions")
async def list_sessions(
    user_id: Annotated[str | None, QueryParameter(min_length=1, max_length=256)] = None,
    status: SessionStatus | None = None,
    limit: PageLimit = 20,
    cursor: Cursor = None,
) -> SessionPage:
    return _SESSIONS_FIRST if cursor is None else _SESSIONS_DEEP


@get("/v1/sessions/{session_id:str}")
async def get_session(session_id: str) -> Response[SessionRead]:
    return Response(_SESSION, headers=_SESSION_HEADERS)


@post("/v1/sessions/{session_id:str}/messages", status_code=201)
async def append_message(session_id: str, data: MessageCreate) -> Response[MessageRead]:
    if session_id == _PARTS_APPEND_SESSION:
        return Response(_APPENDED_PARTS, status_code=201)
    return Response(_APPENDED_USER if data.role == "user" else _APPENDED, status_code=201)


@post("/v1/sessions/{session_id:str}/messages/batch", status_code=201)
async def append_batch(session_id: str, data: MessageBatch) -> Response[MessageList]:
    return Response(_BATCH, status_code=201)


@post("/v1/sessions/{session_id:str}/messages/{message_id:str}/deltas", status_code=200)
async def append_delta(session_id: str, message_id: str, data: MessageDelta) -> DeltaAck:
    return _DELTA


@get("/v1/sessions/{session_id:str}/messages")
async def list_messages(
    session_id: str,
    order: Literal["asc", "desc"] = "asc",
    after_seq: Seq = None,
    before_seq: Seq = None,
    role: Role | None = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_HISTORY_PAGE)] = 100,
    cursor: Cursor = None,
) -> MessagePage:
    if session_id == _BRANCHED_SESSION:
        return _LAST50_BRANCHED
    return _LAST50_PARTS if session_id == _PARTS_SESSION else _LAST50


@post("/v1/sessions/{session_id:str}/fork", status_code=201)
async def fork_session(session_id: str, data: SessionFork) -> Response[SessionRead]:
    return Response(_FORKED, status_code=201, headers=_FORKED_HEADERS)


@get("/v1/sessions/{session_id:str}/context")
async def get_context(
    session_id: str,
    max_messages: Annotated[int | None, QueryParameter(ge=1, le=MAX_COUNT)] = None,
    max_tokens: Annotated[int | None, QueryParameter(ge=1, le=MAX_COUNT)] = None,
) -> Context:
    return _CONTEXT


app = Litestar(
    route_handlers=[
        health,
        create_session,
        list_sessions,
        get_session,
        append_message,
        append_batch,
        append_delta,
        list_messages,
        fork_session,
        get_context,
    ],
    on_startup=[freeze_start_up_objects],
    debug=False,
)
