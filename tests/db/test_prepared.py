"""`Prepared` statements (the hot paths' own execution, on SQLite straight on the driver) give
back exactly what SQLAlchemy's execution of the same statement gives, and store batches
whole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select

from chat_sessions.db import Database, Prepared
from chat_sessions.models import new_id, sessions, tenants, tool_calls

_TOOL_CALLS = Prepared(
    select(tool_calls.c.tool_call_id, tool_calls.c.result, tool_calls.c.completed_at)
    .where(tool_calls.c.session_id == bindparam("session_id"))
    .order_by(tool_calls.c.tool_call_id)
)
_INSERT_TOOL_CALL = Prepared(tool_calls.insert())

# JSON results of every kind: SQLite gives its JSON columns NUMERIC affinity, so the scalars
# 5 and 1.5 come back from the driver as numbers, not as text; and a NULL completion time.
RESULTS: list[Any] = [5, 1.5, "five", True, None, [1, "a"], {"nested": {"k": [None]}}, 0]


async def _session(database: Database) -> str:
    now = datetime.now(UTC)
    tenant_id, session_id = new_id(), new_id()
    async with database.transaction() as tx:
        await tx.execute(tenants.insert().values(id=tenant_id, name="t", created_at=now))
        await tx.execute(
            sessions.insert().values(
                id=session_id,
                tenant_id=tenant_id,
                traits={},
                status="active",
                message_count=0,
                last_seq=0,
                created_at=now,
                updated_at=now,
                version=1,
            )
        )
    return session_id


def _rows(session_id: str, count: int) -> list[dict[str, Any]]:
    started = datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC)  # whole seconds: no fraction
    return [
        {
            "id": new_id(),
            "tenant_id": "t",
            "session_id": session_id,
            "message_id": None,
            "tool_call_id": f"call-{n:04d}",
            "tool_name": "lookup",
            "arguments": {"n": n},
            "status": "done" if n % 3 else "pending",
            "result": RESULTS[n % len(RESULTS)],
            "error": None,
            "duration_ms": n,
            "created_at": started,
            "completed_at": None if n % 3 == 0 else started + timedelta(microseconds=n),
        }
        for n in range(count)
    ]


async def test_prepared_rows_equal_sqlalchemy_rows(database: Database) -> None:
    session_id = await _session(database)
    # 300 rows: on SQLite, multi-row INSERTs of 256 + 32 + 8 + 4 rows.
    stored = _rows(session_id, 300)
    async with database.transaction() as tx:
        await tx.run(_INSERT_TOOL_CALL, stored)
    async with database.transaction(write=False) as tx:
        prepared = await tx.run(_TOOL_CALLS, {"session_id": session_id})
        result = await tx.execute(_TOOL_CALLS.statement, {"session_id": session_id})
        expected = [tuple(row) for row in result]
    assert prepared == expected
    assert prepared == [(row["tool_call_id"], row["result"], row["completed_at"]) for row in stored]
    assert {type(row[1]) for row in prepared} >= {int, float, str, bool, list, dict, type(None)}
