"""What each engine implements: the `Transaction` a service gets, and the `Engine` that hands
them out (sqlite.py, postgres.py). The `Database` (database.py) holds one engine.

Also the after-commit hook every engine's transaction shares: a service notes which sessions
it changed (`note_change`), and whoever commits the transaction announces them once the commit
has succeeded (`Database.announce_changes`), never for a rolled-back one. The event streams
(events/) are what listens."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection
from sqlalchemy.engine import CursorResult

from chat_sessions.db.prepared import Prepared


class SessionChange(NamedTuple):
    """A committed change of a session's messages or of the session itself. `truncated_after`:
    every message with a seq above it was removed (a truncation, a pop, a deletion), which a
    follower cannot tell from the rows that remain."""

    session_id: str
    truncated_after: int | None = None


class Transaction(abc.ABC):
    """What a service gets: one database transaction, begun on its first statement."""

    dialect: str
    # What this transaction changed, in the order it changed it; None until the first change
    # (a class default: engines' transactions need no constructor of their own for it).
    changes: list[SessionChange] | None = None

    def note_change(self, session_id: str, *, truncated_after: int | None = None) -> None:
        """Announce, once this transaction has committed, that the session changed."""
        if self.changes is None:
            self.changes = []
        self.changes.append(SessionChange(session_id, truncated_after))

    @abc.abstractmethod
    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        """Run one statement in this transaction (beginning it if this is the first)."""

    @abc.abstractmethod
    async def run(
        self, prepared: Prepared, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Run a prepared statement (for a sequence of parameter sets: once for each, as
        executemany); the rows it returns."""

    async def run_alone(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]] | None:
        """Run `prepared` as this transaction's one and only statement, committed on its own
        (PostgreSQL: in autocommit, one round trip, no BEGIN/COMMIT); its rows. None, having
        run nothing, where the engine has no such thing (SQLite, whose statements cost no round
        trip) or the transaction has already run statements: the caller then takes its
        multi-statement path. After it, the transaction refuses any further statement - unless
        it returned no row: a write that matched nothing wrote nothing, and the transaction
        starts afresh."""
        return None

    @abc.abstractmethod
    async def finish(self, commit: bool) -> None:
        """Commit or roll back, and give the connection back."""


class Engine(abc.ABC):
    """One engine's connections for one process, from `start` to `stop`."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open the connections (or the pool); a second call does nothing."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Commit what is pending and close every connection."""

    @abc.abstractmethod
    def begin(self, write: bool) -> Transaction:
        """A transaction, begun on its first statement; `write=False` promises reads only."""

    @abc.abstractmethod
    async def read(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """One read on its own, outside any request's transaction."""

    @abc.abstractmethod
    async def run_sync(self, work: Callable[[Connection], Any]) -> Any:
        """Run `work` with a plain SQLAlchemy connection (migrations, schema checks)."""
