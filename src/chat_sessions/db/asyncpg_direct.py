"""`Prepared` statements run straight on asyncpg, on a connection leased from SQLAlchemy's pool
(`Lease`): taking it without the async ORM layer, skipping connections that died in the pool,
running a statement, translating asyncpg's errors into the SQLAlchemy exceptions the rest of
the service handles, and handing the same connection to SQLAlchemy when a transaction also
runs Core statements.

SQLAlchemy's async execution path costs ~500 µs of CPU a request on asyncpg (greenlet hops,
a Connection and an AsyncConnection a checkout, execution contexts, result objects, a
separate BEGIN and COMMIT) against ~70 µs for a statement on asyncpg itself, with its binary
protocol and its own per-connection statement cache (each distinct SQL is parsed once per
connection, then bound and executed in one round trip). The pool stays SQLAlchemy's: its
sizing and timeouts, and the JSON codecs its dialect sets on each new connection (msgspec,
so values come back as through SQLAlchemy).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from chat_sessions.db.prepared import Prepared

log = logging.getLogger(__name__)


def _connect_without_io(pool: Any) -> PoolProxiedConnection | None:
    """An idle pooled connection, or None when the one the pool hands out must reconnect first
    (it was invalidated): that needs I/O, which outside a greenlet SQLAlchemy refuses before
    doing any, closing the connect coroutine it made (hence the warning silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return pool.connect()  # type: ignore[no-any-return]
        except MissingGreenlet:
            return None


class Lease:
    """One pooled connection held by one transaction: `fetch` runs `Prepared` on its asyncpg
    connection (in autocommit unless SQLAlchemy has begun a transaction on it); `sqlalchemy`
    is the same connection as SQLAlchemy's `AsyncConnection`, made on first use."""

    def __init__(self, engine: AsyncEngine, proxied: PoolProxiedConnection) -> None:
        self._engine = engine
        self._proxied = proxied
        self.driver: Any = proxied.driver_connection
        self._connection: AsyncConnection | None = None
        self._invalidated = False  # and so given back to the pool, without its connection

    @classmethod
    async def take(cls, engine: AsyncEngine, *, limit: int) -> Lease:
        """A pooled connection whose asyncpg connection is open.

        Taken from the pool directly when one is idle there, which needs no I/O (no greenlet
        hop, no Connection objects: ~60 µs a request); through a greenlet when the pool must
        connect or wait. A connection the server closed while it sat in the pool (a restart,
        `pg_terminate_backend`) is known closed by asyncpg as soon as the event loop has read
        the server's goodbye: it is invalidated and the next one taken, at no round trip. So a
        statement sent on the lease returned here reaches the server unless the connection
        dies meanwhile, which is what lets a one-statement write answer 503 only when it was
        in flight. `limit`: how many dead ones to skip (the pool's most).
        """
        pool = engine.sync_engine.pool
        for _ in range(limit):
            proxied: PoolProxiedConnection | None = None
            if pool.checkedin():  # type: ignore[attr-defined]
                proxied = _connect_without_io(pool)
            if proxied is None:
                proxied = await greenlet_spawn(pool.connect)
            if not proxied.driver_connection.is_closed():  # type: ignore[union-attr]
                return cls(engine, proxied)
            log.info("a pooled PostgreSQL connection had died; taking another")
            proxied.invalidate()
        return cls(engine, await greenlet_spawn(pool.connect))

    @classmethod
    def of(cls, engine: AsyncEngine, connection: AsyncConnection) -> Lease:
        """The lease of a connection SQLAlchemy checked out itself."""
        sync = connection.sync_connection
        assert sync is not None
        lease = cls(engine, sync.connection)
        lease._connection = connection
        return lease

    @property
    def sqlalchemy_in_use(self) -> AsyncConnection | None:
        """SQLAlchemy's connection when Core statements ran on this lease (None otherwise)."""
        return self._connection

    def sqlalchemy(self) -> AsyncConnection:
        """This connection as SQLAlchemy's, for Core statements (made once)."""
        if self._connection is None:
            sync = Connection(self._engine.sync_engine, connection=self._proxied)
            self._connection = AsyncConnection(self._engine, sync)
        return self._connection

    async def fetch(
        self, prepared: Prepared, parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run `prepared` in whatever transaction the connection is in (none: autocommit);
        its rows as SQLAlchemy would return them. A connection that died is invalidated
        (never pooled again) before the error is raised."""
        plan = prepared.plan(self._engine.dialect)
        values = plan.values(parameters)
        try:
            records = await self.driver.fetch(plan.sql, *values)
        except Exception as error:
            failure = self._translated(error, plan.sql, values)
            if failure.connection_invalidated:
                await self.invalidate()
            raise failure from error
        return plan.rows(list(map(tuple, records)))

    def _translated(self, error: Exception, sql: str, values: Any) -> DBAPIError:
        """The SQLAlchemy exception SQLAlchemy would have raised for asyncpg's `error` on this
        statement (IntegrityError for a unique violation, DataError for a value PostgreSQL
        cannot store, `connection_invalidated` when the connection is gone), so errors.py
        answers alike whichever path ran the statement."""
        dialect = self._engine.dialect
        adapter: Any = self._proxied.dbapi_connection
        try:
            adapter._handle_exception(error)  # raises the DBAPI-level exception SQLAlchemy maps
        except Exception as dbapi_error:
            wrapped = DBAPIError.instance(
                sql,
                values,
                dbapi_error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=dialect.is_disconnect(dbapi_error, adapter, None),  # type: ignore[arg-type]
                dialect=dialect,
            )
            assert isinstance(wrapped, DBAPIError)
            return wrapped
        raise AssertionError("unreachable")

    async def invalidate(self) -> None:
        """Never pool this connection again (it died)."""
        if self._connection is not None:
            await self._connection.invalidate()
        elif not self._invalidated:
            self._invalidated = True
            self._proxied.invalidate()  # outside a greenlet: closed at once, no I/O

    async def release(self) -> None:
        """Back to the pool. Without I/O when nothing is open on it and the pool has room (a
        full pool closes what comes back, which awaits); otherwise through SQLAlchemy."""
        if self._connection is not None:
            await self._connection.close()
            return
        pool: Any = self._engine.sync_engine.pool
        if self._invalidated:
            return
        if self.driver.is_closed():
            await self.invalidate()
        elif pool.checkedin() < pool.size() and not self.driver.is_in_transaction():
            self._proxied.close()
        else:
            await greenlet_spawn(self._proxied.close)
