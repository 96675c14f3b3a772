"""Micro-benchmark: issue 13's lead for the reads, measured. A page of the last 50 messages
(of 2,000) as the service builds it now (the database hands over 51 rows of values, Python
makes `MessageRead`s and Litestar's encoder writes the JSON) against the database building
the page's JSON itself (SQLite's `json_object`, PostgreSQL's `json_build_object` /
`json_agg`) and Python only joining those bytes into the envelope.

    .venv/bin/python bench/micro_json_page.py [--database-url postgresql+asyncpg://...]

Both sides stop at the response body's bytes, so the difference is what a read of the last
50 would save per request; the rest of the request (HTTP, auth, the framework) is the same
for both. One page at a time, this process's CPU (plus, on PostgreSQL, the wall time of the
round trip, whose server side runs on the same cores), best of ROUNDS.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.serialization import encode_json
from sqlalchemy import create_engine

from chat_sessions.messages.history import _history_statement
from chat_sessions.messages.schemas import MessagePage
from chat_sessions.messages.service import build_messages
from chat_sessions.models import metadata
from chat_sessions.pagination import cut_page

MESSAGES = 2_000
CALLS = 500
ROUNDS = 15
# The response fields in order; created_at as the API writes it (RFC 3339, UTC, "Z").
_SQLITE_OBJECT = """json_object('id', id, 'session_id', session_id, 'seq', seq, 'role', role,
 'content', coalesce(json(content_parts), content), 'name', name,
 'tool_calls', json(tool_calls), 'tool_call_id', tool_call_id, 'metadata', json(metadata),
 'item', json(item), 'token_count', token_count,
 'created_at', replace(created_at, ' ', 'T') || 'Z', 'status', status,
 'parent_seq', parent_seq)"""
_POSTGRES_OBJECT = """json_build_object('id', id, 'session_id', session_id, 'seq', seq,
 'role', role, 'content', coalesce(content_parts::json, to_json(content)), 'name', name,
 'tool_calls', tool_calls, 'tool_call_id', tool_call_id, 'metadata', metadata, 'item', item,
 'token_count', token_count,
 'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
 'status', status, 'parent_seq', parent_seq)"""


def best_us(measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(ROUNDS)) / CALLS * 1e6


def envelope(objects: list[str], limit: int) -> bytes:
    """The page from per-message JSON texts fetched with `limit + 1` (the cursor is left out:
    both sides would make it the same way)."""
    kept = objects[:limit]
    return b'{"data":[' + ",".join(kept).encode() + b'],"next_cursor":null}'


def sqlite_pages() -> dict[str, float]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    raw: Any = engine.raw_connection().driver_connection
    tenant, session = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).isoformat(" ", "microseconds")[:26]
    raw.execute("INSERT INTO tenants (id, name, created_at) VALUES (?, 't', ?)", (tenant, now))
    raw.execute(
        "INSERT INTO sessions (id, tenant_id, traits, status, message_count, last_seq, "
        "head_seq, created_at, updated_at, version) "
        "VALUES (?, ?, '{}', 'active', ?, ?, ?, ?, ?, 1)",
        (session, tenant, MESSAGES, MESSAGES, MESSAGES, now, now),
    )
    raw.executemany(
        "INSERT INTO messages (id, session_id, tenant_id, seq, parent_seq, role, content, "
        "metadata, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'null', 'completed', ?)",
        [
            (str(uuid.uuid4()), session, tenant, seq, seq - 1, "user", f"message {seq} " * 8, now)
            for seq in range(1, MESSAGES + 1)
        ],
    )
    plan = _history_statement(True, False, False, False, False, never_branched=True).plan(
        engine.dialect
    )
    values = plan.values({"session_id": session, "tenant_id": tenant, "limit": 51})
    json_sql = (
        f"SELECT {_SQLITE_OBJECT} FROM messages WHERE session_id = ? AND tenant_id = ? "
        "ORDER BY seq DESC LIMIT ?"
    )

    def rows_then_encode() -> bytes:
        found = build_messages(plan.rows(raw.execute(plan.sql, values).fetchall()))
        data, _ = cut_page(found, 50, ("x",), lambda message: [message.seq])
        return encode_json(MessagePage(data=data, next_cursor=None))

    def json_from_database() -> bytes:
        rows = raw.execute(json_sql, (session, tenant, 51)).fetchall()
        return envelope([row[0] for row in rows], 50)

    check(rows_then_encode(), json_from_database())
    return {
        name: best_us(lambda f=f: timed(f))
        for name, f in sides(rows_then_encode, json_from_database)
    }


def sides(*functions: Callable[[], Any]) -> list[tuple[str, Callable[[], Any]]]:
    return [(function.__name__, function) for function in functions]


def timed(function: Callable[[], Any]) -> float:
    started = time.process_time()
    for _ in range(CALLS):
        function()
    return time.process_time() - started


def check(ours: bytes, theirs: bytes) -> None:
    """The database's JSON must say what the service's does, value for value."""
    a, b = msgspec.json.decode(ours), msgspec.json.decode(theirs)
    if a != b:
        raise SystemExit(f"the two pages differ:\n{a['data'][0]}\n{b['data'][0]}")


async def postgres_pages(url: str) -> dict[str, float]:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "CREATE TEMP TABLE m (id text, session_id text, tenant_id text, seq bigint, "
            "parent_seq bigint, role text, content text, content_parts jsonb, name text, "
            "tool_calls jsonb, tool_call_id text, metadata jsonb, item jsonb, token_count int, "
            "created_at timestamptz, status text, PRIMARY KEY (session_id, seq))"
        )
        tenant, session = str(uuid.uuid4()), str(uuid.uuid4())
        now = datetime.now(UTC)
        await connection.executemany(
            "INSERT INTO m (id, session_id, tenant_id, seq, parent_seq, role, content, "
            "created_at, status) VALUES ($1, $2, $3, $4, $5, 'user', $6, $7, 'completed')",
            [
                (str(uuid.uuid4()), session, tenant, seq, seq - 1, f"message {seq} " * 8, now)
                for seq in range(1, MESSAGES + 1)
            ],
        )
        # The service's tables choose their index whatever the statistics (issue 13, item 3);
        # this temporary one is analysed so that both sides get the backward index scan.
        await connection.execute("ANALYZE m")
        where = "FROM m WHERE session_id = $1 AND tenant_id = $2 ORDER BY seq DESC LIMIT $3"
        rows_sql = await connection.prepare(
            "SELECT id, session_id, seq, role, content, name, tool_calls, tool_call_id, "
            f"metadata, item, token_count, created_at, status, parent_seq, content_parts {where}"
        )
        json_sql = await connection.prepare(f"SELECT {_POSTGRES_OBJECT}::text {where}")
        agg_sql = await connection.prepare(
            f"SELECT json_agg(page.o)::text FROM (SELECT {_POSTGRES_OBJECT} AS o {where}) page"
        )
        # JSON decoded by msgspec, as on the service's connections (db/asyncpg_direct.py).
        for kind in ("jsonb", "json"):
            await connection.set_type_codec(
                kind,
                encoder=msgspec.json.encode,
                decoder=msgspec.json.decode,
                schema="pg_catalog",
                format="text",
            )
        arguments = (session, tenant, 51)

        async def rows_then_encode() -> bytes:
            found = build_messages(await rows_sql.fetch(*arguments))
            data, _ = cut_page(found, 50, ("x",), lambda message: [message.seq])
            return encode_json(MessagePage(data=data, next_cursor=None))

        async def json_per_row() -> bytes:
            return envelope([row[0] for row in await json_sql.fetch(*arguments)], 50)

        async def json_agg_page() -> bytes:
            # One value, but the 51st row rides along: cut it in the statement instead.
            return b'{"data":' + (await agg_sql.fetchval(*arguments)).encode() + b"}"

        check(await rows_then_encode(), await json_per_row())
        results = {}
        for function in (rows_then_encode, json_per_row, json_agg_page):
            best_cpu, best_wall = float("inf"), float("inf")
            for _ in range(ROUNDS):
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(CALLS):
                    await function()
                best_cpu = min(best_cpu, time.process_time() - cpu)
                best_wall = min(best_wall, time.perf_counter() - wall)
            results[f"{function.__name__} cpu"] = best_cpu / CALLS * 1e6
            results[f"{function.__name__} wall"] = best_wall / CALLS * 1e6
        return results
    finally:
        await connection.close()


def report(engine: str, results: dict[str, float]) -> None:
    for name, us in results.items():
        print(f"{engine:10} {name:28} {us:8.1f} µs a page")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="also measure PostgreSQL (asyncpg)")
    args = parser.parse_args()
    report("sqlite", sqlite_pages())
    if args.database_url:
        report("postgresql", asyncio.run(postgres_pages(args.database_url)))


if __name__ == "__main__":
    main()
