"""`Prepared` statements run straight on asyncpg, under a connection SQLAlchemy's pool lent:
the checkout that skips connections which died in the pool (`checkout`), the run
(`fetch_prepared`), and the translation of asyncpg's errors into the SQLAlchemy exceptions the
rest of the service handles (`translated`).

SQLAlchemy's async execution path costs ~400 µs of CPU a statement on asyncpg (greenlet
hops, execution contexts, its own prepared-statement cache, result objects) against ~70 µs
for the statement itself on asyncpg; binary protocol and asyncpg's own per-connection
statement cache (each distinct SQL is parsed once per connection, then bound and executed in
one round trip) are what is left. The connection is SQLAlchemy's (its pool, its sizing and
timeouts, its JSON codecs set on connect), so a transaction that mixes `Prepared` and Core
statements runs both on one connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_sessions.db.prepared import Prepared

log = logging.getLogger(__name__)


def driver_connection(connection: AsyncConnection) -> Any:
    """The asyncpg connection under a checked-out SQLAlchemy connection (no greenlet hop)."""
    return connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]


async def checkout(engine: AsyncEngine, *, limit: int) -> AsyncConnection:
    """A pooled connection whose asyncpg connection is open.

    A connection the server closed while it sat in the pool (a restart, `pg_terminate_backend`)
    is known closed by asyncpg as soon as the event loop has read the server's goodbye: it is
    invalidated and the next taken, at no round trip. So a statement about to be sent on the
    connection returned here reaches the server unless the connection dies meanwhile, which
    is what lets a one-statement write in autocommit answer 503 only when it was in flight.
    `limit`: how many dead ones to skip (the pool's size; a fresh connection is never closed).
    """
    for _ in range(limit):
        connection = await engine.connect()
        if not driver_connection(connection).is_closed():
            return connection
        log.info("a pooled PostgreSQL connection had died; taking another")
        await connection.invalidate()
        await connection.close()
    return await engine.connect()


def translated(error: Exception, connection: AsyncConnection, sql: str, values: Any) -> DBAPIError:
    """The SQLAlchemy exception SQLAlchemy would have raised for asyncpg's `error` on this
    statement (IntegrityError for a unique violation, DataError for a value PostgreSQL cannot
    store, `connection_invalidated` when the connection is gone), so errors.py answers the same."""
    sync = connection.sync_connection
    assert sync is not None
    dialect: Dialect = sync.dialect
    adapter: Any = sync.connection.dbapi_connection
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


async def fetch_prepared(
    connection: AsyncConnection, prepared: Prepared, parameters: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Run `prepared` on the connection's asyncpg connection, in whatever transaction that is
    in (none: autocommit); its rows as SQLAlchemy would return them. A connection that died
    is invalidated (never pooled again) before the error is raised."""
    sync = connection.sync_connection
    assert sync is not None
    plan = prepared.plan(sync.dialect)
    values = plan.values(parameters)
    raw: Any = sync.connection.driver_connection
    try:
        records = await raw.fetch(plan.sql, *values)
    except Exception as error:
        failure = translated(error, connection, plan.sql, values)
        if failure.connection_invalidated:
            await connection.invalidate()
        raise failure from error
    return plan.rows(list(map(tuple, records)))
