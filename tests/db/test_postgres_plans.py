"""PostgreSQL plans every hot statement onto its index on a database nobody has analysed.

A service cannot count on statistics: autovacuum may be off (it is on this machine's
server), a bulk import is not analysed until autovacuum comes round, and a new deployment
starts empty. Without statistics PostgreSQL estimates from defaults, and a statement shaped the
wrong way gets a plan that reads the whole session and sorts it (the last 50 of 10,000
messages: 7 ms instead of 0.1 ms). Here each hot statement is explained, on data loaded
without ANALYZE, and must run on its index: no sequential scan, no bitmap scan, no sort.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_sessions.auth import _RESOLVE
from chat_sessions.db import Prepared
from chat_sessions.db.postgres import create_postgres_engine
from chat_sessions.messages.append import _APPEND_IN_ONE, _PER_ROW, ADVANCE_SESSION
from chat_sessions.messages.branches import _newest_first
from chat_sessions.messages.context import _NEWEST_CHUNKS, _SYSTEM
from chat_sessions.messages.history import _history_statement
from chat_sessions.messages.service import MESSAGE_COLUMNS
from chat_sessions.sessions.listing import _exact_statement, _list_statement, _prefix_statement
from chat_sessions.sessions.service import _GET
from support import create_migrated_postgres_database, drop_postgres_database, make_settings

pytestmark = [pytest.mark.postgres_only]

SESSIONS = 20_000
TALKATIVE = 100  # the sessions that hold messages
MESSAGES_EACH = 2_000
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def loaded_url() -> Iterator[str]:
    """20,000 sessions, 100 of them with 2,000 messages each, loaded the way a bulk import
    would, unanalysed."""
    url = create_migrated_postgres_database("cs_plans")
    yield url
    drop_postgres_database(url)


@pytest.fixture
async def connection(loaded_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection as the service makes them (its planner settings included)."""
    engine = create_postgres_engine(loaded_url, make_settings(database_url=loaded_url))
    try:
        async with engine.connect() as connection:
            loaded = await connection.execute(text("SELECT count(*) FROM tenants"))
            if loaded.scalar_one() == 0:
                await _load(connection)
            yield connection
    finally:
        await engine.dispose()


async def _load(connection: AsyncConnection) -> None:
    for statement in (
        "INSERT INTO tenants (id, name, created_at) VALUES ('t1', 't1', now())",
        "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, created_at)"
        " SELECT 'k' || i, 't1', 'cs_', md5(i::text), now() FROM generate_series(1, 200) i",
        f"""INSERT INTO sessions (id, tenant_id, user_id, external_id, traits, status,
            message_count, last_seq, token_total, created_at, updated_at, version)
            SELECT 's' || i, 't1', 'u' || (i % 10), 'app/u' || (i % 10) || '/s' || i, '{{}}',
            'active', {MESSAGES_EACH},
            {MESSAGES_EACH}, 0, now(), now() - i * interval '1 second', 1
            FROM generate_series(1, {SESSIONS}) i""",
        f"""INSERT INTO messages (id, tenant_id, session_id, seq, role, content, created_at)
            SELECT 'm' || s || '-' || i, 't1', 's' || s, i,
            CASE WHEN i % 2 = 0 THEN 'assistant' ELSE 'user' END, 'hello ' || i, now()
            FROM generate_series(1, {TALKATIVE}) s, generate_series(1, {MESSAGES_EACH}) i""",
    ):
        await connection.execute(text(statement))
    await connection.commit()
    never_analysed = await connection.execute(
        text(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('sessions', 'messages')"
            " AND last_analyze IS NULL AND last_autoanalyze IS NULL"
        )
    )
    assert never_analysed.scalar_one() == 2


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def _plan(connection: AsyncConnection, statement: Prepared, **values: Any) -> list[Any]:
    """The plan PostgreSQL makes for `statement` as the service sends it: with parameters, as
    a plan for those values and as the generic plan a prepared statement settles on."""
    plan = statement.plan(connection.dialect)
    nodes: list[Any] = []
    for mode in ("force_custom_plan", "force_generic_plan"):
        await connection.exec_driver_sql(f"SET plan_cache_mode = {mode}")
        explained = await connection.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) {plan.sql}", tuple(plan.values(values))
        )
        document = explained.scalar_one()
        nodes += _nodes(
            (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
        )
    return nodes


def _assert_indexed(nodes: list[dict[str, Any]], table: str, index: str) -> None:
    kinds = [node["Node Type"] for node in nodes]
    assert "Sort" not in kinds and "Seq Scan" not in kinds, kinds
    assert not any(kind.startswith("Bitmap") for kind in kinds), kinds
    scans = [
        node
        for node in nodes
        if node.get("Relation Name") == table and node["Node Type"] != "ModifyTable"
    ]
    assert scans, kinds
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), kinds
        assert scan["Index Name"] == index, scan["Index Name"]


HISTORY_FILTERS = list(itertools.product((False, True), repeat=4))


@pytest.mark.parametrize(("descending", "after", "before", "cursor"), HISTORY_FILTERS)
async def test_history_reads_the_session_through_its_seq_index(
    connection: AsyncConnection, descending: bool, after: bool, before: bool, cursor: bool
) -> None:
    statement = _history_statement(descending, after, before, False, cursor)
    nodes = await _plan(
        connection,
        statement,
        session_id="s5",
        tenant_id="t1",
        after_seq=10,
        before_seq=1_900,
        position=1_500 if descending else 20,
        limit=51,
    )
    _assert_indexed(nodes, "messages", "ix_messages_session_id_seq")


@pytest.mark.parametrize("descending", [False, True])
async def test_the_active_branch_of_a_session_that_never_branched_is_the_same_index_read(
    connection: AsyncConnection, descending: bool
) -> None:
    statement = _history_statement(descending, False, False, False, False, never_branched=True)
    nodes = await _plan(connection, statement, session_id="s5", tenant_id="t1", limit=51)
    # The gate: the session's row by its primary key, once.
    gate = [node for node in nodes if node.get("Relation Name") == "sessions"]
    assert gate and all(node["Index Name"] == "pk_sessions" for node in gate)
    _assert_indexed(
        [node for node in nodes if node.get("Relation Name") != "sessions"],
        "messages",
        "ix_messages_session_id_seq",
    )


@pytest.mark.parametrize("role", [False, True])
async def test_the_last_page_of_a_branch_walks_the_seq_index(
    connection: AsyncConnection, role: bool
) -> None:
    nodes = await _plan(
        connection,
        _newest_first(tuple(MESSAGE_COLUMNS), role),
        session_id="s5",
        tenant_id="t1",
        leaf=2_000,
        floor=10,
        upper=2_001,
        lower=0,
        want=51,
        range_upper=11,
        role="user",
        limit=51,
    )
    _assert_indexed(nodes, "messages", "ix_messages_session_id_seq")


@pytest.mark.parametrize(
    "statement",
    [_SYSTEM, _NEWEST_CHUNKS[False], _NEWEST_CHUNKS[True]],
    ids=["system", "newest", "newest-before"],
)
async def test_context_reads_the_session_through_its_seq_index(
    connection: AsyncConnection, statement: Prepared
) -> None:
    nodes = await _plan(
        connection, statement, session_id="s5", tenant_id="t1", head_seq=2_000, before=1_500
    )
    _assert_indexed(nodes, "messages", "ix_messages_session_id_seq")


@pytest.mark.parametrize(
    ("user", "status", "cursor"), list(itertools.product((False, True), repeat=3))
)
async def test_session_lists_read_through_the_tenant_index(
    connection: AsyncConnection, user: bool, status: bool, cursor: bool
) -> None:
    nodes = await _plan(
        connection,
        _list_statement(user, status, cursor),
        tenant_id="t1",
        user_id="u3",
        status="active",
        position_updated_at=NOW,
        position_id="s50",
        limit=21,
    )
    index = (
        "ix_sessions_tenant_id_user_id_updated_at_id"
        if user
        else "ix_sessions_tenant_id_updated_at_id"
    )
    sessions = [node for node in nodes if node.get("Relation Name") == "sessions"]
    assert sessions and sessions[0]["Index Name"] == index
    # The preview's look-up of each listed session's last message.
    _assert_indexed(
        [node for node in nodes if node.get("Relation Name") != "sessions"] + sessions,
        "messages",
        "ix_messages_session_id_seq",
    )


@pytest.mark.parametrize(
    ("user", "status", "cursor", "bounded"), list(itertools.product((False, True), repeat=4))
)
async def test_external_id_prefix_lists_read_a_range_of_the_external_id_index(
    connection: AsyncConnection, user: bool, status: bool, cursor: bool, bounded: bool
) -> None:
    nodes = await _plan(
        connection,
        _prefix_statement(user, status, cursor, bounded),
        tenant_id="t1",
        low="app/u3/",
        high="app/u30",
        user_id="u3",
        status="active",
        limit=21,
    )
    # With a user_id too, walking that user's sessions (and sorting those few) is as good.
    allowed = {"ix_sessions_tenant_id_external_id"}
    if user:
        allowed.add("ix_sessions_tenant_id_user_id_updated_at_id")
    sessions = [node for node in nodes if node.get("Relation Name") == "sessions"]
    assert sessions and {node.get("Index Name") for node in sessions} <= allowed
    kinds = [node["Node Type"] for node in nodes]
    assert "Seq Scan" not in kinds and not any(kind.startswith("Bitmap") for kind in kinds)
    assert user or "Sort" not in kinds, kinds
    previews = [node for node in nodes if node.get("Relation Name") == "messages"]
    assert {node["Index Name"] for node in previews} == {"ix_messages_session_id_seq"}


@pytest.mark.parametrize(("user", "status"), list(itertools.product((False, True), repeat=2)))
async def test_an_external_id_is_found_through_its_index(
    connection: AsyncConnection, user: bool, status: bool
) -> None:
    nodes = await _plan(
        connection,
        _exact_statement(user, status),
        tenant_id="t1",
        external_id="app/u3/s3",
        user_id="u3",
        status="active",
    )
    sessions = [node for node in nodes if node.get("Relation Name") == "sessions"]
    assert sessions and {node["Index Name"] for node in sessions} == {
        "ix_sessions_tenant_id_external_id"
    }


_ADVANCE = {
    "scope_session": "s5",
    "scope_tenant": "t1",
    "count": 1,
    "tokens": 0,
    "now": NOW,
    "parent_seq": None,
}
# One message's columns, one array each (messages/append.py); what they hold does not change a plan.
_ONE_MESSAGE = {
    f"each_{key}": [
        {"id": "m-new", "role": "user", "content": "hi", "status": "completed"}.get(key)
    ]
    for key in _PER_ROW
}


@pytest.mark.parametrize(
    ("statement", "values", "table", "index"),
    [
        (_GET, {"session_id": "s5", "tenant_id": "t1"}, "sessions", "pk_sessions"),
        (_RESOLVE, {"key_hash": "abc"}, "api_keys", "uq_api_keys_key_hash"),
        (ADVANCE_SESSION, _ADVANCE, "sessions", "pk_sessions"),
        (_APPEND_IN_ONE, {**_ADVANCE, **_ONE_MESSAGE}, "sessions", "pk_sessions"),
    ],
    ids=["get-session", "resolve-api-key", "advance-session", "append-in-one-statement"],
)
async def test_point_statements_use_their_key(
    connection: AsyncConnection, statement: Prepared, values: dict[str, Any], table: str, index: str
) -> None:
    _assert_indexed(await _plan(connection, statement, **values), table, index)
