"""Micro-benchmark: the service's CPU a request on PostgreSQL for the hot paths, below HTTP:
a request's transaction (begin, the service function, finish) as `provide_caller` runs it.

    BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/micro_postgres.py [--profile append]

One request at a time, so the figure is this process's CPU (time.process_time) a request,
best of ROUNDS; PostgreSQL's own CPU is not in it. Holds the service functions' signatures
only, so the same file measures an older commit's src side by side (db/asyncpg_direct.py:
what changed). `--profile NAME` prints cProfile's top functions for one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from chat_sessions.auth import resolve_key
from chat_sessions.db import Database, Transaction
from chat_sessions.messages import service as messages
from chat_sessions.messages.schemas import MessageCreate
from chat_sessions.models import api_keys, new_id, sessions, tenants, utcnow
from chat_sessions.sessions import service as session_service
from chat_sessions.settings import Settings

CALLS = 400
ROUNDS = 5
LIMITS = {"max_message_bytes": 256 * 1024, "max_json_bytes": 64 * 1024}


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", help="print cProfile's top functions for this one")
    options = parser.parse_args()
    base = make_url(
        os.environ.get("BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    )
    name = f"cs_micro_{uuid.uuid4().hex[:8]}"
    await _admin(base.render_as_string(False), f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(False)
    database = Database(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    try:
        await database.start()
        await database.migrate()
        await _measure(database, options.profile)
    finally:
        await database.stop()
        await _admin(base.render_as_string(False), f'DROP DATABASE "{name}" WITH (FORCE)')


async def _measure(database: Database, profile: str | None) -> None:
    tenant_id, session_id, key_hash = await _seed(database)
    one = msgspec.convert({"role": "user", "content": "hello " * 20}, MessageCreate)
    batch = [one] * 20
    scope = {"tenant_id": tenant_id, "session_id": session_id}

    async def append(tx: Transaction) -> Any:
        return await messages.append_messages(tx, **scope, new=[one], **LIMITS)

    keys = iter(range(10**9))

    async def append_keyed(tx: Transaction) -> Any:
        """The multi-statement path: BEGIN, lock, look-up, advance, insert, COMMIT."""
        key = f"k{next(keys)}"
        return await messages.append_messages(tx, **scope, new=[one], idempotency_key=key, **LIMITS)

    async def append_20(tx: Transaction) -> Any:
        return await messages.append_messages(tx, **scope, new=batch, **LIMITS)

    async def last_50(tx: Transaction) -> Any:
        return await messages.list_messages(
            tx, **scope, order="desc", after_seq=None, before_seq=None, role=None, limit=50,
            cursor=None,
        )  # fmt: skip

    async def get_session(tx: Transaction) -> Any:
        return await session_service.get_session(tx, **scope)

    cases: dict[str, tuple[bool, Callable[[Transaction], Awaitable[Any]]]] = {
        "append": (True, append),
        "append_keyed": (True, append_keyed),
        "append_batch_20": (True, append_20),
        "read_last50": (False, last_50),
        "get_session": (False, get_session),
    }
    for _ in range(60):  # a history to read
        await _request(database, True, append_20)
    for name, (write, work) in cases.items():
        if profile == name:
            await _profile(database, write, work)
            continue
        print(f"{name:16} {await _cpu_us(database, write, work):7.0f} µs of CPU a request")
    lookup = await _cpu_us(database, False, lambda _: resolve_key(database, key_hash))
    print(f"{'api key lookup':16} {lookup:7.0f} µs of CPU (Database.read, no transaction)")


async def _request(
    database: Database, write: bool, work: Callable[[Transaction], Awaitable[Any]]
) -> None:
    tx = database.begin(write=write)
    try:
        await work(tx)
    except BaseException:
        await tx.finish(commit=False)
        raise
    await tx.finish(commit=True)


async def _cpu_us(
    database: Database, write: bool, work: Callable[[Transaction], Awaitable[Any]]
) -> float:
    for _ in range(50):
        await _request(database, write, work)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time()
        for _ in range(CALLS):
            await _request(database, write, work)
        best = min(best, (time.process_time() - start) / CALLS * 1e6)
    return best


async def _profile(
    database: Database, write: bool, work: Callable[[Transaction], Awaitable[Any]]
) -> None:
    """cProfile sees everything this thread runs meanwhile: the event loop's callbacks too."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(CALLS * ROUNDS):
        await _request(database, write, work)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    # PROFILE_SORT=cumulative for the call tree's weights; PROFILE_CALLERS=name for who calls it.
    stats.sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(25)
    if callers := os.environ.get("PROFILE_CALLERS"):
        stats.print_callers(callers)


async def _seed(database: Database) -> tuple[str, str, str]:
    now = utcnow()
    tenant_id, session_id, key_hash = new_id(), new_id(), uuid.uuid4().hex
    async with database.transaction() as tx:
        await tx.execute(tenants.insert().values(id=tenant_id, name="bench", created_at=now))
        await tx.execute(
            api_keys.insert().values(
                id=new_id(), tenant_id=tenant_id, prefix="cs_", key_hash=key_hash, created_at=now
            )
        )
        await tx.execute(
            sessions.insert().values(
                id=session_id, tenant_id=tenant_id, traits={}, status="active", message_count=0,
                last_seq=0, token_total=0, created_at=now, updated_at=now, version=1,
            )
        )  # fmt: skip
    return tenant_id, session_id, key_hash


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    asyncio.run(main())
