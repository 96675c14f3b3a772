"""SQLite's search index, built behind the writes (`SearchIndexer`): FTS5 tokenising costs
more than storing a message, so inserts leave the index alone and this catches up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from chat_sessions.db import Database, Transaction

log = logging.getLogger(__name__)


class SearchIndexer:
    """Builds SQLite's search index behind the writes (migration 0004).

    Tokenising a message into FTS5 costs more than storing it, so inserts leave the index
    alone: the messages above a watermark rowid are indexed in slices, each in its own write
    transaction. A background loop (`run`) indexes slice after slice whenever the index is
    behind and looks every POLL_SECONDS otherwise, so under sustained writes the index trails
    them by a few slices. A search first indexes what is still waiting, up to
    SEARCH_CATCH_UP messages (some 15-20 ms of work): it sees every message committed before
    it whenever no more than that are waiting; after a larger burst (a bulk import) it answers
    at once from what is indexed, and the rest shows up as the loop catches up.

    In-progress messages are passed over (migration 0006): the update trigger indexes one
    when it is closed, so its deltas cost the index nothing.
    """

    # Indexing runs on the event loop holding the write lock (measured 50,000-75,000 messages
    # a second on a busy 2-core machine): a slice of 100 is ~2 ms, the most a write waits
    # behind it, and writes get the lock between two slices.
    SLICE = 100
    POLL_SECONDS = 0.05
    RETRY_SECONDS = 1.0
    SEARCH_CATCH_UP = 1_000

    _RANGE = text(
        "SELECT indexed_through, (SELECT max(rowid) FROM messages) FROM messages_fts_watermark"
    )
    _INDEX = text(
        "INSERT INTO messages_fts (rowid, content) SELECT rowid, content FROM messages"
        " WHERE rowid > :start AND rowid <= :bound AND status <> 'in_progress'"
    )
    _ADVANCE = text("UPDATE messages_fts_watermark SET indexed_through = :bound")

    def __init__(
        self, database: Database, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self._database = database
        self._sleep = sleep  # tests drive the loop through it

    async def backlog(self) -> int:
        """How many rowids wait above the watermark, read without taking the write lock."""
        async with self._database.transaction(write=False) as tx:
            start, top = await self._range(tx)
        return top - start

    async def index_slice(self, size: int | None = None) -> int:
        """Index up to `size` (default SLICE) rowids above the watermark; how many remain."""
        async with self._database.transaction() as tx:
            start, top = await self._range(tx)
            if top == start:
                return 0
            bound = min(top, start + (size or self.SLICE))
            await tx.execute(self._INDEX, {"start": start, "bound": bound})
            await tx.execute(self._ADVANCE, {"bound": bound})
            return top - bound

    async def _range(self, tx: Transaction) -> tuple[int, int]:
        """The watermark and the highest rowid above it (the watermark when none is)."""
        start, top = tuple((await tx.execute(self._RANGE)).one())
        return int(start), max(int(start), int(top or 0))

    async def catch_up_for_search(self) -> None:
        """Index what waits, a slice at a time, but no more than SEARCH_CATCH_UP rowids: a
        search never pays for a whole backlog."""
        done = 0
        while done < self.SEARCH_CATCH_UP:
            size = min(self.SLICE, self.SEARCH_CATCH_UP - done)
            if not await self.index_slice(size):
                return
            done += size

    async def step(self) -> float:
        """One round of the background loop: index one slice if the index is behind; the
        seconds to wait before the next round (none while more is waiting)."""
        try:
            if await self.backlog() and await self.index_slice():
                return 0.0
        except Exception:  # a failed slice stays queued; searches and the next round retry
            log.exception("search indexing failed; retrying in %s s", self.RETRY_SECONDS)
            return self.RETRY_SECONDS
        return self.POLL_SECONDS

    async def run(self) -> None:
        """The background loop (the app's lifespan runs it, see SQLiteSearch): a slice at a time,
        yielding to requests between slices."""
        while True:
            await self._sleep(await self.step())
