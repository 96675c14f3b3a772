"""Messages: append (atomic, gapless seq; idempotent; following the head or a named parent),
one message; how a message is read (MESSAGE_COLUMNS, build_messages). Reading history is in
history.py, removals in removal.py, the message tree in branches.py.

A message's `seq` comes from its session row, incremented in the appending transaction
(`UPDATE sessions SET last_seq = last_seq + n ... RETURNING last_seq`). That row's lock
serialises appends to one session across connections and processes, costs the same for the
first message and the millionth, and never hands out a number twice or skips one.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET
from sqlalchemy import Integer, bindparam, false, select, update

from chat_sessions.bounds import MAX_SEQ
from chat_sessions.db import Prepared, Transaction
from chat_sessions.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, PreconditionFailed
from chat_sessions.jsonvalues import check_json, check_text
from chat_sessions.messages.append import (
    advance_session,
    append_in_one,
    insert_messages,
    numbered,
)
from chat_sessions.messages.branches import has_message, lowest_branch_seq, no_such_seq
from chat_sessions.messages.parts import check_parts, text_of
from chat_sessions.messages.schemas import MessageCreate, MessageRead
from chat_sessions.models import messages, new_id, sessions, utcnow
from chat_sessions.sessions.service import ensure_session, not_found
from chat_sessions.sessions.state import apply_state_changes
from chat_sessions.wire import columns

# A message as read: its response shape's fields in order (`content` is the text column),
# then the content parts, which stand in for the text when the content was sent as parts.
MESSAGE_COLUMNS = [*columns(MessageRead, messages), messages.c.content_parts]
_CONTENT = MessageRead.__struct_fields__.index("content")
# The same values from a row being written (`message_row`).
_WRITTEN = operator.itemgetter(*MessageRead.__struct_fields__, "content_parts")


def build_messages(rows: Iterable[Sequence[Any]]) -> list[MessageRead]:
    """Messages from rows of MESSAGE_COLUMNS, each with its content as it was sent.
    Positional, as wire.build; the slice costs a page of 50 string messages 13.0 µs against
    wire.build's 9.4 µs (best of 5, this machine), ~1% of a read of the last 50."""
    return [
        MessageRead(*row[:-1])
        if row[-1] is None
        else MessageRead(*row[:_CONTENT], row[-1], *row[_CONTENT + 1 : -1])  # type: ignore[call-arg]
        for row in rows
    ]


# The rare second step of an append: the appended messages follow a head that was moved back.
_PARENT: Any = bindparam("parent_seq", type_=Integer())
_FOLLOW_MOVED_HEAD = Prepared(
    update(sessions)
    .where(sessions.c.id == bindparam("scope_session"))
    .values(
        head_seq=sessions.c.last_seq,
        first_branch_seq=lowest_branch_seq(_PARENT, false()),
    )
)


def request_hash(kind: str, new: list[MessageCreate], *state_changes: Any) -> str:
    """A digest of what was asked, to tell a retry (same body) from a reused key (409). The
    state changes count when there are any (a request without keeps its digest of before)."""
    asked = [kind, msgspec.to_builtins(new)]
    if any(change is not None for change in state_changes):
        asked.append(list(state_changes))
    canonical = msgspec.json.encode(asked, order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def check_message(message: MessageCreate, *, max_message_bytes: int, max_json_bytes: int) -> None:
    content = message.content
    if content.__class__ is str:
        size = len(content.encode())  # type: ignore[union-attr]
        check_text(content, "content")  # type: ignore[arg-type]
    else:
        check_parts(content)  # type: ignore[arg-type]
        size = check_json(content, "content", max_message_bytes)
    if message.item is not None:
        size += check_json(message.item, "item", max_message_bytes)
    if size > max_message_bytes:
        raise PayloadTooLarge(
            f"the message's content and item are {size} bytes encoded; "
            f"the limit is {max_message_bytes}"
        )
    if message.status == "in_progress":
        if message.role != "assistant":
            raise BadRequest("only an assistant message can be in_progress")
        if content.__class__ is not str:
            raise BadRequest(
                "an in_progress message's content is a string (parts can replace it when the "
                "message is closed)"
            )
    if message.role == "tool" and message.tool_call_id is None:
        raise BadRequest("a tool message needs tool_call_id")
    if message.tool_calls is not None:
        if message.role != "assistant":
            raise BadRequest("only an assistant message carries tool_calls")
        if any(
            not isinstance(call.get("id"), str) or not call["id"] for call in message.tool_calls
        ):
            raise BadRequest("every tool call needs a string id")
        check_json(message.tool_calls, "tool_calls", max_json_bytes)
    check_json(message.metadata, "metadata", max_json_bytes)


def message_row(
    message: Any,
    *,
    tenant_id: str,
    session_id: str,
    seq: int,
    created_at: datetime,
    parent_seq: int | None = None,
    message_id: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> dict[str, Any]:
    """The row that stores `message` (an appended or an imported one)."""
    content = message.content
    parts = None if content.__class__ is str else content
    status = "completed" if message.status is UNSET else message.status
    return {
        "id": message_id or new_id(),
        "tenant_id": tenant_id,
        "session_id": session_id,
        "seq": seq,
        "parent_seq": seq - 1 if parent_seq is None else parent_seq,
        "role": message.role,
        "content": content if parts is None else text_of(parts),
        "content_parts": parts,
        "item": message.item,
        "name": message.name,
        "tool_calls": message.tool_calls,
        "tool_call_id": message.tool_call_id,
        "metadata": message.metadata,
        "token_count": message.token_count,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "created_at": created_at,
        "status": status,
        "last_activity_at": created_at if status == "in_progress" else None,
    }


async def append_messages(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    new: list[MessageCreate],
    idempotency_key: str | None = None,
    expected_last_seq: int | None = None,
    traits_patch: dict[str, Any] | None = None,
    user_traits_patch: dict[str, Any] | None = None,
    end_user_traits_patches: dict[str, dict[str, Any]] | None = None,
    parent_seq: int | None = None,
    max_message_bytes: int,
    max_json_bytes: int,
) -> tuple[list[MessageRead], bool]:
    """Append `new` with consecutive seqs, and apply the merge patches of the session's traits
    and of end-users' traits (sessions/state.py), all or nothing.

    The first message follows `parent_seq` (400 unless 0 or a seq the session has), else the
    head; each next one follows the one before; the last becomes the head.

    Returns the stored messages and whether this was a replay of an earlier request with the
    same idempotency key (then nothing new is stored, and no patch applied again).
    """
    for message in new:
        check_message(message, max_message_bytes=max_message_bytes, max_json_bytes=max_json_bytes)
    digest = None
    if idempotency_key is not None:
        kind = "batch" if len(new) > 1 else "one"
        # A change only counts when given, so an older request's digest stays what it was.
        changes = [traits_patch, user_traits_patch, parent_seq]
        if end_user_traits_patches is not None:
            changes.append(end_user_traits_patches)
        digest = request_hash(kind, new, *changes)
        # The session row's lock orders this request after any twin still in flight, so the
        # look-up below sees the twin's committed row: the unique index is only a backstop.
        await ensure_session(tx, tenant_id=tenant_id, session_id=session_id, lock=True)
        replay = await _replay(tx, session_id, idempotency_key, digest, len(new))
        if replay is not None:
            return replay, True

    now = utcnow()
    advance = {
        "scope_session": session_id,
        "scope_tenant": tenant_id,
        "count": len(new),
        "tokens": sum(message.token_count or 0 for message in new),
        "now": now,
        "parent_seq": parent_seq,
    }
    rows = [
        message_row(
            message,
            tenant_id=tenant_id,
            session_id=session_id,
            seq=0,  # numbered by the append (messages/append.py)
            created_at=now,
            idempotency_key=idempotency_key if offset == 0 else None,
            request_hash=digest if offset == 0 else None,
        )
        for offset, message in enumerate(new)
    ]
    state_changes = {
        "traits_patch": traits_patch,
        "user_traits_patch": user_traits_patch,
        "end_user_traits_patches": end_user_traits_patches,
    }
    changes_state = any(change is not None for change in state_changes.values())
    plain = (
        digest is None and expected_last_seq is None and parent_seq is None and not changes_state
    )
    # One statement on PostgreSQL while the head is the last seq (messages/append.py).
    last_seq = await append_in_one(tx, advance, rows) if plain else None
    if last_seq is None:
        advanced = await advance_session(tx, advance)
        if advanced is None:
            raise not_found()
        last_seq, head_seq = advanced
        _check_last_seq(last_seq)
        first_seq = last_seq - len(new) + 1
        if expected_last_seq is not None and first_seq - 1 != expected_last_seq:
            raise PreconditionFailed(
                f"the session's last seq is {first_seq - 1}, not {expected_last_seq}"
            )
        parent = await _first_parent(tx, session_id, parent_seq, first_seq, head_seq, last_seq)
        if changes_state:
            await apply_state_changes(
                tx,
                tenant_id=tenant_id,
                session_id=session_id,
                **state_changes,
                max_json_bytes=max_json_bytes,
            )
        numbered(rows, last_seq, first_parent=parent)
        await insert_messages(tx, rows)
    tx.note_change(session_id)  # for the event streams (events/), once committed
    return build_messages(map(_WRITTEN, rows)), False


def _check_last_seq(last_seq: int) -> None:
    if last_seq > MAX_SEQ:
        # SQLite's integer column would take it; PostgreSQL's refuses it (the append fails
        # there with a 400 "cannot be stored"): both answer 400, nothing stored.
        raise BadRequest(f"this session has reached the last seq there is, {MAX_SEQ}")


async def _first_parent(
    tx: Transaction,
    session_id: str,
    named: int | None,
    first_seq: int,
    head_seq: int,
    last_seq: int,
) -> int:
    """The parent of the first appended message, with the session row already advanced
    (and locked: removals lock it too, so a named parent cannot vanish before commit)."""
    if named is not None:
        if named >= first_seq or not await has_message(tx, session_id, named):
            raise no_such_seq("parent_seq", named)
        return named
    if head_seq == last_seq:
        # The head was the last seq; it now is the new last.
        return first_seq - 1
    # A head moved back (PATCH head_seq, a removal): the new messages branch off it.
    await tx.run(_FOLLOW_MOVED_HEAD, {"scope_session": session_id, "parent_seq": head_seq})
    return head_seq


async def _replay(
    tx: Transaction, session_id: str, key: str, digest: str, count: int
) -> list[MessageRead] | None:
    """The messages an earlier request with this key stored, or None if there was none."""
    first = (
        await tx.execute(
            select(messages.c.seq, messages.c.request_hash, messages.c.created_at).where(
                messages.c.session_id == session_id, messages.c.idempotency_key == key
            )
        )
    ).first()
    if first is None:
        return None
    if first.request_hash != digest:
        raise Conflict("this Idempotency-Key was used with a different request body")
    rows = await tx.execute(
        select(*MESSAGE_COLUMNS)
        .where(
            messages.c.session_id == session_id,
            messages.c.seq >= first.seq,
            messages.c.seq < first.seq + count,
            # A batch's rows share one created_at. After a truncation cut into the batch,
            # later appends reuse its seqs: they are not part of what this key stored.
            messages.c.created_at == first.created_at,
        )
        .order_by(messages.c.seq)
    )
    return build_messages(rows)


async def get_message(
    tx: Transaction, *, tenant_id: str, session_id: str, message_id: str
) -> MessageRead:
    found = build_messages(
        await tx.execute(
            select(*MESSAGE_COLUMNS).where(
                messages.c.id == message_id,
                messages.c.session_id == session_id,
                messages.c.tenant_id == tenant_id,
            )
        )
    )
    if not found:
        raise NotFound("message not found")
    return found[0]
