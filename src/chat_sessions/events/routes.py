"""The event stream route: `GET /v1/sessions/{id}/events` (the hub opens the stream)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEvent

from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.events.hub import EventHub
from chat_sessions.http import HEAD_AS_GET
from chat_sessions.messages.routes import Seq

LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        max_length=100,
        description="Resume after this event (what EventSource sends when it reconnects)",
    ),
]


@get(
    "/sessions/{session_id:str}/events",
    tags=["events"],
    media_type="text/event-stream",
    response_description="The session's events, as they happen (a stream that stays open)",
    summary="Follow a session live (Server-Sent Events)",
    description=(
        "`text/event-stream`: `message.created`, `message.delta`, `message.updated`, "
        "`messages.deleted`, `session.updated`, `session.deleted` (then the stream ends), each "
        "with an opaque `id` and JSON `data`; a `: ping` comment at least every 15 s. With "
        "`Last-Event-ID` the stream first sends what the client missed (every message it has "
        "not seen, as it is now); `after_seq=N` starts after seq N; with neither it starts "
        "with what happens from now on, opening with its position (an `id` with no `data`: "
        "a point to resume from, no event). `429` past MAX_STREAMS_PER_TENANT open streams."
    ),
    responses=tenant_errors(404),
)
async def follow_session(
    caller: NamedDependency[Caller],
    state: State,
    request: Request,  # type: ignore[type-arg]
    session_id: FromPath[str],
    after_seq: Seq = None,
    last_event_id: LastEventId = None,
) -> ServerSentEvent:
    hub: EventHub = state.event_hub
    stream = await hub.follow(
        caller.tx,
        tenant_id=caller.tenant_id,
        session_id=session_id,
        after_seq=after_seq,
        last_event_id=last_event_id,
        scope=request.scope,  # type: ignore[arg-type]
        head=HEAD_AS_GET in request.scope,
    )
    # A proxy (nginx) must pass each event on as it comes, not buffer the response.
    return ServerSentEvent(
        () if stream is None else stream.events(), headers={"X-Accel-Buffering": "no"}
    )
