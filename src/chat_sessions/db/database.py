"""The one object the app holds: `Database`, which picks the engine for its URL (SQLite or
PostgreSQL) and hands out its transactions. Everything that differs between the engines is
in sqlite.py and postgres.py; services see `Transaction` alone."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from chat_sessions.db.migrate import upgrade_on_connection
from chat_sessions.db.postgres import PostgresEngine
from chat_sessions.db.prepared import Prepared
from chat_sessions.db.sqlite import SQLiteEngine
from chat_sessions.db.transaction import Engine, SessionChange, Transaction
from chat_sessions.settings import Settings

log = logging.getLogger(__name__)


class Database:
    """Owns the engine for one process; hands out transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.sqlalchemy_url
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self.engine: Engine = (
            SQLiteEngine(self.url, settings)
            if self.is_sqlite
            else PostgresEngine(self.url, settings)
        )
        # Who hears of committed changes (the event hub, events/hub.py).
        self.change_listeners: list[Callable[[Sequence[SessionChange]], None]] = []

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    def begin(self, write: bool = True) -> Transaction:
        """A transaction for the caller to `finish`, begun on its first statement; what
        `transaction` wraps. Request dependencies use it directly: each context-manager layer
        costs a few µs a request."""
        return self.engine.begin(write)

    @contextlib.asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[Transaction]:
        """One transaction: committed when the block ends, rolled back if it raises.

        `write=False` promises reads only: on SQLite they then run on the reader connection,
        never waiting for the write lock.
        """
        transaction = self.engine.begin(write)
        try:
            yield transaction
        except BaseException:
            await transaction.finish(commit=False)
            raise
        await transaction.finish(commit=True)
        self.announce_changes(transaction)

    def announce_changes(self, committed: Transaction) -> None:
        """The after-commit hook: tell the listeners what a transaction changed, called by
        whoever committed it, and only after the commit succeeded. Synchronous, so changes are
        announced in the order their commits returned (SQLite's group commit wakes its
        transactions in the order they wrote)."""
        changes = committed.changes
        if changes:
            committed.changes = None
            for listener in self.change_listeners:
                try:
                    listener(changes)
                except Exception:  # the write is committed: its answer must not fail now
                    log.exception("a listener of committed changes failed")

    async def read(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """One read on its own, outside any request transaction (the API key look-up)."""
        return await self.engine.read(prepared, parameters)

    async def run_sync(self, work: Callable[[Connection], Any]) -> Any:
        """Run `work` with a plain SQLAlchemy connection (migrations, schema checks)."""
        return await self.engine.run_sync(work)

    async def schema_revision(self) -> str | None:
        """The migration the database is at, or None when it has none (or cannot answer)."""

        def read(connection: Connection) -> str | None:
            try:
                with connection.begin():
                    return connection.execute(
                        text("SELECT version_num FROM alembic_version")
                    ).scalar()
            except SQLAlchemyError:
                return None

        return await self.run_sync(read)

    async def migrate(self, revision: str = "head") -> None:
        await self.run_sync(lambda connection: upgrade_on_connection(connection, revision))
