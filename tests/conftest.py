"""Fixtures: settings, database, app and client, on SQLite and (when TEST_DATABASE_URL names
one) PostgreSQL. Every test that takes `client` runs once per engine.

SQLite tests get a fresh `:memory:` database built by running the migrations. PostgreSQL tests
share one database created for this run (migrated once) and emptied before each test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from chat_sessions.app import create_app
from chat_sessions.db import Database
from chat_sessions.settings import Settings, normalize_database_url
from support import Tenant, create_tenant, make_settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
ENGINES = ["sqlite", "postgresql"] if TEST_DATABASE_URL else ["sqlite"]
TABLES = "tool_calls, messages, sessions, api_keys, tenants"


async def _admin_execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def create_postgres_database(prefix: str = "cs_test") -> str:
    """A new, empty PostgreSQL database on the TEST_DATABASE_URL server; returns its URL."""
    assert TEST_DATABASE_URL
    base = make_url(normalize_database_url(TEST_DATABASE_URL))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin_execute(base.render_as_string(False), f'CREATE DATABASE "{name}"'))
    except Exception as error:  # pragma: no cover - depends on the machine
        message = f"PostgreSQL at TEST_DATABASE_URL is unreachable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return base.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    parsed = make_url(url)
    admin_url = parsed.set(
        database=make_url(normalize_database_url(TEST_DATABASE_URL or "")).database
    )
    asyncio.run(
        _admin_execute(
            admin_url.render_as_string(False),
            f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)',
        )
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole run."""
    url = create_postgres_database()

    async def migrate() -> None:
        database = Database(make_settings(database_url=url))
        await database.start()
        try:
            await database.migrate()
        finally:
            await database.stop()

    asyncio.run(migrate())
    yield url
    drop_postgres_database(url)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(engine_name: str, request: pytest.FixtureRequest) -> Settings:
    if engine_name == "postgresql":
        return make_settings(database_url=request.getfixturevalue("postgres_url"))
    return make_settings()


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    await database.start()
    if database.is_sqlite:
        await database.migrate()
    else:
        async with database.transaction() as tx:
            await tx.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    yield database
    await database.stop()


@pytest.fixture
def app(settings: Settings, database: Database) -> Litestar:
    return create_app(settings, database)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the test's own event loop (Litestar's test clients run the app on a
    thread of their own, where the PostgreSQL pool's connections would not belong), so
    `asyncio.gather` of requests is real concurrency. The `database` fixture has started the
    database the app's lifespan would otherwise start."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client, "acme")


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client, "globex")
