"""Tool calls: created pending, moved through their lifecycle, listed in creation order."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET
from sqlalchemy import insert, select, update

from chat_sessions.db import Transaction
from chat_sessions.errors import Conflict, NotFound
from chat_sessions.jsonvalues import check_json
from chat_sessions.models import messages, new_id, tool_calls, utcnow
from chat_sessions.pagination import cut_page, decode_cursor
from chat_sessions.sessions.service import ensure_session
from chat_sessions.tool_calls.schemas import ToolCallCreate, ToolCallRead, ToolCallUpdate
from chat_sessions.wire import build, columns

# Where each status may go next. A finished call is final: a retried tool is a new call.
LEGAL_MOVES: dict[str, frozenset[str]] = {
    "pending": frozenset({"executing", "completed", "failed"}),
    "executing": frozenset({"completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset(),
}
FINISHED = frozenset({"completed", "failed"})

TOOL_CALL_COLUMNS = columns(ToolCallRead, tool_calls)


async def create_tool_call(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    data: ToolCallCreate,
    max_json_bytes: int,
) -> ToolCallRead:
    check_json(data.arguments, "arguments", max_json_bytes)
    await ensure_session(tx, tenant_id=tenant_id, session_id=session_id)
    if data.message_id is not None:
        found = (
            await tx.execute(
                select(messages.c.id).where(
                    messages.c.id == data.message_id,
                    messages.c.session_id == session_id,
                    messages.c.tenant_id == tenant_id,
                )
            )
        ).first()
        if found is None:
            raise NotFound("message not found in this session")
    statement = (
        insert(tool_calls)
        .values(
            id=new_id(),
            tenant_id=tenant_id,
            session_id=session_id,
            message_id=data.message_id,
            tool_call_id=data.tool_call_id,
            tool_name=data.tool_name,
            arguments=data.arguments,
            status="pending",
            created_at=utcnow(),
        )
        .returning(*TOOL_CALL_COLUMNS)
    )
    return build(ToolCallRead, await tx.execute(statement))[0]


async def update_tool_call(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    tool_call_pk: str,
    change: ToolCallUpdate,
    max_json_bytes: int,
) -> ToolCallRead:
    """Move a tool call to `change.status`; 409 for a move the lifecycle does not allow."""
    scope = (
        tool_calls.c.id == tool_call_pk,
        tool_calls.c.session_id == session_id,
        tool_calls.c.tenant_id == tenant_id,
    )
    current = (
        await tx.execute(select(tool_calls.c.status).where(*scope).with_for_update())
    ).first()
    if current is None:
        raise NotFound("tool call not found")
    if change.status not in LEGAL_MOVES[current.status]:
        raise Conflict(f"a tool call cannot move from {current.status} to {change.status}")
    values: dict[str, Any] = {"status": change.status}
    if change.result is not UNSET:
        check_json(change.result, "result", max_json_bytes)
        values["result"] = change.result
    if change.error is not UNSET:
        values["error"] = change.error
    if change.duration_ms is not UNSET:
        values["duration_ms"] = change.duration_ms
    if change.status in FINISHED:
        values["completed_at"] = utcnow()
    statement = update(tool_calls).where(*scope).values(**values).returning(*TOOL_CALL_COLUMNS)
    return build(ToolCallRead, await tx.execute(statement))[0]


async def list_tool_calls(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ToolCallRead], str | None]:
    """Creation order: ids are UUIDv7, so id order is creation order."""
    scope = ("tool_calls", tenant_id, session_id, status)
    statement = select(*TOOL_CALL_COLUMNS).where(
        tool_calls.c.session_id == session_id, tool_calls.c.tenant_id == tenant_id
    )
    if status is not None:
        statement = statement.where(tool_calls.c.status == status)
    if cursor is not None:
        (after_id,) = decode_cursor(cursor, scope, (str,))
        statement = statement.where(tool_calls.c.id > after_id)
    found = build(
        ToolCallRead, await tx.execute(statement.order_by(tool_calls.c.id).limit(limit + 1))
    )
    if not found:
        await ensure_session(tx, tenant_id=tenant_id, session_id=session_id)
    return cut_page(found, limit, scope, lambda call: [call.id])
