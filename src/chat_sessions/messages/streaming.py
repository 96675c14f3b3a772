"""Streaming messages: an assistant answer stored while it is generated.

An append with `"status": "in_progress"` stores the message at once (messages/service.py);
`append_delta` adds text to it, `close_message` closes it `completed` or `interrupted`, and
`interrupt_idle` closes `interrupted` those that got nothing for STREAM_IDLE_SECONDS, keeping
what they had. These functions and `append_messages` are the one place where a message is
created, grows and is closed: an event publisher (API.md, the event stream) hooks in here.

Costs and rules, decided here:
- A delta is one statement, `UPDATE ... SET content = content || :delta`, bounded in the same
  WHERE by MAX_MESSAGE_BYTES (content and item), so concurrent deltas are applied one after
  the other, in the order their statements run, none lost. Only when it matches nothing does
  a second statement tell 404, 409 and 413 apart.
- A delta leaves the session row alone: no new `version`, `updated_at` or ETag per token.
  The session changes when the message is created and when it is closed (by a PATCH or the
  sweep): its `token_total` then follows the `token_count` the message closes with.
- Search leaves in-progress messages out on both engines (migration 0006): a delta costs the
  index nothing, and the message becomes searchable when it is closed. (bench/micro_deltas.py,
  a 2 KB answer on SQLite: a delta 38.5 µs in its own transaction; re-indexed by the update
  trigger, as every delta would be if in-progress messages were indexed, 110 µs.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from msgspec import UNSET
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Integer

from chat_sessions.db import Database, Prepared, Transaction
from chat_sessions.errors import Conflict, NotFound, PayloadTooLarge
from chat_sessions.jsonvalues import check_text
from chat_sessions.messages.parts import text_of
from chat_sessions.messages.schemas import DeltaAck, MessageClose, MessageCreate, MessageRead
from chat_sessions.messages.service import MESSAGE_COLUMNS, build_messages, check_message
from chat_sessions.models import UTCDateTime, messages, sessions, utcnow
from chat_sessions.sessions.service import ensure_session

log = logging.getLogger(__name__)

IN_PROGRESS = "in_progress"


class byte_length(FunctionElement[int]):
    """A text's length in UTF-8 bytes (0 for NULL), on either engine."""

    type = Integer()
    inherit_cache = True


@compiles(byte_length, "sqlite")
def _byte_length_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"coalesce(length(CAST({compiler.process(element.clauses, **kw)} AS BLOB)), 0)"


@compiles(byte_length, "postgresql")
def _byte_length_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return f"coalesce(octet_length(CAST({compiler.process(element.clauses, **kw)} AS TEXT)), 0)"


_THIS_MESSAGE = (
    messages.c.id == bindparam("scope_message"),
    messages.c.session_id == bindparam("scope_session"),
    messages.c.tenant_id == bindparam("scope_tenant"),
)
_APPEND_DELTA = Prepared(
    update(messages)
    .where(
        *_THIS_MESSAGE,
        messages.c.status == IN_PROGRESS,
        byte_length(messages.c.content) + byte_length(messages.c.item) + bindparam("delta_bytes")
        <= bindparam("max_bytes"),
    )
    .values(
        content=messages.c.content.concat(bindparam("delta")),
        last_activity_at=bindparam("now", type_=UTCDateTime()),
    )
    # length(): characters on both engines.
    .returning(messages.c.seq, func.length(messages.c.content))
)
# Why a delta matched nothing (a cold path).
_DELTA_REFUSED = select(
    messages.c.status, byte_length(messages.c.content) + byte_length(messages.c.item)
).where(*_THIS_MESSAGE)


def not_in_progress(status: str) -> Conflict:
    return Conflict(f"the message is {status}, not in_progress")


async def append_delta(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    message_id: str,
    delta: str,
    max_message_bytes: int,
) -> DeltaAck:
    """Add `delta` to an in-progress message's content; its seq and length in characters."""
    check_text(delta, "content")
    scope = {"scope_message": message_id, "scope_session": session_id, "scope_tenant": tenant_id}
    delta_bytes = len(delta.encode())
    parameters = {
        **scope,
        "delta": delta,
        "delta_bytes": delta_bytes,
        "max_bytes": max_message_bytes,
        "now": utcnow(),
    }
    updated = await tx.run(_APPEND_DELTA, parameters)
    if updated:
        seq, length = updated[0]
        tx.note_change(session_id)
        return DeltaAck(id=message_id, seq=seq, length=length)
    found: Any = (await tx.execute(_DELTA_REFUSED, scope)).first()
    if found is None:
        raise NotFound("message not found")
    status, size = found
    if status != IN_PROGRESS:
        raise not_in_progress(status)
    raise PayloadTooLarge(
        f"the message would be {size + delta_bytes} bytes (content and item); "
        f"the limit is {max_message_bytes}"
    )


_CLOSING = select(
    messages.c.status,
    messages.c.role,
    messages.c.content,
    messages.c.name,
    messages.c.tool_calls,
    messages.c.tool_call_id,
    messages.c.metadata,
    messages.c.token_count,
    messages.c.item,
).where(*_THIS_MESSAGE)


def _given(value: Any, stored: Any) -> Any:
    return stored if value is UNSET else value


async def close_message(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    message_id: str,
    change: MessageClose,
    max_message_bytes: int,
    max_json_bytes: int,
) -> MessageRead:
    """Close an in-progress message `completed` or `interrupted`, with what the PATCH gives
    (a `content`, string or parts, replaces the streamed text); 409 unless in progress.

    The session row is locked first, as appends, removals and the sweep lock it, so the
    message's status cannot change under this request and no two closes of it both succeed.
    """
    await ensure_session(tx, tenant_id=tenant_id, session_id=session_id, lock=True)
    scope = {"scope_message": message_id, "scope_session": session_id, "scope_tenant": tenant_id}
    stored = (await tx.execute(_CLOSING, scope)).first()
    if stored is None:
        raise NotFound("message not found")
    if stored.status != IN_PROGRESS:
        raise not_in_progress(stored.status)
    final = MessageCreate(
        role=stored.role,
        content=_given(change.content, stored.content),
        name=stored.name,
        tool_calls=stored.tool_calls,
        tool_call_id=stored.tool_call_id,
        metadata=_given(change.metadata, stored.metadata),
        token_count=_given(change.token_count, stored.token_count),
        item=_given(change.item, stored.item),
    )
    check_message(final, max_message_bytes=max_message_bytes, max_json_bytes=max_json_bytes)
    now = utcnow()
    values: dict[str, Any] = {
        "status": change.status,
        "last_activity_at": now,
        "metadata": final.metadata,
        "token_count": final.token_count,
        "item": final.item,
    }
    if change.content is not UNSET:
        parts = None if final.content.__class__ is str else final.content
        values["content"] = final.content if parts is None else text_of(parts)  # type: ignore[arg-type]
        values["content_parts"] = parts
    closed = (
        await tx.execute(
            update(messages)
            .where(*_THIS_MESSAGE, messages.c.status == IN_PROGRESS)
            .values(**values)
            .returning(*MESSAGE_COLUMNS),
            scope,
        )
    ).all()
    if not closed:  # a backstop: the session's lock keeps others from closing it meanwhile
        raise not_in_progress("no longer in_progress")
    await _touch_session(
        tx, session_id, now, tokens=(final.token_count or 0) - (stored.token_count or 0)
    )
    tx.note_change(session_id)
    return build_messages(closed)[0]


async def _touch_session(tx: Transaction, session_id: str, now: datetime, tokens: int = 0) -> None:
    """A new version of the session, whose history changed (a message closed)."""
    await tx.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(
            token_total=sessions.c.token_total + tokens,
            updated_at=now,
            version=sessions.c.version + 1,
        )
    )


# The sweep: sessions holding a silent in-progress message, through the partial index of
# the in-progress rows (ix_messages_in_progress).
SWEEP_BATCH = 100
_SILENT_SESSIONS = (
    select(messages.c.session_id)
    .where(messages.c.status == IN_PROGRESS, messages.c.last_activity_at < bindparam("cutoff"))
    .distinct()
    .limit(SWEEP_BATCH)
)
_LOCK_SESSION = (
    select(sessions.c.id).where(sessions.c.id == bindparam("session_id")).with_for_update()
)
_INTERRUPT_SILENT = (
    update(messages)
    .where(
        messages.c.session_id == bindparam("scope_session"),
        messages.c.status == IN_PROGRESS,
        messages.c.last_activity_at < bindparam("cutoff"),
    )
    .values(status="interrupted")
    .returning(messages.c.id)
)


async def interrupt_idle(database: Database, *, idle_seconds: float, now: datetime) -> int:
    """Close `interrupted` every in-progress message that got nothing since `now` less
    `idle_seconds`, keeping its content; how many.

    Safe in every process at once (PostgreSQL): each session is handled in a transaction of
    its own that locks the session row first (the order appends, removals and closes lock in,
    so no deadlock), and the UPDATE re-checks the status, so a message another process or a
    PATCH closed meanwhile is left alone and no session is bumped twice for one message.
    """
    cutoff = {"cutoff": now - timedelta(seconds=idle_seconds)}
    interrupted = 0
    while True:
        async with database.transaction(write=False) as tx:
            silent = sorted(row[0] for row in await tx.execute(_SILENT_SESSIONS, cutoff))
        for session_id in silent:
            async with database.transaction() as tx:
                await tx.execute(_LOCK_SESSION, {"session_id": session_id})
                closed = (
                    await tx.execute(_INTERRUPT_SILENT, {**cutoff, "scope_session": session_id})
                ).all()
                if closed:
                    await _touch_session(tx, session_id, now)
                    tx.note_change(session_id)
                interrupted += len(closed)
        if len(silent) < SWEEP_BATCH:
            return interrupted


def sweep_interval(idle_seconds: float) -> float:
    """How often the sweep looks: a tenth of the idle time, at most every 5 s."""
    return min(idle_seconds / 10, 5.0)


async def interrupt_idle_periodically(
    database: Database,
    idle_seconds: float,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """The background loop the app's lifespan runs in every process (tests inject `clock`
    and `sleep` and advance time instead of waiting)."""
    interval = sweep_interval(idle_seconds)
    while True:
        await sleep(interval)
        try:
            count = await interrupt_idle(database, idle_seconds=idle_seconds, now=clock())
            if count:
                log.info("interrupted %d in-progress message(s) idle for %s s", count, idle_seconds)
        except Exception:  # a failed round must not end the loop; the next one retries
            log.exception("the idle sweep failed; retrying in %s s", interval)
