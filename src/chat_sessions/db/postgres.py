"""The PostgreSQL engine: `PostgresEngine` owns a process's pool (SQLAlchemy's, over asyncpg);
each transaction (`_PostgresTransaction`) leases a connection on its first statement: its
`Prepared` statements run straight on asyncpg (asyncpg_direct.py), Core statements through
SQLAlchemy on the same connection (`postgres_first_statement` when one comes first, which
outlives connections that died in the pool).

Services lock the session row they change (`SELECT ... FOR UPDATE`, or an `UPDATE` first), so
several processes append and patch correctly side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chat_sessions.db.asyncpg_direct import Lease
from chat_sessions.db.prepared import Prepared
from chat_sessions.db.transaction import Engine, Transaction
from chat_sessions.jsonvalues import encode_for_storage
from chat_sessions.settings import Settings

log = logging.getLogger(__name__)


# What the service's own connections tell the planner. PostgreSQL's default random_page_cost
# (4.0) prices a random read as a spinning disk's; on SSDs and cached data (the PostgreSQL
# documentation suggests lowering it there) 1.1 is the usual figure. It is also what keeps the
# hot statements on their indexes when the tables have no statistics (autovacuum off, a bulk
# import not yet analysed): with 4.0 PostgreSQL reads a session's whole history through a
# bitmap scan and sorts it to answer the last 50 (7 ms for 10,000 messages, against 0.1 ms
# for the backward index scan it takes with 1.1). tests/db/test_postgres_plans.py explains
# every hot statement on a database that was never analysed (14 of its 27 cases fail at 4.0).
PLANNER_SETTINGS = {"random_page_cost": "1.1"}


def create_postgres_engine(url: str, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        # No pre-ping: a connection that died with the server is replaced when its first
        # statement fails, and that statement retried (postgres_first_statement).
        # Numbers are stored as jsonb keeps them, on both engines (see encode_for_storage).
        json_serializer=encode_for_storage,
        json_deserializer=msgspec.json.decode,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                **PLANNER_SETTINGS,
            },
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

    Reads (`write=False`) begin no transaction for their `Prepared` statements: each runs on
    its own in autocommit, straight on asyncpg (asyncpg_direct.py), one round trip with no
    BEGIN or COMMIT. Under READ COMMITTED (the default, never changed here) each statement of
    a transaction sees its own snapshot anyway, so a read sees what it would in a transaction.
    A Core statement (`execute`) in a read begins `READ ONLY` through SQLAlchemy on the same
    connection; later `Prepared` statements run inside it.

    A read whose connection dies between or during its statements runs the failed statement
    again on a fresh connection: its earlier statements changed nothing, and each statement
    sees its own snapshot, so the retried statement sees what it would have seen a moment
    later on the old connection. A read's COMMIT that fails as a disconnect loses nothing either.

    Writes begin through SQLAlchemy (BEGIN with the first statement); their later `Prepared`
    statements run straight on asyncpg inside that transaction. A one-statement write
    (`run_alone`: appending messages, messages/append.py) runs in autocommit as the transaction's
    only statement. A write can only be retried when its first statement fails before
    anything of it reached the server: past that, a dead connection fails the request
    (`503`), its transaction rolled back by the server - or, when the COMMIT (or the one
    autocommitted statement) was in flight, committed or not, which nobody can tell.
    """

    dialect = "postgresql"

    def __init__(self, engine: AsyncEngine, write: bool = True, *, pool_limit: int = 1) -> None:
        self._engine = engine
        self._write = write
        self._pool_limit = pool_limit
        self._lease: Lease | None = None
        # Whether `execute` has set this read's connection READ ONLY (for its next BEGIN).
        self._read_only_set = False
        # Set once a one-statement write has committed: nothing may follow it.
        self._ran_alone = False

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        self._check_open()
        if self._lease is not None:
            connection = self._lease.sqlalchemy()
            try:
                if not self._write and not self._read_only_set:
                    # Prepared reads came first, without a transaction: begin READ ONLY now.
                    await connection.execution_options(postgresql_readonly=True)
                    self._read_only_set = True
                return await connection.execute(statement, parameters)
            except DBAPIError as error:
                if self._write or not error.connection_invalidated:
                    raise
                await self._drop_lease()
                log.info("a read's PostgreSQL connection died; retrying on a new one")
        connection, result = await postgres_first_statement(
            self._engine, statement, parameters, read_only=not self._write
        )
        self._lease = Lease.of(self._engine, connection)
        self._read_only_set = not self._write
        return result

    async def run(
        self, prepared: Prepared, parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        if self._write or not isinstance(parameters, Mapping):
            lease = self._lease
            if (
                lease is None
                or not lease.driver.is_in_transaction()
                or not isinstance(parameters, Mapping)
            ):
                # A write's first statement begins its transaction through SQLAlchemy.
                result = await self.execute(prepared.statement, parameters)
                return list(result) if result.returns_rows else []
            # Begun: the rest run on the driver inside it (not retried, as any write's).
            self._check_open()
            return await lease.fetch(prepared, parameters)
        self._check_open()
        for attempt in range(1, _ATTEMPTS + 1):
            if self._lease is None:
                self._lease = await Lease.take(self._engine, limit=self._pool_limit)
            try:
                return await self._lease.fetch(prepared, parameters)
            except DBAPIError as error:
                if attempt == _ATTEMPTS or not error.connection_invalidated:
                    raise
                await self._drop_lease()
                log.info("a read's PostgreSQL connection died; retrying on a new one")
        raise AssertionError("unreachable")

    async def run_alone(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]] | None:
        if not self._write or self._lease is not None:
            return None
        self._lease = await Lease.take(self._engine, limit=self._pool_limit)
        self._ran_alone = True
        rows = await self._lease.fetch(prepared, parameters)
        if not rows:
            # A one-statement write that matched nothing wrote nothing (messages/append.py):
            # the transaction starts afresh, for the caller's multi-statement path.
            self._ran_alone = False
            await self._drop_lease()
        return rows

    def _check_open(self) -> None:
        if self._ran_alone:
            raise RuntimeError(
                "this transaction's one statement (run_alone) is committed: nothing may follow"
            )

    async def _drop_lease(self) -> None:
        lease, self._lease = self._lease, None
        self._read_only_set = False
        if lease is not None:
            await lease.release()

    async def finish(self, commit: bool) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            # Only SQLAlchemy begins transactions here: Prepared reads and run_alone autocommit.
            connection = lease.sqlalchemy_in_use
            if connection is not None and connection.in_transaction():
                if commit:
                    await connection.commit()
                else:
                    await connection.rollback()
        except DBAPIError as error:
            if self._write or not error.connection_invalidated:
                raise
            log.info("a read's PostgreSQL connection died at its end; nothing was lost")
        finally:
            await lease.release()


class PostgresEngine(Engine):
    """A process's connection pool, from `start` to `stop`."""

    def __init__(self, url: str, settings: Settings) -> None:
        self._url = url
        self._settings = settings
        self._engine: AsyncEngine | None = None
        # How many dead pooled connections a checkout may skip: the pool's most.
        self._pool_limit = settings.db_pool_size + max(settings.db_max_overflow, 0) + 1

    async def start(self) -> None:
        if self._engine is None:
            self._engine = create_postgres_engine(self._url, self._settings)

    async def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    def _started(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is not started")
        return self._engine

    def begin(self, write: bool) -> Transaction:
        return _PostgresTransaction(self._started(), write, pool_limit=self._pool_limit)

    async def read(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        transaction = self.begin(write=False)
        try:
            rows = await transaction.run(prepared, parameters)
        except BaseException:
            await transaction.finish(commit=False)
            raise
        await transaction.finish(commit=True)
        return rows

    async def run_sync(self, work: Callable[[Connection], Any]) -> Any:
        # A first statement that outlives a dead pooled connection (see there), then `work`.
        connection, _ = await postgres_first_statement(self._started(), text("SELECT 1"))
        try:
            await connection.commit()
            return await connection.run_sync(work)
        finally:
            await connection.close()
