"""One open event stream: woken by its session's changes, it catches up (follow.py) and sends
what it found; quiet, it sends `: ping` every EVENTS_PING_SECONDS (and catches up then too, so
a change whose announcement was lost arrives by the next ping); it ends on `session.deleted`,
on shutdown, or when its client stops reading.

A stream started from now first sends its position: an event with an `id:` and no `data:`,
which sets the client's last event id without dispatching anything (the SSE format's rule), so a
connection dropped before the first real event resumes from where the stream began.

A stream holds no queue of events: wake-ups while it is busy only mark it behind, and its next
catch-up reads what they changed. So a slow reader costs no memory, but it would hold its slot
forever: once EVENTS_BACKLOG_LIMIT changes have come while its client was not taking what it
was sent, the stream is dropped (its client resumes with Last-Event-ID).

Dropping a stream whose last event is stuck in the server's send buffer: under `chat-sessions
serve` the connection is aborted, as a lost client's is (server.py offers that in the request's
scope, `ABORT_EXTENSION`), so the response ends as a disconnect, with nothing logged; under
another server the stream's task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar.response import ServerSentEventMessage

from chat_sessions.db import Database
from chat_sessions.events.follow import Follower, read_catch_up

log = logging.getLogger(__name__)

# The name under which `chat-sessions serve` (server.py) puts, in each request's ASGI scope,
# what aborts that request's connection.
ABORT_EXTENSION = "chat_sessions.abort_connection"
PING = ServerSentEventMessage(comment="ping", data=None)


class EventStream:
    """One client's stream of one session (see the module's notes)."""

    __slots__ = (
        "_abort_connection",
        "_backlog_limit",
        "_catch_ups",
        "_database",
        "_ping_seconds",
        "_position_first",
        "_task",
        "_truncated_after",
        "_wake",
        "backlog",
        "closing",
        "follower",
        "in_send",
        "on_end",
    )

    def __init__(
        self,
        database: Database,
        follower: Follower,
        *,
        ping_seconds: float,
        backlog_limit: int,
        catch_ups: asyncio.Semaphore,
        scope: dict[str, Any],
        on_end: Callable[[EventStream], None],
    ) -> None:
        self._database = database
        self.follower = follower
        self._ping_seconds = ping_seconds
        self._backlog_limit = backlog_limit
        self._catch_ups = catch_ups
        self._abort_connection: Callable[[], None] | None = scope.get("extensions", {}).get(
            ABORT_EXTENSION
        )
        self.on_end = on_end
        self._wake = asyncio.Event()
        self._truncated_after: int | None = None
        self._task: asyncio.Task[Any] | None = None
        self._position_first = False
        self.backlog = 0  # changes announced since the stream last took them
        self.in_send = False  # an event handed to the server, not yet taken by the client
        self.closing = False

    def send_position_first(self) -> None:
        """Open with the follower's position (its knowledge, as an event id with no data)."""
        self._position_first = True

    def changed(self, truncated_after: int | None) -> None:
        """The session changed (committed): catch up at the next chance."""
        if truncated_after is not None:
            known = self._truncated_after
            self._truncated_after = (
                truncated_after if known is None else min(known, truncated_after)
            )
        self.backlog += 1
        self._wake.set()
        if self.backlog > self._backlog_limit and self.in_send and not self.closing:
            log.info("an event stream's client stopped reading; disconnected it")
            self.drop()

    def close(self) -> None:
        """End the stream: at once if its client is not reading, else after what it sends."""
        self.closing = True
        if self.in_send:
            self.drop()
        self._wake.set()

    def drop(self) -> None:
        """Disconnect the client (it resumes with Last-Event-ID)."""
        self.closing = True
        if self._abort_connection is not None:
            self._abort_connection()
        elif self._task is not None:
            self._task.cancel()

    async def events(self) -> AsyncIterator[ServerSentEventMessage]:
        """What the response sends, until the stream ends."""
        self._task = asyncio.current_task()
        try:
            if self._position_first:
                self.in_send = True
                yield ServerSentEventMessage(id=self.follower.event_id(), data=None)
                self.in_send = False
            while not self.closing:
                if self._wake.is_set():
                    self._wake.clear()
                    events = await self._catch_up()
                else:
                    try:
                        async with asyncio.timeout(self._ping_seconds):
                            await self._wake.wait()
                        continue
                    except TimeoutError:
                        events = [PING, *await self._catch_up()]
                for event in events:
                    self.in_send = True
                    yield event
                    self.in_send = False
                    if self.closing:
                        return
                if self.follower.ended:
                    return
                if self.follower.resume_from is not None:
                    self._wake.set()  # more to send: read on
        finally:
            self.in_send = False
            self.on_end(self)

    async def _catch_up(self) -> list[ServerSentEventMessage]:
        truncated_after, self._truncated_after = self._truncated_after, None
        self.backlog = 0
        try:
            # Shielded: a client that goes away cancels the stream, and a read cancelled
            # halfway would leave its transaction to a cancelled rollback.
            return await asyncio.shield(self._read(truncated_after))
        except Exception:  # the database failed: end the stream; its client resumes from its id
            log.warning("an event stream could not read its session; ended it", exc_info=True)
            self.closing = True
            return []

    async def _read(self, truncated_after: int | None) -> list[ServerSentEventMessage]:
        async with self._catch_ups:
            return await read_catch_up(self._database, self.follower, truncated_after)
