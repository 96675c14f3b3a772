"""The SQLite engine: `SQLiteEngine` owns a process's connections (a writer and a reader
link), their group commit, the raw savepoints and transactions, and its `Checkpointer`
(checkpointer.py).

Per process one writer connection and one reader connection (WAL lets reads proceed while a
write is open; on `:memory:`, a database per connection, they are one), used directly on the
event loop. SQLite statements on an indexed table take microseconds, far less
than a hop to a worker thread (aiosqlite, a thread pool) costs, and SQLite has one writer at
a time anyway: a pool of connections only adds lock fights and seconds-long tail latency (see
PERFORMANCE.md). Writes begin `IMMEDIATE`, so they hold the write lock from their first
statement and never fail halfway with "database is locked"; an asyncio lock hands each
connection to one transaction at a time, and concurrent writes share one commit
(`_GroupCommit`). WAL checkpoints run on a thread of their own (`Checkpointer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Connection, create_engine, event
from sqlalchemy import Engine as SQLAlchemyEngine
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool, StaticPool

from chat_sessions.db.checkpointer import Checkpointer
from chat_sessions.db.prepared import Prepared
from chat_sessions.db.transaction import Engine, Transaction
from chat_sessions.jsonvalues import encode_for_storage
from chat_sessions.settings import Settings


def is_in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def create_sqlite_engine(url: str, settings: Settings) -> SQLAlchemyEngine:
    """An engine whose every connection follows the SQLite rules of DESIGN.md."""
    in_memory = is_in_memory(url)
    if not in_memory:
        database = url.removeprefix("sqlite:///")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # A writer and a reader per process (see SQLiteEngine); :memory: is a
        # database per connection, so there every request and the migrations share one.
        poolclass=StaticPool if in_memory else QueuePool,
        connect_args={"check_same_thread": False},
        # Numbers are stored as jsonb keeps them, on both engines (see encode_for_storage).
        json_serializer=encode_for_storage,
        json_deserializer=msgspec.json.decode,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: we begin them ourselves, IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")  # off by default, per connection
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        # Each request writes inside a SAVEPOINT (see _GroupCommit), whose undo copies of the
        # pages it changes go to a temporary file by default: in memory they cost half as much
        # (a batch of 20: 19 -> 10 µs a message, measured raw).
        cursor.execute("PRAGMA temp_store=MEMORY")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
            # WAL checkpoints are the job of the Checkpointer's thread (see there).
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock at BEGIN: a transaction that read first and then wrote
        # would fail at once with "database is locked", whatever the busy timeout. A transaction
        # begun on the driver (_RawTransaction) is joined, not begun again.
        raw = connection.connection.dbapi_connection
        if raw is None or not raw.in_transaction:
            connection.exec_driver_sql(connection.info.get("begin_sql", "BEGIN IMMEDIATE"))

    return engine


def set_sqlite_foreign_keys(connection: Connection, enabled: bool) -> None:
    """Switch foreign keys outside any transaction (inside one, SQLite ignores the pragma)."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


class _SQLiteLink:
    """One SQLite connection, and the lock that hands it to one transaction at a time."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.lock = asyncio.Lock()
        raw = connection.connection.dbapi_connection
        assert raw is not None
        self.raw = raw
        self.dialect = connection.dialect

    def run(
        self, prepared: Prepared, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """`Prepared` on the driver connection, in whatever transaction it is in."""
        plan = prepared.plan(self.dialect)
        values: Any = None
        try:
            if isinstance(parameters, Mapping):
                values = plan.values(parameters)
                return plan.rows(self.raw.execute(plan.sql, values).fetchall())
            values = plan.values_many(parameters)
            if plan.insert_head is None:
                self.raw.executemany(plan.sql, values)
                return []
            for sql, chunk in plan.multi_row_inserts(values):
                self.raw.execute(sql, chunk)
            return []
        except sqlite3.Error as error:
            # The same exception SQLAlchemy would raise, for the same error handlers.
            raise DBAPIError.instance(plan.sql, values, error, sqlite3.Error) from error


class _RawSavepoint:
    """A request's SAVEPOINT, issued on the driver connection itself: SQLAlchemy's nested
    transaction costs two full statement executions per request. Only one request holds the
    connection at a time, so one name serves."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        raw.execute("SAVEPOINT request")

    def commit(self) -> None:
        self._raw.execute("RELEASE request")

    def rollback(self) -> None:
        self._raw.execute("ROLLBACK TO request")
        self._raw.execute("RELEASE request")


class _RawTransaction:
    """A transaction begun on the driver connection: SQLAlchemy's begin and commit cost
    ~35 µs a transaction, more than a read or a small write itself. A SQLAlchemy statement run
    inside it joins it (its autobegin finds the transaction open, see `_on_begin`); ending it
    then goes through SQLAlchemy, so that the connection's own bookkeeping ends too."""

    def __init__(self, link: _SQLiteLink, begin_sql: str) -> None:
        self._link = link
        link.raw.execute(begin_sql)

    def commit(self) -> None:
        if self._link.connection.in_transaction():
            self._link.connection.commit()
        else:
            self._link.raw.execute("COMMIT")

    def rollback(self) -> None:
        # After a COMMIT failed through SQLAlchemy, its transaction is inactive, not gone (later
        # statements: PendingRollbackError), and SQLite's is still open: end both.
        if self._link.connection.get_transaction() is not None:
            self._link.connection.rollback()
        if self._link.raw.in_transaction:
            self._link.raw.execute("ROLLBACK")


class _GroupCommit:
    """Concurrent write transactions share one SQLite commit.

    A commit is most of a write's cost (WAL frames, the search index's segment), and SQLite
    has one writer anyway. So each request's writes run inside a SAVEPOINT of one open
    `BEGIN IMMEDIATE` transaction: a request that fails rolls back alone, while those that
    succeeded are committed together as soon as no request is queued for the connection, and
    each is answered only after that commit. Acknowledged writes are committed writes.
    """

    def __init__(self, link: _SQLiteLink) -> None:
        self._link = link
        self._outer: Any = None
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    def savepoint(self) -> _RawSavepoint:
        """A savepoint in the shared transaction (opened if needed); the link's lock is held."""
        if self._outer is None:
            self._outer = _RawTransaction(self._link, "BEGIN IMMEDIATE")
        return _RawSavepoint(self._link.raw)

    def schedule(self) -> None:
        """Commit everything released so far as soon as the connection is free."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._commit_when_free())

    def committed(self) -> asyncio.Future[None]:
        """Schedule the commit, and a future resolved when it is done (or failed). Only a
        request that awaits the commit asks for one: a failed future nobody reads is
        reported by asyncio as an error with a traceback."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.schedule()
        return waiter

    async def _commit_when_free(self) -> None:
        async with self._link.lock:  # FIFO: requests already queued join this commit first
            self._task = None
            self.commit_locked()

    def commit_locked(self) -> None:
        outer, self._outer = self._outer, None
        waiters, self._waiters = self._waiters, []
        error: BaseException | None = None
        if outer is not None:
            try:
                outer.commit()
            except Exception as failure:
                error = failure
                with contextlib.suppress(Exception):
                    outer.rollback()
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


class _SQLiteTransaction(Transaction):
    """A transaction on one link: the writer's (a savepoint in the group's shared
    transaction) or the reader's (its own `BEGIN`, seeing committed data only). On `:memory:`
    a read shares the writer's link, and so its group too."""

    dialect = "sqlite"

    def __init__(self, link: _SQLiteLink, group: _GroupCommit | None, write: bool) -> None:
        self._link = link
        self._group = group
        self._write = write
        self._transaction: Any = None

    async def _begin(self) -> None:
        await self._link.lock.acquire()
        try:
            if self._group is not None:
                self._transaction = self._group.savepoint()
            else:
                self._transaction = _RawTransaction(self._link, "BEGIN")
        except BaseException:
            self._link.lock.release()
            raise

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        if self._transaction is None:
            await self._begin()
        return self._link.connection.execute(statement, parameters)

    async def run(
        self, prepared: Prepared, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        if self._transaction is None:
            await self._begin()
        return self._link.run(prepared, parameters)

    async def finish(self, commit: bool) -> None:
        transaction, self._transaction = self._transaction, None
        if transaction is None:
            return
        try:
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
        except BaseException:
            with contextlib.suppress(Exception):
                transaction.rollback()
            raise
        finally:
            self._link.lock.release()
        if self._group is not None:
            if self._write and commit:
                await self._group.committed()
            else:
                self._group.schedule()


class _Links:
    """What a started engine holds: the two links (one on `:memory:`) and the group."""

    def __init__(self, writer: _SQLiteLink, reader: _SQLiteLink) -> None:
        self.writer = writer
        self.reader = reader
        self.group = _GroupCommit(writer)
        # A read on the writer's link (:memory:) is a savepoint in the group's transaction.
        self.reader_group = self.group if reader is writer else None


class SQLiteEngine(Engine):
    """A process's SQLite connections, from `start` to `stop` (see the module docstring)."""

    def __init__(self, url: str, settings: Settings) -> None:
        self._url = url
        self._settings = settings
        self._engine: SQLAlchemyEngine | None = None
        self._links: _Links | None = None
        self._checkpointer: Checkpointer | None = None

    async def start(self) -> None:
        if self._engine is not None:
            return
        self._engine = create_sqlite_engine(self._url, self._settings)
        writer = _SQLiteLink(self._engine.connect())
        reader = writer
        if not is_in_memory(self._url):
            self._checkpointer = Checkpointer(
                self._url.removeprefix("sqlite:///"), self._settings.sqlite_busy_timeout_ms
            )
            connection = self._engine.connect()
            connection.info["begin_sql"] = "BEGIN"  # reads never take the write lock
            reader = _SQLiteLink(connection)
        self._links = _Links(writer, reader)

    async def stop(self) -> None:
        links, self._links = self._links, None
        if links is not None:
            async with links.writer.lock:
                links.group.commit_locked()
            for link in {links.writer, links.reader}:
                link.connection.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _started(self) -> _Links:
        if self._links is None:
            raise RuntimeError("the database is not started")
        return self._links

    def begin(self, write: bool) -> Transaction:
        links = self._started()
        if write:
            return _SQLiteTransaction(links.writer, links.group, True)
        return _SQLiteTransaction(links.reader, links.reader_group, False)

    async def read(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """On the reader connection, as a single autocommit statement."""
        reader = self._started().reader
        async with reader.lock:
            return reader.run(prepared, parameters)

    async def run_sync(self, work: Callable[[Connection], Any]) -> Any:
        links = self._started()
        async with links.writer.lock:
            links.group.commit_locked()  # nothing pending may ride along with `work`
            connection = links.writer.connection
            try:
                return work(connection)
            finally:
                # Work that left a transaction open (an inspector's reads autobegin one)
                # would hold the write lock of the one shared connection: end it.
                if connection.in_transaction():
                    connection.rollback()
