"""What one stream's client has been told about its session, and the catch-up that tells it
the rest: every wake-up of a stream reads the session as it now is and sends the difference.

Why a catch-up rather than forwarding each change as it happens: the database is the one
order every process agrees on. A change announced late, twice, out of order (two processes'
announcements cross on PostgreSQL) or not at all (a listener that reconnected) only makes a
stream read once more; what it sends always follows the stored history, in its order. So
live following, resumption after a disconnect and a listener's recovery are one code path.

What a client knows is `settled` (every message up to that seq, in its final state; `anchor`
names the message at that seq, so a history rewritten below it is noticed) plus the messages
above it it was sent (`sent`: id, status, characters sent). Completed and interrupted messages
never change again; only in-progress ones grow (`message.delta`) and close
(`message.updated`), and removals take away every seq above one (`messages.deleted`).

Each event's id encodes that knowledge after the event: `<count>-<settled>-<anchor>-<version>`
(`count` makes ids increase within a stream and its resumptions). `Last-Event-ID` gives it
back: the stream then sends every message above `settled` as it is now (an in-progress one
with its content so far), and `session.updated` if the session changed meanwhile. When the
anchor message is gone or replaced (a truncation below it while the client was away), the
client is told `messages.deleted` after 0 and gets the whole history again: rare, and right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.response import ServerSentEventMessage
from sqlalchemy import bindparam, func, select

from chat_sessions.db import Database, Prepared, Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.messages.schemas import MessageRead
from chat_sessions.messages.service import MESSAGE_COLUMNS, build_messages
from chat_sessions.models import messages, sessions
from chat_sessions.sessions.schemas import SessionRead
from chat_sessions.sessions.service import SESSION_COLUMNS
from chat_sessions.wire import build

IN_PROGRESS = "in_progress"
# Messages read at a time: a catch-up holds one page's events at most, whatever it has to send.
PAGE = 50

_SESSION = Prepared(
    select(*SESSION_COLUMNS).where(
        sessions.c.id == bindparam("session_id"), sessions.c.tenant_id == bindparam("tenant_id")
    )
)
_MESSAGES_FROM = Prepared(
    select(*MESSAGE_COLUMNS)
    .where(messages.c.session_id == bindparam("session_id"), messages.c.seq >= bindparam("seq"))
    .order_by(messages.c.seq)
    .limit(PAGE)
)
# The first in-progress message, through the partial index of in-progress rows.
_FIRST_IN_PROGRESS = Prepared(
    select(func.min(messages.c.seq)).where(
        messages.c.session_id == bindparam("session_id"), messages.c.status == IN_PROGRESS
    )
)

_EVENT_ID = re.compile(r"(\d{1,18})-(\d{1,18})-([0-9a-f]{1,12}|_)-(\d{1,18})")


def _anchor_of(message_id: str) -> str:
    """The random tail of a UUIDv7 names a message well enough to see it was replaced."""
    return message_id[-12:]


@dataclass(slots=True)
class Sent:
    id: str
    status: str
    length: int  # characters of content sent


@dataclass(slots=True)
class Follower:
    """One stream's knowledge of its session (see the module's notes)."""

    tenant_id: str
    session_id: str
    count: int = 0
    settled: int = 0
    anchor: str | None = None  # None: not known yet (taken from the row at `settled`)
    version: int | None = None  # None: not known yet (taken silently on the first read)
    sent: dict[int, Sent] = field(default_factory=dict)
    ended: bool = False
    resume_from: int | None = None  # a catch-up stopped after a page: where the next goes on

    @classmethod
    def resuming(cls, tenant_id: str, session_id: str, last_event_id: str) -> Follower:
        found = _EVENT_ID.fullmatch(last_event_id.strip())
        if found is None:
            raise BadRequest("Last-Event-ID is not an id this service sent")
        count, settled, anchor, version = found.groups()
        return cls(
            tenant_id,
            session_id,
            count=int(count),
            settled=int(settled),
            anchor=None if anchor == "_" else anchor,
            version=int(version),
        )

    def event_id(self) -> str:
        return f"{self.count}-{self.settled}-{self.anchor or '_'}-{self.version or 0}"

    async def start_from_now(self, tx: Transaction) -> None:
        """A stream without a resumption point: what is stored is known, in-progress messages
        included (at their current length), so it sends only what happens from now on."""
        first_open = (await tx.run(_FIRST_IN_PROGRESS, {"session_id": self.session_id}))[0][0]
        session = await self._session(tx)
        if session is None:
            return
        self.version = session.version
        last = (
            await tx.execute(
                select(func.max(messages.c.seq)).where(messages.c.session_id == self.session_id)
            )
        ).scalar()
        self.settled = first_open - 1 if first_open is not None else (last or 0)
        await self.catch_up(tx, silent=True)

    async def catch_up(
        self, tx: Transaction, *, truncated_after: int | None = None, silent: bool = False
    ) -> list[ServerSentEventMessage]:
        """The events that bring the client to the session as `tx` reads it (all of them,
        page after page, when `silent`: then only this follower's knowledge moves)."""
        events: list[ServerSentEventMessage] = []
        emit = (lambda kind, data: None) if silent else self._emitter(events)
        if truncated_after is not None and truncated_after < self._highest_known():
            self._forget_above(truncated_after)
            emit("messages.deleted", {"after_seq": truncated_after})
        session = await self._session(tx)
        if session is None:
            self.ended = True
            emit("session.deleted", {"id": self.session_id})
            return events
        start, self.resume_from = self.resume_from or self.settled, None
        while True:
            rows = build_messages(
                await tx.run(_MESSAGES_FROM, {"session_id": self.session_id, "seq": start})
            )
            full_page = len(rows) == PAGE
            if start == self.settled > 0:
                if rows and rows[0].seq == start and self.anchor in (None, _anchor_of(rows[0].id)):
                    self.anchor = _anchor_of(rows.pop(0).id)
                elif self.anchor is not None:
                    # The client's history was rewritten below what it knows: start over.
                    self._forget_above(0)
                    emit("messages.deleted", {"after_seq": 0})
                    start = 1
                    continue
            self._forget_replaced(rows, since=start, complete=not full_page, emit=emit)
            for message in rows:
                self._tell(message, emit)
            start = rows[-1].seq + 1 if rows else start + 1
            if full_page and not silent:
                self.resume_from = start  # the stream sends this page, then reads on from here
                break
            if not full_page:
                break
        if self.version is None:
            self.version = session.version
        elif session.version != self.version:
            self.version = session.version
            emit("session.updated", session)
        return events

    async def _session(self, tx: Transaction) -> SessionRead | None:
        rows = await tx.run(_SESSION, {"session_id": self.session_id, "tenant_id": self.tenant_id})
        return build(SessionRead, rows)[0] if rows else None

    def _emitter(self, events: list[ServerSentEventMessage]) -> Any:
        def emit(kind: str, data: Any) -> None:
            self.count += 1
            events.append(
                ServerSentEventMessage(
                    data=msgspec.json.encode(data).decode(), event=kind, id=self.event_id()
                )
            )

        return emit

    def _highest_known(self) -> int:
        return max(self.sent, default=self.settled)

    def _forget_above(self, seq: int) -> None:
        for known in [known for known in self.sent if known > seq]:
            del self.sent[known]
        if seq < self.settled:
            self.settled, self.anchor = seq, None

    def _forget_replaced(
        self, rows: list[MessageRead], *, since: int, complete: bool, emit: Any
    ) -> None:
        """Messages sent that are gone or another now, without an announcement saying so (it
        was lost): the client drops everything from the first of them, and is sent it again.
        `rows` are the stored messages from seq `since` on (to the last, when `complete`)."""
        if not self.sent:
            return
        stored = {message.seq: message.id for message in rows}
        reach = rows[-1].seq if rows and not complete else None
        for seq in sorted(self.sent):
            if seq < since:
                continue
            if reach is not None and seq > reach:
                return
            if stored.get(seq) != self.sent[seq].id:
                self._forget_above(seq - 1)
                emit("messages.deleted", {"after_seq": seq - 1})
                return

    def _tell(self, message: MessageRead, emit: Any) -> None:
        """Send what the client does not know of `message`, then settle what is final."""
        content = message.content
        length = len(content) if isinstance(content, str) else 0
        known = self.sent.get(message.seq)
        data: Any = message
        if known is None:
            self.sent[message.seq] = Sent(message.id, message.status, length)
            kind = "message.created"
        elif known.status != IN_PROGRESS:
            return
        elif message.status != IN_PROGRESS:
            known.status, known.length = message.status, length
            kind = "message.updated"
        elif length > known.length and isinstance(content, str):
            delta, known.length = content[known.length :], length
            kind, data = "message.delta", {"id": message.id, "seq": message.seq, "delta": delta}
        else:
            return
        self._settle()  # before the event, so its id says what the client knows with it
        emit(kind, data)

    def _settle(self) -> None:
        while self.sent:
            lowest = min(self.sent)
            if self.sent[lowest].status == IN_PROGRESS:
                return
            self.settled, self.anchor = lowest, _anchor_of(self.sent.pop(lowest).id)


async def read_catch_up(
    database: Database, follower: Follower, truncated_after: int | None
) -> list[ServerSentEventMessage]:
    """One catch-up in a read transaction of its own (held only while reading)."""
    async with database.transaction(write=False) as tx:
        return await follower.catch_up(tx, truncated_after=truncated_after)
