"""PostgreSQL: pooled connections the server has dropped (a restart, a failover, an idle
timeout) cost no request an error, although nothing pings a connection on checkout; and a
load above the pool size queues for the pool's connections instead of opening (and closing)
new ones request after request."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from chat_sessions.db import Database
from chat_sessions.db.postgres import PostgresEngine
from chat_sessions.settings import Settings
from support import Tenant, app_client, count_rows, create_tenant, make_settings, new_session

pytestmark = [
    pytest.mark.postgres_only,
]


async def _drop_the_service_connections(settings: Settings) -> int:
    """What a server restart does to the service's pool: every other backend of the test
    database is terminated. The number terminated."""
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        async with engine.connect() as connection:
            terminated = await connection.execute(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM"
                    " pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                )
            )
            return int(terminated.scalar_one())
    finally:
        await engine.dispose()


async def test_requests_after_the_server_dropped_pooled_connections_succeed(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    # Several connections in the pool, all of them about to be dead.
    reads = await asyncio.gather(
        *(client.get(f"/v1/sessions/{session_id}", headers=tenant.headers) for _ in range(4))
    )
    assert [response.status_code for response in reads] == [200] * 4
    assert await _drop_the_service_connections(settings) >= 1

    read = await client.get(f"/v1/sessions/{session_id}/messages", headers=tenant.headers)
    assert read.status_code == 200, read.text
    write = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "after the restart"},
        headers=tenant.headers,
    )
    assert write.status_code == 201, write.text
    assert write.json()["seq"] == 1
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert await count_rows(database, "messages", "session_id = :s", s=session_id) == 1


async def test_ready_after_the_server_dropped_pooled_connections(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get("/ready")).status_code == 200
    assert await _drop_the_service_connections(settings) >= 1
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text


async def _connections_opened_under_load(settings: Settings) -> tuple[int, list[int]]:
    """Connections the service opened while 12 clients kept 4 times the pool busy (reads and
    appends, 10 rounds), after a first round had filled the pool; and the answers' statuses."""
    database = Database(settings)
    await database.start()
    try:
        assert isinstance(database.engine, PostgresEngine)
        opened: list[object] = []

        def count(*_: object) -> None:
            opened.append(None)

        async with app_client(settings, database) as client:
            tenant = await create_tenant(client, f"pool-{uuid.uuid4()}")
            session_id = await new_session(client, tenant)

            async def one_round() -> list[int]:
                requests = [
                    client.get(f"/v1/sessions/{session_id}/messages", headers=tenant.headers)
                    if i % 2
                    else client.post(
                        f"/v1/sessions/{session_id}/messages",
                        json={"role": "user", "content": f"message {i}"},
                        headers=tenant.headers,
                    )
                    for i in range(12)
                ]
                return [response.status_code for response in await asyncio.gather(*requests)]

            statuses = await one_round()
            engine = database.engine._started().sync_engine
            event.listen(engine, "connect", count)
            try:
                for _ in range(10):
                    statuses += await one_round()
            finally:
                event.remove(engine, "connect", count)
        return len(opened), statuses
    finally:
        await database.stop()


async def test_a_load_above_the_pool_size_waits_for_pooled_connections(postgres_url: str) -> None:
    settings = make_settings(database_url=postgres_url, db_pool_size=3)
    assert settings.db_max_overflow == 0  # the default
    opened, statuses = await _connections_opened_under_load(settings)
    assert set(statuses) <= {200, 201}
    assert statuses.count(201) == 66
    assert opened == 0


async def test_overflow_connections_are_opened_and_closed_request_after_request(
    postgres_url: str,
) -> None:
    """Why the default is no overflow: what the same load does with some."""
    settings = make_settings(database_url=postgres_url, db_pool_size=3, db_max_overflow=3)
    opened, statuses = await _connections_opened_under_load(settings)
    assert set(statuses) <= {200, 201}
    assert opened >= 10  # new PostgreSQL processes, round after round
