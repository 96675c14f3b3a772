"""Removing messages: truncate after a seq, pop the last, delete one by id; each keeps the
session row right (its counters, its last seq, its head) in the same transaction, under its
lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update

from chat_sessions.db import Prepared, Transaction
from chat_sessions.errors import NotFound, PreconditionFailed
from chat_sessions.messages.schemas import MessageRead
from chat_sessions.messages.service import MESSAGE_COLUMNS, build_messages
from chat_sessions.models import messages, sessions, utcnow
from chat_sessions.sessions.service import not_found


async def truncate_after(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    after_seq: int,
    expected_last_seq: int | None = None,
) -> int:
    """Delete every message with seq > after_seq; appends then continue from what remains."""
    removed = await _remove_messages(
        tx,
        tenant_id=tenant_id,
        session_id=session_id,
        which=messages.c.seq > after_seq,
        expected_last_seq=expected_last_seq,
    )
    if removed:
        tx.note_change(session_id, truncated_after=after_seq)
    return len(removed)


async def pop_last_message(
    tx: Transaction, *, tenant_id: str, session_id: str, expected_last_seq: int | None = None
) -> MessageRead:
    """Remove the message with the highest seq and answer it (404 when there is none).

    Concurrent pops take turns on the session row's lock, and each deletes what is last once
    the one before it has committed: no two answer the same message.
    """
    last = select(func.max(messages.c.seq)).where(messages.c.session_id == session_id)
    return await _remove_one(
        tx,
        tenant_id=tenant_id,
        session_id=session_id,
        which=messages.c.seq == last.scalar_subquery(),
        expected_last_seq=expected_last_seq,
        absent="the session has no messages",
    )


async def delete_message(
    tx: Transaction, *, tenant_id: str, session_id: str, message_id: str
) -> MessageRead:
    """Remove one message wherever it is in the session, and answer it (404 when absent)."""
    return await _remove_one(
        tx,
        tenant_id=tenant_id,
        session_id=session_id,
        which=messages.c.id == message_id,
        expected_last_seq=None,
        absent="message not found",
        reparent=True,
    )


async def _remove_one(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    which: ColumnElement[bool],
    expected_last_seq: int | None,
    absent: str,
    reparent: bool = False,
) -> MessageRead:
    removed = await _remove_messages(
        tx,
        tenant_id=tenant_id,
        session_id=session_id,
        which=which,
        expected_last_seq=expected_last_seq,
        returning=MESSAGE_COLUMNS,
        reparent=reparent,
    )
    if not removed:
        raise NotFound(absent)
    message = build_messages(removed)[0]
    tx.note_change(session_id, truncated_after=message.seq - 1)  # the rest is sent again
    return message


_STATE = Prepared(
    select(sessions.c.last_seq, sessions.c.head_seq, sessions.c.first_branch_seq)
    .where(sessions.c.id == bindparam("session_id"), sessions.c.tenant_id == bindparam("tenant_id"))
    .with_for_update()
)


async def _remove_messages(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    which: ColumnElement[bool],
    expected_last_seq: int | None,
    returning: Sequence[Any] = (),
    reparent: bool = False,
) -> list[tuple[Any, ...]]:
    """Delete the session's messages that `which` selects and keep the session row right;
    for each deleted message, its `returning` columns.

    The session row is locked first, as appends lock it, so removals and appends to one
    session take turns and `expected_last_seq` (the session's highest seq) holds until commit.
    The row then counts what remains (`message_count`, `token_total`), and `last_seq` and
    `last_message_at` are those of the highest remaining seq, so appends continue after it.
    The head moves to its nearest remaining ancestor. `reparent` (a message deleted from the
    middle) hands its children to its parent. Tool calls of deleted messages go by the
    database's cascade.
    """
    state = await tx.run(_STATE, {"session_id": session_id, "tenant_id": tenant_id})
    if not state:
        raise not_found()
    last_seq, head_seq, first_branch_seq = state[0]
    if expected_last_seq is not None and last_seq != expected_last_seq:
        raise PreconditionFailed(f"the session's last seq is {last_seq}, not {expected_last_seq}")
    deleted = (
        await tx.execute(
            delete(messages)
            .where(messages.c.session_id == session_id, which)
            .returning(messages.c.token_count, messages.c.seq, messages.c.parent_seq, *returning)
        )
    ).all()
    if deleted:
        # A deleted message's parent, through deleted parents (every one of them is older).
        parents = {row.seq: row.parent_seq for row in sorted(deleted, key=lambda row: row.seq)}
        for seq, parent in parents.items():
            parents[seq] = parents.get(parent, parent)
        if reparent:
            for seq, parent in parents.items():
                await tx.execute(
                    update(messages)
                    .where(messages.c.session_id == session_id, messages.c.parent_seq == seq)
                    .values(parent_seq=parent)
                )
                if first_branch_seq is not None:
                    first_branch_seq = min(first_branch_seq, parent)
        last = (
            await tx.execute(
                select(messages.c.seq, messages.c.created_at)
                .where(messages.c.session_id == session_id)
                .order_by(messages.c.seq.desc())
                .limit(1)
            )
        ).first()
        new_last = last.seq if last else 0
        new_head = parents.get(head_seq, head_seq)
        if first_branch_seq is not None and first_branch_seq >= new_last:
            # What remains is one line again; read as one (NULL) only if the head is its end.
            first_branch_seq = None if new_head == new_last else new_head
        await tx.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(
                last_seq=new_last,
                head_seq=new_head,
                first_branch_seq=first_branch_seq,
                last_message_at=last.created_at if last else None,
                message_count=sessions.c.message_count - len(deleted),
                token_total=sessions.c.token_total - sum(row[0] or 0 for row in deleted),
                updated_at=utcnow(),
                version=sessions.c.version + 1,
            )
        )
    return [tuple(row[3:]) for row in deleted]
