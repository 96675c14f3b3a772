"""PostgreSQL: pooled connections the server has dropped (a restart, a failover, an idle
timeout) cost no request an error, although nothing pings a connection on checkout."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import Tenant, count_rows, new_session

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
