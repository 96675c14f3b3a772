"""Micro-benchmark: reading the last 50 with branches, and forking.

    .venv/bin/python bench/micro_branches.py

SQLite in memory, through the service functions the routes call (no HTTP):
- the last 50 of a 10,000-message session that never branched, by the statement of before
  branches (the plain (session_id, seq) range) and by `history.list_messages` now (the same
  range, gated by `first_branch_seq IS NULL` in a scalar subquery);
- the last 50 of a 10,000-message session branched every 10 messages (each 10th message a
  regenerated answer: parent seq - 2), read by `list_messages` (the range up to the first
  branch, and a walk of 51 steps down the parents above it);
- the active branch from its root (`order=asc`), which walks the whole path (~9,000 steps);
- a fork of the last 1,000 messages of each session (`sessions/fork.py`), in a transaction
  rolled back, so every round forks the same thing.

Best of ROUNDS rounds, each the mean of CALLS calls; the two never-branched reads in turns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from chat_sessions.db import Database, Transaction
from chat_sessions.messages import history, service
from chat_sessions.messages.schemas import MessageCreate
from chat_sessions.models import new_id, tenants, utcnow
from chat_sessions.pagination import cut_page
from chat_sessions.sessions.fork import fork_session
from chat_sessions.sessions.schemas import SessionCreate, SessionFork
from chat_sessions.sessions.service import create_session
from chat_sessions.settings import Settings

MESSAGES = 10_000
BRANCH_EVERY = 10
CALLS = 500
ROUNDS = 15
LIMITS = {"max_message_bytes": 256 * 1024, "max_json_bytes": 64 * 1024}


def message(seq: int) -> MessageCreate:
    return MessageCreate(
        role="user" if seq % 2 else "assistant",
        content=f"message {seq} " + "lorem ipsum " * 30,
        token_count=90,
        metadata={"model": "gpt-x"},
    )


async def seed(database: Database, tenant_id: str, branched: bool) -> str:
    async with database.transaction() as tx:
        created, _ = await create_session(
            tx, tenant_id=tenant_id, data=SessionCreate(), max_json_bytes=65536
        )
    seq = 1
    while seq <= MESSAGES:
        async with database.transaction() as tx:
            if branched and seq % BRANCH_EVERY == 0:
                # A regenerated answer: another child of the previous message's parent.
                new, parent = [message(seq)], seq - 2
            else:
                # Up to the next regeneration, in one batch.
                size = (
                    BRANCH_EVERY - seq % BRANCH_EVERY if branched else min(500, MESSAGES - seq + 1)
                )
                new, parent = [message(seq + k) for k in range(size)], None
            await service.append_messages(
                tx, tenant_id=tenant_id, session_id=created.id, new=new, parent_seq=parent, **LIMITS
            )
            seq += len(new)
    return created.id


async def per_call_us(
    database: Database,
    work: Callable[[Transaction], Awaitable[Any]],
    calls: int,
    write: bool,
    rounds: int = ROUNDS,
) -> float:
    best = float("inf")
    for _ in range(rounds):
        if write:
            started = time.perf_counter()
            for _ in range(calls):
                tx = database.begin(write=True)
                try:
                    await work(tx)
                finally:
                    await tx.finish(commit=False)
            best = min(best, (time.perf_counter() - started) / calls * 1e6)
            continue
        async with database.transaction(write=False) as tx:
            await work(tx)  # begun, compiled
            started = time.perf_counter()
            for _ in range(calls):
                await work(tx)
            best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def main() -> None:
    settings = Settings(_env_file=None, database_path=":memory:", database_url=None)  # type: ignore[call-arg]
    database = Database(settings)
    await database.start()
    await database.migrate()
    tenant_id = new_id()
    async with database.transaction() as tx:
        await tx.execute(tenants.insert().values(id=tenant_id, name="bench", created_at=utcnow()))
    linear = await seed(database, tenant_id, branched=False)
    branched = await seed(database, tenant_id, branched=True)

    def last50(session_id: str, order: str = "desc") -> Callable[[Transaction], Awaitable[Any]]:
        async def read(tx: Transaction) -> Any:
            return await history.list_messages(
                tx,
                tenant_id=tenant_id,
                session_id=session_id,
                order=order,
                after_seq=None,
                before_seq=None,
                role=None,
                limit=50,
                cursor=None,
            )

        return read

    before_branches = history._history_statement(True, False, False, False, False)

    async def last50_before(tx: Transaction) -> Any:
        """`list_messages` as it was before branches (the code of b1cfa05): the same statement
        without the gate, the same steps around it."""
        scope = ("messages", tenant_id, linear, "desc", None, None, None)
        parameters = {
            "session_id": linear,
            "tenant_id": tenant_id,
            "after_seq": None,
            "before_seq": None,
            "role": None,
            "limit": 51,
        }
        found = service.build_messages(await tx.run(before_branches, parameters))
        return cut_page(found, 50, scope, lambda message: [message.seq])

    def fork(session_id: str) -> Callable[[Transaction], Awaitable[Any]]:
        async def copy(tx: Transaction) -> Any:
            return await fork_session(
                tx,
                tenant_id=tenant_id,
                session_id=session_id,
                data=SessionFork(at_seq=None),
                max_json_bytes=65536,
            )

        return copy

    async with database.transaction(write=False) as tx:
        page, _ = await last50(branched)(tx)
        assert len(page) == 50 and page[0].seq == MESSAGES
    # The two never-branched reads in turns, round after round: a busy machine moves both.
    before, now = float("inf"), float("inf")
    for _ in range(ROUNDS):
        before = min(before, await per_call_us(database, last50_before, CALLS, False, rounds=1))
        now = min(now, await per_call_us(database, last50(linear), CALLS, False, rounds=1))
    figures = {
        "last 50, never branched, before branches": before,
        "last 50, never branched, now": now,
        "last 50, branched every 10": await per_call_us(database, last50(branched), CALLS, False),
        "first 50 from the root, branched": await per_call_us(
            database, last50(branched, "asc"), 20, False
        ),
    }
    for name, us in figures.items():
        print(f"{name:42}: {us:8.1f} µs")
    base = figures["last 50, never branched, before branches"]
    for name, key in (
        ("never branched, now / before", "last 50, never branched, now"),
        ("branched / never branched before", "last 50, branched every 10"),
    ):
        print(f"{name:42}: {figures[key] / base:8.2f}x")

    # Forks of 1,000 messages: the session's first 1,000 (its head moved there for the copy).
    async with database.transaction() as tx:
        for session_id in (linear, branched):
            await tx.execute(
                text("UPDATE sessions SET head_seq = 1000 WHERE id = :id"), {"id": session_id}
            )
    for name, session_id in (
        ("fork of 1,000, never branched", linear),
        ("fork of ~1,000, branched", branched),
    ):
        print(
            f"{name:42}: {await per_call_us(database, fork(session_id), 10, True) / 1000:8.1f} ms"
        )
    await database.stop()


if __name__ == "__main__":
    asyncio.run(main())
