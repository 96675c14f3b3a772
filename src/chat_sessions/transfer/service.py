"""Export a session as one document; import such a document as a new session, losslessly
(its branches too: each message's parent, the session's head)."""

from __future__ import annotations

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from chat_sessions.db import Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.jsonvalues import check_json
from chat_sessions.messages.schemas import MessageCreate
from chat_sessions.messages.service import (
    MESSAGE_COLUMNS,
    build_messages,
    check_message,
    message_row,
)
from chat_sessions.models import messages, new_id, sessions, tool_calls, utcnow
from chat_sessions.sessions.schemas import SessionRead
from chat_sessions.sessions.service import external_id_taken, get_session
from chat_sessions.tool_calls.schemas import ToolCallRead
from chat_sessions.tool_calls.service import TOOL_CALL_COLUMNS
from chat_sessions.transfer.schemas import (
    FORMAT,
    ExportDocument,
    ImportDocument,
    ImportedMessage,
)
from chat_sessions.wire import build


async def export_session(tx: Transaction, *, tenant_id: str, session_id: str) -> ExportDocument:
    session = await get_session(tx, tenant_id=tenant_id, session_id=session_id)
    message_rows = await tx.execute(
        select(*MESSAGE_COLUMNS)
        .where(messages.c.session_id == session_id, messages.c.tenant_id == tenant_id)
        .order_by(messages.c.seq)
    )
    tool_call_rows = await tx.execute(
        select(*TOOL_CALL_COLUMNS)
        .where(tool_calls.c.session_id == session_id, tool_calls.c.tenant_id == tenant_id)
        .order_by(tool_calls.c.id)
    )
    return ExportDocument(
        format=FORMAT,
        session=session,
        messages=build_messages(message_rows),
        tool_calls=build(ToolCallRead, tool_call_rows),
    )


def _check_document(document: ImportDocument, max_message_bytes: int, max_json_bytes: int) -> None:
    if document.format != FORMAT:
        raise BadRequest(f"unknown export format {document.format!r}; this service reads {FORMAT}")
    check_json(document.session.traits, "traits", max_json_bytes)
    seqs = [message.seq for message in document.messages]
    if len(set(seqs)) != len(seqs):
        raise BadRequest("message seqs must be unique")
    for message in document.messages:
        check_message(
            MessageCreate(
                role=message.role,
                content=message.content,
                name=message.name,
                tool_calls=message.tool_calls,
                tool_call_id=message.tool_call_id,
                metadata=message.metadata,
                token_count=message.token_count,
                item=message.item,
            ),
            max_message_bytes=max_message_bytes,
            max_json_bytes=max_json_bytes,
        )
    _check_tree(document)
    message_ids = {message.id for message in document.messages if message.id}
    if len(message_ids) != sum(1 for message in document.messages if message.id):
        raise BadRequest("message ids must be unique")
    for call in document.tool_calls:
        check_json(call.arguments, "arguments", max_json_bytes)
        check_json(call.result, "result", max_json_bytes)
        if call.message_id is not None and call.message_id not in message_ids:
            raise BadRequest(f"tool call {call.tool_call_id!r} names a message not in the document")


def _parents(ordered: list[ImportedMessage]) -> list[int]:
    """Each message's parent (messages in seq order): its own, or, when it has none or names
    a message the document does not hold (one left out of an edited export), the one before
    it."""
    held = {0, *(message.seq for message in ordered)}
    return [
        message.parent_seq
        if message.parent_seq in held
        else (ordered[index - 1].seq if index else 0)
        for index, message in enumerate(ordered)
    ]


def _check_tree(document: ImportDocument) -> None:
    for message in document.messages:
        if message.parent_seq is not None and message.parent_seq >= message.seq:
            raise BadRequest(
                f"message {message.seq}: parent_seq {message.parent_seq} is not an earlier seq"
            )


def _head(source_head: int | None, ordered: list[ImportedMessage]) -> int:
    """The document's head, or its last message when it names none the document holds."""
    last_seq = ordered[-1].seq if ordered else 0
    if source_head is None or (source_head and all(m.seq != source_head for m in ordered)):
        return last_seq
    return source_head


def _first_branch_seq(
    ordered: list[ImportedMessage], parents: list[int], head_seq: int, last_seq: int
) -> int | None:
    """The lowest parent that is not the message before (messages/branches.py); a head
    before the last seq counts as one too, as a session is read as one line only while its
    head is its last seq."""
    off_line = [
        parent
        for index, parent in enumerate(parents)
        if parent != (ordered[index - 1].seq if index else 0)
    ]
    if head_seq != last_seq:
        off_line.append(head_seq)
    return min(off_line, default=None)


def _imported(message: ImportedMessage) -> ImportedMessage:
    """An in_progress message arrives `interrupted`: nothing streams into the copy (the
    generator's deltas go to the original), and the idle sweep would close it so anyway."""
    if message.status == "in_progress":
        return msgspec.structs.replace(message, status="interrupted")
    return message


async def import_session(
    tx: Transaction,
    *,
    tenant_id: str,
    document: ImportDocument,
    max_message_bytes: int,
    max_json_bytes: int,
) -> SessionRead:
    """Recreate an exported session under new ids in this tenant, all or nothing: seqs,
    contents, metadata, timestamps, traits, tool calls and the external_id are kept (409
    when another session of the tenant has that external_id)."""
    _check_document(document, max_message_bytes, max_json_bytes)
    now = utcnow()
    source = document.session
    ordered = sorted(document.messages, key=lambda message: message.seq)
    parents = _parents(ordered)
    last_seq = ordered[-1].seq if ordered else 0
    head_seq = _head(source.head_seq, ordered)
    session_id = new_id()
    statement = insert(sessions).values(
        id=session_id,
        tenant_id=tenant_id,
        user_id=source.user_id,
        external_id=source.external_id,
        title=source.title,
        traits=source.traits,
        status=source.status,
        result=source.result,
        error=source.error,
        message_count=len(ordered),
        last_seq=last_seq,
        head_seq=head_seq,
        first_branch_seq=_first_branch_seq(ordered, parents, head_seq, last_seq),
        token_total=sum(message.token_count or 0 for message in ordered),
        last_message_at=ordered[-1].created_at if ordered else None,
        created_at=source.created_at or now,
        updated_at=source.updated_at or now,
        version=1,
    )
    try:
        await tx.execute(statement)
    except IntegrityError:
        # The tenant's unique external_ids; the transaction is rolled back with the error.
        raise external_id_taken() from None
    new_message_ids: dict[str | None, str] = {
        message.id: new_id() for message in ordered if message.id
    }
    if ordered:
        await tx.execute(
            messages.insert(),
            [
                message_row(
                    _imported(message),
                    tenant_id=tenant_id,
                    session_id=session_id,
                    seq=message.seq,
                    parent_seq=parent,
                    created_at=message.created_at,
                    message_id=new_message_ids.get(message.id),
                )
                for message, parent in zip(ordered, parents, strict=True)
            ],
        )
    if document.tool_calls:
        await tx.execute(
            tool_calls.insert(),
            [
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "session_id": session_id,
                    "message_id": new_message_ids.get(call.message_id) if call.message_id else None,
                    "tool_call_id": call.tool_call_id,
                    "tool_name": call.tool_name,
                    "arguments": call.arguments,
                    "status": call.status,
                    "result": call.result,
                    "error": call.error,
                    "duration_ms": call.duration_ms,
                    "created_at": call.created_at,
                    "completed_at": call.completed_at,
                }
                for call in sorted(document.tool_calls, key=lambda call: call.created_at)
            ],
        )
    return await get_session(tx, tenant_id=tenant_id, session_id=session_id)
