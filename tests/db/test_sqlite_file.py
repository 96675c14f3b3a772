"""SQLite on a file, where a file matters: engine rules on every connection, concurrent writers
that never see "database is locked", and data that outlives the process that wrote it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import Connection

from chat_sessions.app import create_app
from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import ADMIN, Tenant, count_rows, create_tenant, make_settings, new_session

pytestmark = pytest.mark.sqlite_only


def file_settings(path: Path, **overrides: object) -> Settings:
    return make_settings(database_path=str(path / "data" / "sessions.db"), **overrides)


async def started(settings: Settings, migrate: bool = False) -> Database:
    database = Database(settings)
    await database.start()
    if migrate:
        await database.migrate()
    return database


def pragmas(connection: Connection) -> dict[str, object]:
    raw = connection.connection.dbapi_connection
    assert raw is not None
    return {
        name: raw.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("foreign_keys", "journal_mode", "synchronous", "busy_timeout")
    }


@pytest.fixture
async def file_database(tmp_path: Path) -> AsyncIterator[Database]:
    database = await started(file_settings(tmp_path), migrate=True)
    yield database
    await database.stop()


@pytest.fixture
async def file_client(tmp_path: Path, file_database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(file_database.settings, file_database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


async def test_every_connection_gets_the_engine_rules(tmp_path: Path) -> None:
    first = await started(file_settings(tmp_path), migrate=True)
    second = await started(file_settings(tmp_path))
    try:
        for database in (first, second):
            assert await database.run_sync(pragmas) == {
                "foreign_keys": 1,
                "journal_mode": "wal",
                "synchronous": 1,  # NORMAL
                "busy_timeout": 5000,
            }
    finally:
        await first.stop()
        await second.stop()
    assert (tmp_path / "data" / "sessions.db").exists(), "parent folders are created"


async def test_sqlite_synchronous_full_is_selectable(tmp_path: Path) -> None:
    database = await started(file_settings(tmp_path, sqlite_synchronous="FULL"))
    try:
        assert (await database.run_sync(pragmas))["synchronous"] == 2  # FULL
    finally:
        await database.stop()


async def _session(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.post("/v1/sessions", json={}, headers=tenant.headers)
    assert response.status_code == 201
    return str(response.json()["id"])


async def test_64_concurrent_appends_get_seqs_1_to_64(file_client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(file_client, "acme")
    session_id = await _session(file_client, tenant)
    responses = await asyncio.gather(
        *(
            file_client.post(
                f"/v1/sessions/{session_id}/messages",
                json={"role": "user", "content": f"message {n}"},
                headers=tenant.headers,
            )
            for n in range(64)
        )
    )
    assert [r.status_code for r in responses] == [201] * 64
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 65))
    session = (await file_client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)).json()
    assert session["message_count"] == 64


async def test_32_concurrent_retries_with_one_key_store_one_row(
    file_client: httpx.AsyncClient, file_database: Database
) -> None:
    tenant = await create_tenant(file_client, "acme")
    session_id = await _session(file_client, tenant)
    headers = {**tenant.headers, "Idempotency-Key": "retry-1"}
    responses = await asyncio.gather(
        *(
            file_client.post(
                f"/v1/sessions/{session_id}/messages",
                json={"role": "user", "content": "once"},
                headers=headers,
            )
            for _ in range(32)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 31
    assert await count_rows(file_database, "messages", "session_id = :s", s=session_id) == 1


async def test_48_concurrent_traits_patches_keep_every_key(file_client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(file_client, "acme")
    session_id = await _session(file_client, tenant)
    responses = await asyncio.gather(
        *(
            file_client.patch(
                f"/v1/sessions/{session_id}",
                json={"traits": {f"key{n}": n}},
                headers=tenant.headers,
            )
            for n in range(48)
        )
    )
    assert {r.status_code for r in responses} == {200}
    session = (await file_client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)).json()
    assert session["traits"] == {f"key{n}": n for n in range(48)}
    assert session["version"] == 49


def test_writers_on_separate_connections_never_see_database_locked(tmp_path: Path) -> None:
    """Four app instances, each with its own connection and thread, append to one session at
    once: the write lock is taken at BEGIN IMMEDIATE and waited for, never failed on."""
    settings = file_settings(tmp_path)
    asyncio.run(_migrate(settings))
    writers, per_writer = 4, 25
    with TestClient(create_app(settings)) as setup:
        created = setup.post("/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN)
        headers = {"Authorization": f"Bearer {created.json()['api_key']}"}
        session_id = setup.post("/v1/sessions", json={}, headers=headers).json()["id"]

    # Built here, not in the threads: Litestar imports plugins lazily while building an app.
    apps = [create_app(settings) for _ in range(writers)]

    def write(writer: int) -> list[int]:
        statuses = []
        with TestClient(apps[writer]) as client:
            for n in range(per_writer):
                response = client.post(
                    f"/v1/sessions/{session_id}/messages",
                    json={"role": "user", "content": f"{writer}-{n}"},
                    headers=headers,
                )
                statuses.append(response.status_code)
        return statuses

    with ThreadPoolExecutor(writers) as pool:
        statuses = [status for result in pool.map(write, range(writers)) for status in result]
    assert statuses == [201] * writers * per_writer

    with TestClient(create_app(settings)) as reader:
        page = reader.get(
            f"/v1/sessions/{session_id}/messages", params={"limit": 1000}, headers=headers
        ).json()
    assert [m["seq"] for m in page["data"]] == list(range(1, writers * per_writer + 1))


async def _migrate(settings: Settings) -> None:
    database = await started(settings, migrate=True)
    await database.stop()


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    first = await started(settings, migrate=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, first)), base_url="http://t"
    ) as client:
        tenant = await create_tenant(client, "acme")
        session_id = await _session(client, tenant)
        await client.post(
            f"/v1/sessions/{session_id}/messages",
            json={"role": "user", "content": "remember me"},
            headers=tenant.headers,
        )
    await first.stop()

    second = await started(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings, second)), base_url="http://t"
        ) as client:
            page = await client.get(f"/v1/sessions/{session_id}/messages", headers=tenant.headers)
        assert page.status_code == 200
        assert [m["content"] for m in page.json()["data"]] == ["remember me"]
    finally:
        await second.stop()


async def test_the_write_ahead_log_is_copied_into_the_database_file_by_the_checkpointer(
    tmp_path: Path,
) -> None:
    # The writer never checkpoints (wal_autocheckpoint=0): only the Checkpointer's thread
    # moves committed pages into the database file, without anyone asking.
    path = tmp_path / "sessions.db"
    database = Database(make_settings(database_path=str(path)))
    await database.start()
    try:
        await database.migrate()
        size_before = path.stat().st_size
        app = create_app(database.settings, database)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            tenant = await create_tenant(client, "walker")
            session_id = await new_session(client, tenant)
            batch = {"messages": [{"role": "user", "content": "x" * 2000}] * 100}
            for _ in range(5):
                response = await client.post(
                    f"/v1/sessions/{session_id}/messages/batch", json=batch, headers=tenant.headers
                )
                assert response.status_code == 201
        for _ in range(100):
            if path.stat().st_size > size_before + 500_000:
                break
            await asyncio.sleep(0.02)  # waits for the checkpointer thread to write the file
        assert path.stat().st_size > size_before + 500_000  # ~1 MB of messages copied over
    finally:
        await database.stop()
