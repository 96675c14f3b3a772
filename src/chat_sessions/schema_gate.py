"""Tenant routes serve only on a database at the latest migration.

A process started against an older schema (before `make migrate`, or rolled back) would
otherwise write rows the new code misreads and answer some routes with tracebacks (`no such
table`). Until the database is at the head revision, every tenant route answers `503` with
`Retry-After`, as `/ready` does. The hot path pays one attribute check: the revision is read
on the first request, then, while it is behind, at most once every RECHECK_SECONDS, so a
process started before the migration serves as soon as it is done, without a restart. Once
at the head it is not read again (a schema is not downgraded under a running service).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from chat_sessions.db import Database
from chat_sessions.errors import ServiceUnavailable


class SchemaGate:
    RECHECK_SECONDS = 1.0

    def __init__(self, head: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.head = head
        self.current = False
        self._clock = clock
        self._next_check = float("-inf")
        self._lock = asyncio.Lock()

    async def check(self, database: Database) -> None:
        """Return when the schema is at the head; else raise a 503."""
        if self.current:
            return
        async with self._lock:  # concurrent first requests share one look
            if not self.current and self._clock() >= self._next_check:
                self._next_check = self._clock() + self.RECHECK_SECONDS
                self.current = await database.schema_revision() == self.head
        if not self.current:
            raise ServiceUnavailable(
                "the database schema is not at the latest migration yet: run `make migrate`",
                headers={"Retry-After": str(int(self.RECHECK_SECONDS))},
            )
