"""Micro-benchmark: issue 13's lead for the reads, measured. A page of the last 50 messages
(of 4,000) as the service builds it (the database hands over 51 rows of values, Python makes
`MessageRead`s and Litestar's encoder writes the JSON) against the database writing each
message's JSON itself and Python only joining those texts into the envelope:

- SQLite: `json_object(...)` a message, through the service's own `Database` (its reader
  connection, a read transaction), on a file migrated as the service's;
- PostgreSQL: `json_build_object(...)` a message, or the page as one `json_agg`, on asyncpg.

    .venv/bin/python bench/micro_json_page.py [--database-url postgresql+asyncpg://...]

Both sides stop at the response body's bytes, so the difference is what a read of the last
50 would save; the rest of the request (HTTP, auth, the framework) is the same for both. One
page at a time, best of ROUNDS: this process's CPU a page and, on PostgreSQL, the wall time
(the server's share of the work runs on the same 2 cores).

Measured on 2026-12-06 (README, "Performance"): on SQLite the database's JSON saves 20-28 µs
of ~140 a page (json_object costs SQLite ~25 µs more than handing over the values), 5-8% of a
read's CPU through HTTP, and in a side-by-side `make bench --quick` of the route built both
ways, nothing measurable; on PostgreSQL it halves the client's CPU but raises the wall time
by half (the server does the work, on the same cores). Not taken: a second writer of every
message's JSON, which must match msgspec's byte for byte, for ~6% on one engine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar.serialization import encode_json
from micro_sqlite_floor import Floor
from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.sql import sqltypes

from chat_sessions.db import Database, Prepared
from chat_sessions.messages.history import list_messages
from chat_sessions.messages.schemas import MessagePage, MessageRead
from chat_sessions.models import UTCDateTime, messages
from chat_sessions.pagination import cut_page
from chat_sessions.settings import Settings

MESSAGES = 2_000
CALLS = 500
ROUNDS = 15
_POSTGRES_OBJECT = """json_build_object('id', id, 'session_id', session_id, 'seq', seq,
 'role', role, 'content', coalesce(content_parts::json, to_json(content)), 'name', name,
 'tool_calls', tool_calls, 'tool_call_id', tool_call_id, 'metadata', metadata, 'item', item,
 'token_count', token_count,
 'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
 'status', status, 'parent_seq', parent_seq)"""


def _sqlite_value(field: str) -> Any:
    """One MessageRead field as SQLite's json_object takes it, valued as msgspec writes it."""
    if field == "content":  # the parts stand in for the text when sent as parts
        return func.coalesce(func.json(messages.c.content_parts), messages.c.content)
    column = messages.c[field]
    if isinstance(column.type, sqltypes.JSON):
        return func.json(column)  # the stored JSON text, as JSON rather than a string
    if isinstance(column.type, UTCDateTime):  # RFC 3339, no fraction when it is zero
        return func.replace(func.replace(column, ".000000", ""), " ", "T").concat("Z")
    return column


_SQLITE_PAGE = Prepared(
    select(
        func.json_object(
            *(
                part
                for field in MessageRead.__struct_fields__
                for part in (literal_column(f"'{field}'"), _sqlite_value(field))
            )
        )
    )
    .where(
        messages.c.session_id == bindparam("session_id"),
        messages.c.tenant_id == bindparam("tenant_id"),
    )
    .order_by(messages.c.seq.desc())
    .limit(bindparam("limit"))
)


def envelope(objects: list[str], limit: int) -> bytes:
    """The page from per-message JSON texts fetched with `limit + 1` (the cursor is left out:
    both sides would make it the same way)."""
    return b'{"data":[' + ",".join(objects[:limit]).encode() + b'],"next_cursor":null}'


def check(ours: bytes, theirs: bytes) -> None:
    """The database's JSON must say what the service's does, value for value."""
    a, b = msgspec.json.decode(ours), msgspec.json.decode(theirs)
    if a != b:
        raise SystemExit(f"the two pages differ:\n{a['data'][0]}\n{b['data'][0]}")


async def measure(*sides: Callable[[], Awaitable[bytes]]) -> dict[str, float]:
    """µs a page, CPU and wall, best of ROUNDS, after checking the sides agree."""
    first = await sides[0]()
    for side in sides[1:]:
        check(first, await side())
    results: dict[str, float] = {}
    for side in sides:
        best_cpu = best_wall = float("inf")
        for _ in range(ROUNDS):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(CALLS):
                await side()
            best_cpu = min(best_cpu, time.process_time() - cpu)
            best_wall = min(best_wall, time.perf_counter() - wall)
        results[f"{side.__name__}, CPU"] = best_cpu / CALLS * 1e6
        results[f"{side.__name__}, wall"] = best_wall / CALLS * 1e6
    return results


async def sqlite_pages() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pages.db"
        floor = Floor(path)
        floor.store(20)  # 4,000 messages, stored as the service stores them
        floor.db.close()
        database = Database(Settings(database_path=str(path)))
        await database.start()
        filters = {"tenant_id": floor.tenant, "session_id": floor.session}
        try:

            async def rows_then_encode() -> bytes:
                async with database.transaction(write=False) as tx:
                    found, _ = await list_messages(
                        tx, **filters, order="desc", after_seq=None, before_seq=None,
                        role=None, limit=50, cursor=None,
                    )  # fmt: skip
                return encode_json(MessagePage(data=found, next_cursor=None))

            async def json_from_database() -> bytes:
                async with database.transaction(write=False) as tx:
                    rows = await tx.run(_SQLITE_PAGE, {**filters, "limit": 51})
                return envelope([row[0] for row in rows], 50)

            return await measure(rows_then_encode, json_from_database)
        finally:
            await database.stop()


async def postgres_pages(url: str) -> dict[str, float]:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
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
        # JSON decoded by msgspec, as on the service's connections (db/asyncpg_direct.py).
        for kind in ("jsonb", "json"):
            await connection.set_type_codec(
                kind,
                encoder=msgspec.json.encode,
                decoder=msgspec.json.decode,
                schema="pg_catalog",
                format="text",
            )
        where = "FROM m WHERE session_id = $1 AND tenant_id = $2 ORDER BY seq DESC LIMIT $3"
        rows_sql = await connection.prepare(
            "SELECT id, session_id, seq, role, content, name, tool_calls, tool_call_id, "
            f"metadata, item, token_count, created_at, status, parent_seq, content_parts {where}"
        )
        json_sql = await connection.prepare(f"SELECT {_POSTGRES_OBJECT}::text {where}")
        agg_sql = await connection.prepare(
            f"SELECT json_agg(page.o)::text FROM (SELECT {_POSTGRES_OBJECT} AS o {where}) page"
        )
        arguments = (session, tenant, 51)

        async def rows_then_encode() -> bytes:
            found = [MessageRead(*row[:-1]) for row in await rows_sql.fetch(*arguments)]
            data, _ = cut_page(found, 50, ("x",), lambda message: [message.seq])
            return encode_json(MessagePage(data=data, next_cursor=None))

        async def json_per_row() -> bytes:
            return envelope([row[0] for row in await json_sql.fetch(*arguments)], 50)

        async def json_agg_page() -> bytes:
            # The page as one value, cut at 50 in SQL (a real page would read one more, to
            # know whether another follows).
            page = await agg_sql.fetchval(session, tenant, 50)
            return b'{"data":' + page.encode() + b',"next_cursor":null}'

        return await measure(rows_then_encode, json_per_row, json_agg_page)
    finally:
        await connection.close()


def report(engine: str, results: dict[str, float]) -> None:
    for name, us in results.items():
        print(f"{engine:10} {name:28} {us:8.1f} µs a page")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="also measure PostgreSQL (asyncpg)")
    args = parser.parse_args()
    report("sqlite", asyncio.run(sqlite_pages()))
    if args.database_url:
        report("postgresql", asyncio.run(postgres_pages(args.database_url)))


if __name__ == "__main__":
    main()
