"""Helpers the tests share: settings, tenants, row counts."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine

from chat_sessions.db import Database
from chat_sessions.settings import Settings, normalize_database_url

ADMIN_TOKEN = "test-admin-token"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


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
