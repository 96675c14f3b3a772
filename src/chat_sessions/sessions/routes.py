"""Session routes: parse, call one service function, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from chat_sessions.bounds import MAX_HISTORY_PAGE, PageLimit
from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.pagination import Cursor
from chat_sessions.preconditions import IfMatch, if_match_versions, tagged
from chat_sessions.sessions import fork, listing, service, snapshot
from chat_sessions.sessions.schemas import (
    EXTERNAL_ID_PATTERN,
    EXTERNAL_ID_RULE,
    MAX_EXTERNAL_ID,
    SessionCreate,
    SessionFork,
    SessionPage,
    SessionRead,
    SessionSnapshot,
    SessionStatus,
    SessionUpdate,
    UserId,
)

MAX_SNAPSHOT_USERS = 10
_BOTH = "; not with the other of external_id and external_id_prefix (400)"
ExternalIdQuery = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        pattern=EXTERNAL_ID_PATTERN,
        description=f"Only the session with this external_id, 0 or 1 ({EXTERNAL_ID_RULE}){_BOTH}",
    ),
]
ExternalIdPrefixQuery = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=MAX_EXTERNAL_ID,
        pattern=EXTERNAL_ID_PATTERN,
        description="Only the sessions whose external_id starts with this, character for "
        "character (`%`, `_` and `\\` too), listed in external_id order (code point order) "
        f"instead of by activity ({EXTERNAL_ID_RULE}){_BOTH}",
    ),
]
_EXISTING = {
    200: ResponseSpec(
        data_container=SessionRead,
        description="The tenant already has a session with this `external_id`: that session, "
        "unchanged (get-or-create)",
        generate_examples=False,
    )
}


def _one(session: SessionRead, status_code: int = 200, **headers: str) -> Response[SessionRead]:
    return tagged(session, session.version, status_code, **headers)


class SessionController(Controller):
    path = "/sessions"
    tags = ["sessions"]

    @post(
        "/",
        status_code=201,
        summary="Create a session, or get the one with this external_id",
        description="`201` and `Location`: created. With an `external_id` the tenant already "
        "uses: `200` and that session, unchanged, whatever else the body says.",
        responses={**tenant_errors(409, body=True), **_EXISTING},
    )
    async def create_session(
        self,
        caller: NamedDependency[Caller],
        data: JSONBody[SessionCreate],
    ) -> Response[SessionRead]:
        row, created = await service.create_session(
            caller.tx,
            tenant_id=caller.tenant_id,
            data=data,
            max_json_bytes=caller.settings.max_json_bytes,
        )
        if not created:
            return _one(row)
        return _one(row, 201, Location=f"/v1/sessions/{row.id}")

    @post(
        "/{session_id:str}/fork",
        status_code=201,
        summary="Fork: a new session with a copy of one branch",
        description="The new session's history is a copy of the branch from the root to "
        "`at_seq` (default: the head), renumbered 1..k, with those messages' tool calls, "
        "metadata and timestamps; title, traits and user_id are copied unless given. The "
        "source is untouched. `201` and `Location`: the new session.",
        responses=tenant_errors(404, 409, body=True),
    )
    async def fork_session(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        data: JSONBody[SessionFork],
    ) -> Response[SessionRead]:
        row = await fork.fork_session(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            data=data,
            max_json_bytes=caller.settings.max_json_bytes,
        )
        return _one(row, 201, Location=f"/v1/sessions/{row.id}")

    @get(
        "/",
        summary="List sessions, newest activity first (by external_id for a prefix)",
        responses=tenant_errors(),
    )
    async def list_sessions(
        self,
        caller: NamedDependency[Caller],
        user_id: Annotated[str | None, QueryParameter(min_length=1, max_length=256)] = None,
        status: FromQuery[SessionStatus | None] = None,
        external_id: ExternalIdQuery = None,
        external_id_prefix: ExternalIdPrefixQuery = None,
        limit: PageLimit = 20,
        cursor: Cursor = None,
    ) -> SessionPage:
        found, next_cursor = await listing.list_sessions(
            caller.tx,
            tenant_id=caller.tenant_id,
            user_id=user_id,
            status=status,
            limit=limit,
            cursor=cursor,
            external_id=external_id,
            external_id_prefix=external_id_prefix,
        )
        return SessionPage(data=found, next_cursor=next_cursor)

    @get("/{session_id:str}", summary="Get a session (with ETag)", responses=tenant_errors(404))
    async def get_session(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
    ) -> Response[SessionRead]:
        return _one(
            await service.get_session(caller.tx, tenant_id=caller.tenant_id, session_id=session_id)
        )

    @get(
        "/{session_id:str}/snapshot",
        summary="A session with its newest messages and end-users' traits, in one read",
        description="What an agent framework loads to resume a session, in one request: the "
        "session; its `messages` newest messages of the active branch, newest first "
        "(`messages.next_cursor` reads further back: `GET .../messages?order=desc&cursor=`); "
        "and the traits of each end-user named by `user_traits` (repeated, up to "
        f"{MAX_SNAPSHOT_USERS}; one never written to has `{{}}` at version 0).",
        responses=tenant_errors(404),
    )
    async def get_snapshot(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        messages: Annotated[
            int,
            QueryParameter(
                ge=0,
                le=MAX_HISTORY_PAGE,
                description="How many of the newest messages (0: none)",
                schema_extra={"minimum": 0},
            ),
        ] = 100,
        user_traits: Annotated[
            list[UserId] | None,
            QueryParameter(
                max_items=MAX_SNAPSHOT_USERS,
                description="An end-user whose traits to include",
                # Litestar leaves the items' bounds (UserId's) out of the document.
                schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": 256}},
            ),
        ] = None,
    ) -> SessionSnapshot:
        return await snapshot.read_snapshot(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            newest_messages=messages,
            user_ids=user_traits or [],
        )

    @patch(
        "/{session_id:str}",
        summary="Update a session; traits as a JSON Merge Patch",
        description="`409` when another session of the tenant has the `external_id` given.",
        responses=tenant_errors(404, 409, 412, body=True),
    )
    async def update_session(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        data: JSONBody[SessionUpdate],
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
    ) -> Response[SessionRead]:
        row = await service.update_session(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            changes=data,
            expected_versions=if_match_versions(request, if_match),
            max_json_bytes=caller.settings.max_json_bytes,
        )
        return _one(row)

    @put(
        "/{session_id:str}/traits",
        summary="Replace a session's traits wholesale",
        responses=tenant_errors(404, 412, body=True),
    )
    async def replace_traits(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        data: JSONBody[dict[str, Any]],
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
    ) -> Response[SessionRead]:
        row = await service.replace_traits(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            traits=data,
            expected_versions=if_match_versions(request, if_match),
            max_json_bytes=caller.settings.max_json_bytes,
        )
        return _one(row)

    @delete(
        "/{session_id:str}",
        status_code=204,
        summary="Delete a session and all under it",
        responses=tenant_errors(404, 412),
    )
    async def delete_session(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
    ) -> None:
        await service.delete_session(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            expected_versions=if_match_versions(request, if_match),
        )
