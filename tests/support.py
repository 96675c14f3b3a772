"""Helpers the tests share: settings, clients on an app, tenants, row counts, problem answers,
a clock to advance, PostgreSQL databases of their own."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from chat_sessions.app import create_app
from chat_sessions.db import Database
from chat_sessions.settings import Settings, normalize_database_url

ADMIN_TOKEN = "test-admin-token"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TABLES = ("tenants", "api_keys", "sessions", "messages", "tool_calls", "end_users")
JSON_TYPES = ("application/json", "application/problem+json")


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_path": ":memory:",
        "database_url": None,
        "admin_token": ADMIN_TOKEN,
        "log_level": "warning",
        "max_body_bytes": 1024 * 1024,
        "max_message_bytes": 256 * 1024,
        "max_json_bytes": 64 * 1024,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def client_of(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on `app`, on the caller's event loop (see conftest's `client`)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@asynccontextmanager
async def app_client(
    settings: Settings, database: Database, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app configured with `overrides`, over the test's own database."""
    async with client_of(create_app(settings.model_copy(update=overrides), database)) as client:
        yield client


@dataclass
class Clock:
    """A clock a test advances by hand (`clock.now += 30`), for whatever takes `clock=`."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Tenant:
    id: str
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_tenant(client: httpx.AsyncClient, name: str, **limits: Any) -> Tenant:
    response = await client.post("/v1/admin/tenants", json={"name": name, **limits}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    return Tenant(id=body["tenant"]["id"], name=name, key=body["api_key"])


async def new_session(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> str:
    """Create a session through the API; its id."""
    response = await client.post("/v1/sessions", json=fields, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def append(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_id: str,
    content: str = "hello",
    role: str = "user",
    **fields: Any,
) -> dict[str, Any]:
    """Append one message through the API; the stored message."""
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": role, "content": content, **fields},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """A JSON error document with the HTTP status and a human-readable detail."""
    assert response.status_code == status, response.text
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type in JSON_TYPES, media_type
    assert "Traceback" not in response.text
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def stored(database: Database) -> dict[str, Any]:
    """Everything a rejected write could have changed: row counts, and each session's row."""
    snapshot: dict[str, Any] = {table: await count_rows(database, table) for table in TABLES}
    async with database.transaction() as tx:
        rows = await tx.execute(
            text("SELECT id, version, title, status, traits, external_id FROM sessions ORDER BY id")
        )
        snapshot["session_rows"] = [tuple(row) for row in rows.all()]
        rows = await tx.execute(text("SELECT id, status, result FROM tool_calls ORDER BY id"))
        snapshot["tool_call_rows"] = [tuple(row) for row in rows.all()]
        rows = await tx.execute(text("SELECT id, name, max_sessions FROM tenants ORDER BY id"))
        snapshot["tenant_rows"] = [tuple(row) for row in rows.all()]
        rows = await tx.execute(
            text("SELECT tenant_id, user_id, version, traits FROM end_users ORDER BY 1, 2")
        )
        snapshot["end_user_rows"] = [tuple(row) for row in rows.all()]
    return snapshot


EMPTY_STATS = {"sessions": 0, "messages": 0, "tokens": 0, "users": 0}


async def stats(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """GET /v1/stats for `tenant`; its body."""
    response = await client.get("/v1/stats", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def add_tool_call(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, message_id: str | None = None
) -> None:
    """Record a tool call `call_1` on the session, tied to `message_id` if given."""
    body: dict[str, Any] = {"tool_call_id": "call_1", "tool_name": "search"}
    if message_id is not None:
        body["message_id"] = message_id
    response = await client.post(
        f"/v1/sessions/{session_id}/tool-calls", json=body, headers=tenant.headers
    )
    assert response.status_code == 201, response.text


async def count_rows(database: Database, table: str, where: str = "", **params: Any) -> int:
    """Count rows in the database itself, for claims about storage."""
    sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    async with database.transaction() as tx:
        return int((await tx.execute(text(sql), params)).scalar_one())


async def _admin_execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_postgres_database_async(prefix: str = "cs_test") -> str:
    """A new, empty PostgreSQL database on the TEST_DATABASE_URL server; returns its URL.

    Unreachable: the test fails under CI=true (the PostgreSQL half must run there) and is
    skipped, with the reason, elsewhere.
    """
    assert TEST_DATABASE_URL
    base = make_url(normalize_database_url(TEST_DATABASE_URL))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        await _admin_execute(base.render_as_string(False), f'CREATE DATABASE "{name}"')
    except (OSError, SQLAlchemyError) as error:
        message = f"PostgreSQL at TEST_DATABASE_URL is unreachable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return base.set(database=name).render_as_string(hide_password=False)


def create_postgres_database(prefix: str = "cs_test") -> str:
    return asyncio.run(create_postgres_database_async(prefix))


async def drop_postgres_database_async(url: str) -> None:
    parsed = make_url(url)
    admin_url = parsed.set(
        database=make_url(normalize_database_url(TEST_DATABASE_URL or "")).database
    )
    await _admin_execute(
        admin_url.render_as_string(False),
        f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)',
    )


def drop_postgres_database(url: str) -> None:
    asyncio.run(drop_postgres_database_async(url))


def create_migrated_postgres_database(prefix: str = "cs_test") -> str:
    """A new PostgreSQL database on the TEST_DATABASE_URL server, migrated to the head."""
    url = create_postgres_database(prefix)

    async def migrate() -> None:
        database = Database(make_settings(database_url=url))
        await database.start()
        try:
            await database.migrate()
        finally:
            await database.stop()

    asyncio.run(migrate())
    return url
