"""A process's event streams, by session, and what feeds them: the changes this process's
transactions commit (the `Database`'s after-commit hook, in commit order) and, on PostgreSQL,
those the other processes commit (relay.py). It also bounds them (MAX_STREAMS_PER_TENANT per
tenant in this process) and ends them on shutdown.

Shutdown: uvicorn waits for every open response before it shuts the application down, and a
stream never ends by itself, so `chat-sessions serve` (server.py) calls `end_all_streams` when
the server begins its shutdown; the lifespan's end does the same under any other server.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import Sequence
from typing import Any

from chat_sessions.db import Database, Transaction
from chat_sessions.db.transaction import SessionChange
from chat_sessions.errors import TooManyRequests
from chat_sessions.events.follow import Follower
from chat_sessions.events.relay import NotifyRelay
from chat_sessions.events.stream import EventStream
from chat_sessions.sessions.service import ensure_session
from chat_sessions.settings import Settings

# Catch-ups reading at once: a burst (a listener's reconnect wakes every stream) must not take
# every pooled connection from the requests.
CONCURRENT_CATCH_UPS = 4

_HUBS: weakref.WeakSet[EventHub] = weakref.WeakSet()


def end_all_streams() -> None:
    """End every stream of this process (server.py, as the server begins its shutdown)."""
    for hub in list(_HUBS):
        hub.end_streams()


class EventHub:
    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings
        self._streams: dict[str, set[EventStream]] = {}
        self._per_tenant: Counter[str] = Counter()
        self._catch_ups = asyncio.Semaphore(CONCURRENT_CATCH_UPS)
        self._relay = (
            None
            if database.is_sqlite
            else NotifyRelay(settings.sqlalchemy_url, self.deliver, self.catch_up_all)
        )

    async def start(self) -> None:
        self._database.change_listeners.append(self.committed)
        _HUBS.add(self)
        if self._relay is not None:
            await self._relay.start()

    async def stop(self) -> None:
        self.end_streams()
        _HUBS.discard(self)
        if self.committed in self._database.change_listeners:
            self._database.change_listeners.remove(self.committed)
        if self._relay is not None:
            await self._relay.stop()

    def committed(self, changes: Sequence[SessionChange]) -> None:
        """The after-commit hook: this process's streams now, the other processes' by relay."""
        self.deliver(changes)
        if self._relay is not None:
            self._relay.send(changes)

    def deliver(self, changes: Sequence[SessionChange]) -> None:
        for change in changes:
            for stream in self._streams.get(change.session_id, ()):
                stream.changed(change.truncated_after)

    def catch_up_all(self) -> None:
        """Changes may have been missed (the relay reconnected): every stream reads again."""
        for streams in self._streams.values():
            for stream in streams:
                stream.changed(None)

    def end_streams(self) -> None:
        for streams in list(self._streams.values()):
            for stream in list(streams):
                stream.close()

    def open(self, follower: Follower, scope: dict[str, Any]) -> EventStream:
        """A new stream for `follower`, following changes from now on (so a change committed
        while its first catch-up reads is not missed); 429 past MAX_STREAMS_PER_TENANT."""
        tenant_id = follower.tenant_id
        limit = self._settings.max_streams_per_tenant
        if self._per_tenant[tenant_id] >= limit:
            raise TooManyRequests(
                f"this tenant has {limit} open event streams on this process, the most it may",
                headers={"Retry-After": "1"},
            )
        stream = EventStream(
            self._database,
            follower,
            ping_seconds=self._settings.events_ping_seconds,
            backlog_limit=self._settings.events_backlog_limit,
            catch_ups=self._catch_ups,
            scope=scope,
            on_end=self._ended,
        )
        self._per_tenant[tenant_id] += 1
        self._streams.setdefault(follower.session_id, set()).add(stream)
        return stream

    def _ended(self, stream: EventStream) -> None:
        follower = stream.follower
        streams = self._streams.get(follower.session_id)
        if streams is None or stream not in streams:
            return
        streams.discard(stream)
        if not streams:
            del self._streams[follower.session_id]
        self._per_tenant[follower.tenant_id] -= 1
        if not self._per_tenant[follower.tenant_id]:
            del self._per_tenant[follower.tenant_id]

    def open_streams(self, tenant_id: str) -> int:
        return self._per_tenant[tenant_id]

    async def follow(
        self,
        tx: Transaction,
        *,
        tenant_id: str,
        session_id: str,
        after_seq: int | None,
        last_event_id: str | None,
        scope: dict[str, Any],
        head: bool = False,
    ) -> EventStream | None:
        """A stream of the session (404 when the tenant has none such): resuming after
        `last_event_id` (which wins) or after `after_seq`, else from now on. None for a
        `head` request, which gets the stream's headers only."""
        await ensure_session(tx, tenant_id=tenant_id, session_id=session_id)
        if head:
            return None
        if last_event_id is not None:
            follower = Follower.resuming(tenant_id, session_id, last_event_id)
        else:
            follower = Follower(tenant_id, session_id, settled=after_seq or 0)
        stream = self.open(follower, scope)
        try:
            if last_event_id is None and after_seq is None:
                await follower.start_from_now(tx)
                # Its client has no point to resume from until it is told one.
                stream.send_position_first()
        except BaseException:
            self._ended(stream)
            raise
        if last_event_id is not None or after_seq is not None:
            stream.changed(None)  # its first catch-up sends what the client missed
        return stream
