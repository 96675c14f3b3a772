"""Tool call routes."""

from __future__ import annotations

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from chat_sessions.bounds import PageLimit
from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.pagination import Cursor
from chat_sessions.tool_calls import service
from chat_sessions.tool_calls.schemas import (
    ToolCallCreate,
    ToolCallPage,
    ToolCallRead,
    ToolCallStatus,
    ToolCallUpdate,
)


class ToolCallController(Controller):
    path = "/sessions/{session_id:str}/tool-calls"
    tags = ["tool calls"]

    @post(
        "/",
        status_code=201,
        summary="Record a tool call requested by the agent",
        responses=tenant_errors(404, 409, body=True),
    )
    async def create_tool_call(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        data: JSONBody[ToolCallCreate],
    ) -> ToolCallRead:
        return await service.create_tool_call(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            data=data,
            max_json_bytes=caller.settings.max_json_bytes,
        )

    @patch(
        "/{tool_call_pk:str}",
        summary="Move a tool call along its lifecycle",
        responses=tenant_errors(404, 409, body=True),
    )
    async def update_tool_call(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        tool_call_pk: FromPath[str],
        data: JSONBody[ToolCallUpdate],
    ) -> ToolCallRead:
        return await service.update_tool_call(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            tool_call_pk=tool_call_pk,
            change=data,
            max_json_bytes=caller.settings.max_json_bytes,
        )

    @get("/", summary="Tool calls in creation order", responses=tenant_errors(404))
    async def list_tool_calls(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        status: FromQuery[ToolCallStatus | None] = None,
        limit: PageLimit = 20,
        cursor: Cursor = None,
    ) -> ToolCallPage:
        found, next_cursor = await service.list_tool_calls(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            status=status,
            limit=limit,
            cursor=cursor,
        )
        return ToolCallPage(data=found, next_cursor=next_cursor)
