"""Micro-benchmark: get one session and list sessions through `Prepared` (compiled once, run
on the driver cursor) against SQLAlchemy's execution of the same built-once statements.

    .venv/bin/python bench/micro_sessions.py

SQLite in memory, a tenant with 50 sessions of one message each; the statements the routes
run (`sessions/service.py`, `sessions/listing.py`), their rows built into the response shapes
either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from chat_sessions.db import Database, Prepared, Transaction
from chat_sessions.models import messages, new_id, sessions, tenants
from chat_sessions.sessions import listing as session_listing
from chat_sessions.sessions import service
from chat_sessions.sessions.schemas import SessionListItem, SessionRead
from chat_sessions.settings import Settings
from chat_sessions.wire import build

CALLS = 2_000
ROUNDS = 7


async def seed(tx: Transaction) -> tuple[str, str]:
    now = datetime.now(UTC)
    tenant_id = new_id()
    await tx.execute(tenants.insert().values(id=tenant_id, name="bench", created_at=now))
    session_ids = [new_id() for _ in range(50)]
    for session_id in session_ids:
        await tx.execute(
            sessions.insert().values(
                id=session_id,
                tenant_id=tenant_id,
                traits={"plan": "pro"},
                status="active",
                message_count=1,
                last_seq=1,
                created_at=now,
                updated_at=now,
                version=1,
            )
        )
        await tx.execute(
            messages.insert().values(
                id=new_id(),
                tenant_id=tenant_id,
                session_id=session_id,
                seq=1,
                role="user",
                content="hello " * 30,
                created_at=now,
            )
        )
    return tenant_id, session_ids[0]


async def per_call_us(database: Database, work: Callable[[Transaction], Awaitable[Any]]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        async with database.transaction(write=False) as tx:
            await work(tx)  # the transaction begun, the statement compiled
            start = time.perf_counter()
            for _ in range(CALLS):
                await work(tx)
            best = min(best, (time.perf_counter() - start) / CALLS * 1e6)
    return best


async def main() -> None:
    settings = Settings(_env_file=None, database_path=":memory:", database_url=None)  # type: ignore[call-arg]
    database = Database(settings)
    await database.start()
    await database.migrate()
    async with database.transaction() as tx:
        tenant_id, session_id = await seed(tx)
    one = {"session_id": session_id, "tenant_id": tenant_id}
    page = {"tenant_id": tenant_id, "user_id": None, "status": None, "limit": 21}
    listing = session_listing._list_statement(False, False, False)

    def prepared(statement: Prepared, shape: type[Any], parameters: dict[str, Any]) -> Any:
        return lambda tx: _run(tx, statement, shape, parameters)

    def executed(statement: Prepared, shape: type[Any], parameters: dict[str, Any]) -> Any:
        return lambda tx: _execute(tx, statement, shape, parameters)

    for name, statement, shape, parameters in (
        ("get one session", service._GET, SessionRead, one),
        ("list sessions (20)", listing, SessionListItem, page),
    ):
        fast = await per_call_us(database, prepared(statement, shape, parameters))
        plain = await per_call_us(database, executed(statement, shape, parameters))
        print(f"{name:20}: Prepared {fast:6.1f} µs, SQLAlchemy execute {plain:6.1f} µs")
    await database.stop()


async def _run(tx: Transaction, statement: Prepared, shape: Any, parameters: Any) -> Any:
    return build(shape, await tx.run(statement, parameters))


async def _execute(tx: Transaction, statement: Prepared, shape: Any, parameters: Any) -> Any:
    return build(shape, await tx.execute(statement.statement, parameters))


if __name__ == "__main__":
    asyncio.run(main())
