"""What each engine implements: the `Transaction` a service gets, and the `Engine` that hands
them out (sqlite.py, postgres.py). The `Database` (database.py) holds one engine."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import CursorResult

from chat_sessions.db.prepared import Prepared


class Transaction(abc.ABC):
    """What a service gets: one database transaction, begun on its first statement."""

    dialect: str

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
        multi-statement path. After it, the transaction refuses any further statement."""
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
