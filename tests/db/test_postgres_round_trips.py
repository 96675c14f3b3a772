"""PostgreSQL: what the hot routes send to the server. An append of one message (and a batch)
is one statement, one round trip, with no BEGIN or COMMIT; a read of history, a session, a
list of sessions, the API key's look-up: one statement each, no transaction of their own;
/context three.

Counted at the wire: every write to the sockets of the service's pooled connections, after the
routes have run once (asyncpg parses a statement once per connection, a round trip of its own
the first time)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from chat_sessions.db import Database
from chat_sessions.db.postgres import PostgresEngine
from chat_sessions.settings import Settings
from support import Tenant, app_client, create_tenant, new_session

pytestmark = [pytest.mark.postgres_only]

# The first byte of a write: the first message in it (PostgreSQL's frontend protocol).
BIND = ord("B")  # Bind (+ Execute + Sync): a prepared statement run, one round trip
SIMPLE_QUERY = ord("Q")  # BEGIN, COMMIT, ROLLBACK and other statements without parameters
PARSE = ord("P")  # preparing a statement on this connection (its first use)


class Wire:
    """Records the first byte of every write on every connection the pool hands out."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def watch(self, dbapi_connection: Any, *_: Any) -> None:
        transport = dbapi_connection.driver_connection._transport
        if getattr(transport, "watched", False):
            return
        write = transport.write

        def recording_write(data: bytes) -> None:
            self.sent.append(data[0])
            write(data)

        transport.write = recording_write
        transport.watched = True


@pytest.fixture
def wire(database: Database) -> Iterator[Wire]:
    assert isinstance(database.engine, PostgresEngine)
    engine = database.engine._started().sync_engine
    wire = Wire()
    event.listen(engine, "checkout", wire.watch)
    yield wire
    event.remove(engine, "checkout", wire.watch)


async def _sent_by(wire: Wire, request: Any) -> list[int]:
    """What one request wrote to the server, run once before (statements prepared, key cached)."""
    first = await request()
    assert first.status_code < 300, first.text
    wire.sent.clear()
    again = await request()
    assert again.status_code < 300, again.text
    return list(wire.sent)


async def test_hot_routes_are_one_statement_each_without_begin_or_commit(
    settings: Settings, database: Database, wire: Wire
) -> None:
    # The key's look-up cached for the whole test: measured on its own below.
    async with app_client(settings, database, api_key_cache_seconds=60) as client:
        tenant = await create_tenant(client, "wire")
        session_id = await new_session(client, tenant)
        base = f"/v1/sessions/{session_id}"
        message = {"role": "user", "content": "hello"}
        requests = {
            "append": lambda: client.post(f"{base}/messages", json=message, headers=tenant.headers),
            "batch": lambda: client.post(
                f"{base}/messages/batch", json={"messages": [message] * 20}, headers=tenant.headers
            ),
            "last 50": lambda: client.get(
                f"{base}/messages?order=desc&limit=50", headers=tenant.headers
            ),
            "get session": lambda: client.get(base, headers=tenant.headers),
            "list sessions": lambda: client.get("/v1/sessions", headers=tenant.headers),
        }
        sent = {name: await _sent_by(wire, request) for name, request in requests.items()}
        context = await _sent_by(
            wire, lambda: client.get(f"{base}/context?max_messages=20", headers=tenant.headers)
        )
    assert sent == {name: [BIND] for name in requests}
    # The session, its system messages, the newest others: three reads, no transaction.
    assert context == [BIND, BIND, BIND]


async def test_the_api_key_look_up_is_one_statement(
    settings: Settings, database: Database, wire: Wire
) -> None:
    async with app_client(settings, database, api_key_cache_seconds=0) as client:
        tenant = await create_tenant(client, "wire")
        session_id = await new_session(client, tenant)
        sent = await _sent_by(wire, lambda: _get(client, tenant, session_id))
    assert sent == [BIND, BIND]  # the key, then the session


async def test_a_multi_statement_append_runs_in_a_transaction(
    settings: Settings, database: Database, wire: Wire
) -> None:
    """With an Idempotency-Key, the append looks the key up under the session's lock: BEGIN,
    its statements, COMMIT - the one-statement form is for the plain append only."""
    async with app_client(settings, database, api_key_cache_seconds=60) as client:
        tenant = await create_tenant(client, "wire")
        session_id = await new_session(client, tenant)
        keys = iter(range(100))

        async def keyed() -> httpx.Response:
            return await client.post(
                f"/v1/sessions/{session_id}/messages",
                json={"role": "user", "content": "hello"},
                headers={**tenant.headers, "Idempotency-Key": f"k{next(keys)}"},
            )

        sent = await _sent_by(wire, keyed)
    assert sent[0] == SIMPLE_QUERY and sent[-1] == SIMPLE_QUERY  # BEGIN ... COMMIT
    assert len(sent) > 3


async def _get(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> httpx.Response:
    return await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
