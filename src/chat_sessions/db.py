"""The database: engine factory, engine rules, transactions, migrations.

Everything that differs between SQLite and PostgreSQL lives here; services see one interface,
a `Transaction` whose `execute` (any SQLAlchemy statement) and `run` (a `Prepared` hot-path
statement) they await, whichever engine is behind it.

SQLite: per process one writer connection and one reader connection (WAL lets reads proceed
while a write is open), used directly on the event loop. SQLite statements on an indexed table
take microseconds, far less than a hop to a worker thread (aiosqlite, a thread pool) costs,
and SQLite has one writer at a time anyway: a pool of connections only adds lock fights and
seconds-long tail latency (see PERFORMANCE.md). Writes begin `IMMEDIATE`, so they hold the
write lock from their first statement and never fail halfway with "database is locked"; an
asyncio lock hands each connection to one transaction at a time, and concurrent writes share
one commit (`_GroupCommit`). Two chores run beside the requests: WAL checkpoints on a thread
of their own (`Checkpointer`), and the search index, built behind the writes
(`SearchIndexer`).

PostgreSQL: an asyncpg pool; each transaction takes a connection on its first statement.
Services lock the session row they change (`SELECT ... FOR UPDATE`, or an `UPDATE` first), so
several processes append and patch correctly side by side.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import logging
import operator
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.sql import sqltypes

from chat_sessions.jsonvalues import encode_for_storage
from chat_sessions.settings import Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


# Numbers are stored as PostgreSQL's jsonb keeps them, on both engines (see there).
_json_serializer = encode_for_storage


class Prepared:
    """A hot-path statement, compiled once per engine and run straight on the driver cursor.

    SQLAlchemy's execution path costs ~30 µs a statement on SQLite (execution contexts,
    events, result objects), as much as the statement itself. Of what it does, two things
    matter: compiling, done here once, and converting values, done here with the column
    types' own processors, so values come back exactly as SQLAlchemy would return them. Rows
    are plain tuples in the statement's column order. PostgreSQL runs these through
    SQLAlchemy as any other statement (its round trip dwarfs the difference).
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[Dialect, _Plan] = {}

    def plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _Plan(self.statement, dialect)
        return plan


class _Plan:
    """A statement compiled for one dialect with positional parameters, and its converters."""

    # Far below SQLite's limit of 32,766 bound values a statement, for any of our tables.
    MAX_ROWS_PER_INSERT = 256

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        binds = compiled.binds
        names = list(compiled.positiontup or ())
        # Literals in the statement (`version + 1`) are bind parameters with a value.
        self._literals = {
            name: binds[name].effective_value for name in names if binds[name].value is not None
        }
        self._pick = operator.itemgetter(*names) if names else None
        self._one_name = len(names) == 1
        self._bind_processors = [
            (index, processor)
            for index, name in enumerate(names)
            if (processor := binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        # An INSERT of many rows runs as multi-row VALUES statements, which SQLite executes
        # ~15% faster than the same rows one by one (executemany): see multi_row_inserts.
        self.insert_head: str | None = None
        if statement.is_insert and not compiled.returning:
            head, _, group = self.sql.partition(" VALUES ")
            self.insert_head, self._value_group = head + " VALUES ", group
            self._multi_row_sql: dict[int, str] = {}
        columns = statement.exported_columns if compiled.returning or statement.is_select else ()
        self._column_converters = [
            (index, converter)
            for index, column in enumerate(columns)
            if (converter := _column_converter(column.type, dialect))
        ]

    def values(self, parameters: Mapping[str, Any]) -> list[Any]:
        return self.values_many([parameters])[0]

    def values_many(self, parameter_sets: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """Driver parameters for each set. The values are picked in C (itemgetter) and only
        typed ones converted; rows of a batch share their timestamp and ids, so a value that
        is the same object as the row before's is converted once."""
        pick = self._pick
        if pick is None:
            return [[] for _ in parameter_sets]
        if self._literals:
            parameter_sets = [{**self._literals, **one} for one in parameter_sets]
        if self._one_name:
            rows = [[pick(one)] for one in parameter_sets]
        else:
            rows = [list(pick(one)) for one in parameter_sets]
        for index, process in self._bind_processors:
            last_in: Any = _UNSET
            last_out: Any = None
            for row in rows:
                value = row[index]
                if value is not last_in:
                    last_in, last_out = value, process(value)
                row[index] = last_out
        return rows

    def multi_row_inserts(self, rows: list[list[Any]]) -> list[tuple[str, list[Any]]]:
        """`rows` as INSERT statements of 2**k rows each (and their flattened values), largest
        first (a batch of 20 is 16 + 4), at most MAX_ROWS_PER_INSERT rows each. Sizes that are
        powers of two keep the distinct statements, each compiled once by SQLite and cached by
        the driver, at nine."""
        assert self.insert_head is not None
        statements: list[tuple[str, list[Any]]] = []
        start, remaining = 0, len(rows)
        while remaining:
            size = min(1 << (remaining.bit_length() - 1), self.MAX_ROWS_PER_INSERT)
            sql = self._multi_row_sql.get(size)
            if sql is None:
                sql = self._multi_row_sql[size] = self.insert_head + ", ".join(
                    [self._value_group] * size
                )
            statements.append(
                (sql, list(itertools.chain.from_iterable(rows[start : start + size])))
            )
            start += size
            remaining -= size
        return statements

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Convert the typed columns (a page of history: timestamps and JSON), a column at a
        time: a few times cheaper than a generator over every value of every row."""
        if not self._column_converters or not fetched:
            return fetched
        columns: list[Sequence[Any]] = list(zip(*fetched, strict=True))
        for index, convert in self._column_converters:
            columns[index] = convert(columns[index])
        return list(zip(*columns, strict=True))


_UNSET = object()
ColumnConverter = Callable[[Sequence[Any]], Sequence[Any]]


def _column_converter(column_type: Any, dialect: Dialect) -> ColumnConverter | None:
    """What turns one column of fetched values into what SQLAlchemy would return, for the
    whole column in one call: a type's own `column_converter` (UTCDateTime's, in C), JSON
    decoded by the engine's deserializer directly, else the type's result processor."""
    own = getattr(column_type, "column_converter", None)
    if own is not None and (converter := own(dialect)) is not None:
        return converter  # type: ignore[no-any-return]
    impl = column_type.dialect_impl(dialect)
    decode = getattr(dialect, "_json_deserializer", None)
    if isinstance(impl, sqltypes.JSON) and decode is not None:
        # SQLite gives a JSON column NUMERIC affinity: a stored scalar such as 5 comes back as
        # a number, not as text to decode (SQLAlchemy's processor passes those through too).
        return lambda values: [
            decode(value) if value.__class__ is str else value for value in values
        ]
    process = impl.result_processor(dialect, None)
    if process is None:
        return None
    return lambda values: [None if value is None else process(value) for value in values]


class Transaction(abc.ABC):
    """What a service gets: one database transaction, begun on its first statement. Each
    engine's transaction below implements it."""

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

    @abc.abstractmethod
    async def finish(self, commit: bool) -> None:
        """Commit or roll back, and give the connection back."""

    @abc.abstractmethod
    async def prepare_search(self) -> None:
        """Bring the search index up to date before this transaction's first statement."""


# --- SQLite -------------------------------------------------------------------------------


def is_in_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///:memory:")


def create_sqlite_engine(url: str, settings: Settings) -> Engine:
    """An engine whose every connection follows the SQLite rules of DESIGN.md."""
    in_memory = is_in_memory(url)
    if not in_memory:
        database = url.removeprefix("sqlite:///")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # A writer and a reader per process (see the module docstring); :memory: is a
        # database per connection, so there every request and the migrations share one.
        poolclass=StaticPool if in_memory else QueuePool,
        connect_args={"check_same_thread": False},
        json_serializer=_json_serializer,
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


class Checkpointer:
    """Copies the SQLite write-ahead log into the database file from a thread of its own.

    By default the committing connection does it, every 1,000 pages written: a few ms of
    copying and an fsync inside one request's commit on the event loop, every few hundred
    writes, and those requests' latency. SQLite runs checkpoints without the GIL, so on this
    thread (with its own connection) they use another core, and `PASSIVE` ones never make a
    writer or a reader wait. The writer connection's own checkpoints are turned off. Measured
    under 16 writers: append p99 ~11.8 -> ~8 ms, batch of 20 ~21 -> ~14 ms.
    """

    INTERVAL_SECONDS = 0.05

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            while not self._stop.wait(self.INTERVAL_SECONDS):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # busy or locked this time: the next round retries
                    log.debug("WAL checkpoint skipped", exc_info=True)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


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
        if self._link.connection.in_transaction():
            self._link.connection.rollback()
        else:
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

    def schedule(self) -> asyncio.Future[None]:
        """A future resolved when everything released so far is committed."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._commit_when_free())
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
    dialect = "sqlite"

    def __init__(self, database: Database, write: bool, background: bool = False) -> None:
        self._database = database
        self._write = write
        # Reads go to their own connection (WAL lets it read while the writer writes) and see
        # committed data only; with one connection (:memory:) they share the writer's.
        self._link = database._writer if write else database._reader
        self._shared = self._link is database._writer
        self._transaction: Any = None
        if not background:
            database.last_activity = time.monotonic()

    async def prepare_search(self) -> None:
        assert self._transaction is None, "the index must be current before the snapshot"
        await self._database.search_indexer.catch_up_for_search()

    async def _begin(self) -> None:
        await self._link.lock.acquire()
        try:
            if self._shared:
                self._transaction = self._database._group.savepoint()
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
        if self._shared:
            committed = self._database._group.schedule()
            if self._write and commit:
                await committed


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
        " WHERE rowid > :start AND rowid <= :bound"
    )
    _ADVANCE = text("UPDATE messages_fts_watermark SET indexed_through = :bound")

    def __init__(
        self, database: Database, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self._database = database
        self._sleep = sleep  # tests drive the loop through it

    async def backlog(self) -> int:
        """How many rowids wait above the watermark, read without taking the write lock."""
        async with self._database.transaction(write=False, background=True) as tx:
            start, top = await self._range(tx)
        return top - start

    async def index_slice(self, size: int | None = None) -> int:
        """Index up to `size` (default SLICE) rowids above the watermark; how many remain."""
        async with self._database.transaction(background=True) as tx:
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
        """The background loop (the app's lifespan runs it on SQLite): a slice at a time,
        yielding to requests between slices."""
        while True:
            await self._sleep(await self.step())


# --- PostgreSQL ---------------------------------------------------------------------------


def create_postgres_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        # No pre-ping: a connection that died with the server is replaced when its first
        # statement fails, and that statement retried (postgres_first_statement).
        json_serializer=_json_serializer,
        json_deserializer=msgspec.json.decode,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {"statement_timeout": str(settings.db_statement_timeout_ms)},
        },
    )


_ATTEMPTS = 3


async def postgres_first_statement(
    engine: AsyncEngine, statement: Any, parameters: Any = None, *, read_only: bool = False
) -> tuple[AsyncConnection, CursorResult[Any]]:
    """A pooled connection with a transaction begun and its first statement run.

    Nothing pings a connection on checkout: SQLAlchemy's pre-ping costs three round trips a
    request on asyncpg (BEGIN, `;`, ROLLBACK) - measured, 10-15% of the service's CPU a
    request. Instead, a connection that died in the pool (server restart, failover, an idle
    timeout, `pg_terminate_backend`) fails this first statement as a disconnect, on which
    SQLAlchemy drops every connection pooled before it; the transaction died with the
    connection, uncommitted, so the statement is tried again on a fresh connection (twice at
    most: a fresh one can die too when terminations come in a row). A database that is really
    down fails to connect instead, which is not retried. `read_only` begins `BEGIN READ ONLY` (the
    same round trip): the server refuses any write in it, which is what makes re-running a
    read transaction's statements safe (`_PostgresTransaction`).
    """
    for attempt in range(1, _ATTEMPTS + 1):
        connection = await engine.connect()
        try:
            if read_only:
                await connection.execution_options(postgresql_readonly=True)
            await connection.begin()
            return connection, await connection.execute(statement, parameters)
        except DBAPIError as error:
            await connection.close()
            if attempt < _ATTEMPTS and error.connection_invalidated:
                log.info("a pooled PostgreSQL connection had died; retrying on a new one")
                continue
            raise
        except BaseException:
            await connection.close()
            raise
    raise AssertionError("unreachable")


class _PostgresTransaction(Transaction):
    """A transaction on a pooled connection, and what it does when that connection dies.

    A read transaction (`write=False`, begun `READ ONLY`) whose connection dies between or
    during its statements runs the failed statement again on a fresh connection, in a new
    transaction: its earlier statements changed nothing, and under READ COMMITTED (the
    default, never changed here) each statement sees its own snapshot anyway, so the retried
    statement sees what it would have seen a moment later on the old connection. A read's
    COMMIT that fails as a disconnect loses nothing either. A write can only be retried when
    its first statement fails (nothing of it reached the server): past that, a dead
    connection fails the request (`503`), its transaction rolled back by the server - or,
    when the COMMIT itself was in flight, committed or not, which nobody can tell.
    """

    dialect = "postgresql"

    def __init__(self, engine: AsyncEngine, write: bool = True) -> None:
        self._engine = engine
        self._write = write
        self._connection: AsyncConnection | None = None

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        if self._connection is not None:
            try:
                return await self._connection.execute(statement, parameters)
            except DBAPIError as error:
                if self._write or not error.connection_invalidated:
                    raise
                connection, self._connection = self._connection, None
                await connection.close()
                log.info("a read's PostgreSQL connection died; retrying on a new one")
        self._connection, result = await postgres_first_statement(
            self._engine, statement, parameters, read_only=not self._write
        )
        return result

    async def prepare_search(self) -> None:
        """Nothing to do: PostgreSQL's GIN index is current as each write commits."""

    async def run(
        self, prepared: Prepared, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        result = await self.execute(prepared.statement, parameters)
        return list(result) if result.returns_rows else []

    async def finish(self, commit: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if commit:
                await connection.commit()
            else:
                await connection.rollback()
        except DBAPIError as error:
            if self._write or not error.connection_invalidated:
                raise
            log.info("a read's PostgreSQL connection died at its end; nothing was lost")
        finally:
            await connection.close()


# --- the one object the app holds ---------------------------------------------------------


class Database:
    """Owns the engine for one process; hands out transactions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.sqlalchemy_url
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self._sync_engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._writer: Any = None
        self._reader: Any = None
        self._group: Any = None
        self._checkpointer: Checkpointer | None = None
        self.last_activity = 0.0  # monotonic time of the last transaction begun
        self.search_indexer = SearchIndexer(self)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def start(self) -> None:
        if self.is_sqlite:
            if self._sync_engine is None:
                self._sync_engine = create_sqlite_engine(self.url, self.settings)
                self._writer = _SQLiteLink(self._sync_engine.connect())
                self._group = _GroupCommit(self._writer)
                self._reader = self._writer
                if not is_in_memory(self.url):
                    self._checkpointer = Checkpointer(
                        self.url.removeprefix("sqlite:///"), self.settings.sqlite_busy_timeout_ms
                    )
                    reader = self._sync_engine.connect()
                    reader.info["begin_sql"] = "BEGIN"  # reads never take the write lock
                    self._reader = _SQLiteLink(reader)
        elif self._async_engine is None:
            self._async_engine = create_postgres_engine(self.url, self.settings)

    async def stop(self) -> None:
        if self._writer is not None:
            async with self._writer.lock:
                self._group.commit_locked()
            for link in {self._writer, self._reader}:
                link.connection.close()
            self._writer = self._reader = self._group = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()
            self._sync_engine = None
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None

    def begin(self, write: bool = True, *, background: bool = False) -> Transaction:
        """A transaction for the caller to `finish`, begun on its first statement; what
        `transaction` wraps. Request dependencies use it directly: each context-manager layer
        costs a few µs a request."""
        if self.is_sqlite:
            if self._writer is None:
                raise RuntimeError("the database is not started")
            return _SQLiteTransaction(self, write, background)
        if self._async_engine is None:
            raise RuntimeError("the database is not started")
        return _PostgresTransaction(self._async_engine, write)

    @contextlib.asynccontextmanager
    async def transaction(
        self, write: bool = True, *, background: bool = False
    ) -> AsyncIterator[Transaction]:
        """One transaction: committed when the block ends, rolled back if it raises.

        `write=False` promises reads only: on SQLite they then run on the reader connection,
        never waiting for the write lock. `background` work (the search indexer's) does not
        count as activity (`last_activity`).
        """
        transaction = self.begin(write, background=background)
        try:
            yield transaction
        except BaseException:
            await transaction.finish(commit=False)
            raise
        await transaction.finish(commit=True)

    async def read(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """One read on its own, outside any request transaction (the API key look-up). On
        SQLite it runs on the reader connection as a single autocommit statement."""
        if self.is_sqlite:
            if self._reader is None:
                raise RuntimeError("the database is not started")
            async with self._reader.lock:
                return self._reader.run(prepared, parameters)
        async with self.transaction(write=False) as tx:
            return await tx.run(prepared, parameters)

    async def run_sync(self, work: Callable[[Connection], Any]) -> Any:
        """Run `work` with a plain SQLAlchemy connection (migrations, schema checks)."""
        if self.is_sqlite:
            if self._writer is None:
                raise RuntimeError("the database is not started")
            async with self._writer.lock:
                self._group.commit_locked()  # nothing pending may ride along with `work`
                connection = self._writer.connection
                try:
                    return work(connection)
                finally:
                    # Work that left a transaction open (an inspector's reads autobegin one)
                    # would hold the write lock of the one shared connection: end it.
                    if connection.in_transaction():
                        connection.rollback()
        assert self._async_engine is not None
        # A first statement that outlives a dead pooled connection (see there), then `work`.
        async_connection, _ = await postgres_first_statement(self._async_engine, text("SELECT 1"))
        try:
            await async_connection.commit()
            return await async_connection.run_sync(work)
        finally:
            await async_connection.close()

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


# --- migrations ---------------------------------------------------------------------------


# The search index lives outside the models: an FTS5 virtual table with its shadow tables on
# SQLite, an expression index on PostgreSQL (migration 0002). Autogenerate must not see them.
SEARCH_INDEX_NAMES = ("messages_fts", "ix_messages_content_fts")


def include_in_autogenerate(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (name or "").startswith(SEARCH_INDEX_NAMES)


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade_on_connection(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def downgrade_on_connection(connection: Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(connection), revision)
