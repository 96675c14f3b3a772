"""Fixtures: settings, database, app and client, on SQLite and (when TEST_DATABASE_URL names
one) PostgreSQL. Every test that takes `client` runs once per engine.

A test marked `sqlite_only` or `postgres_only` (pyproject.toml) runs on that engine alone:
`pytest_generate_tests` gives its `engine_name` that one value, and a `postgres_only` test is
skipped, with the reason, when TEST_DATABASE_URL is unset. `-m "not postgres_only"` leaves them
out altogether.

SQLite tests get a fresh `:memory:` database built by running the migrations. PostgreSQL tests
share one database created for this run (migrated once) and emptied before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text

from chat_sessions.app import create_app
from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import (
    TEST_DATABASE_URL,
    Tenant,
    client_of,
    create_migrated_postgres_database,
    create_postgres_database_async,
    create_tenant,
    drop_postgres_database,
    drop_postgres_database_async,
    make_settings,
)

ENGINES = ["sqlite", "postgresql"] if TEST_DATABASE_URL else ["sqlite"]
TABLES = "tool_calls, messages, sessions, api_keys, tenants"


ONLY = {"sqlite_only": "sqlite", "postgres_only": "postgresql"}


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A parametrize mark rather than metafunc.parametrize: pytest parametrizes a fixture's own
    # params (ENGINES) unless a parametrize mark names it.
    if "engine_name" not in metafunc.fixturenames:
        return
    for marker, engine in ONLY.items():
        if metafunc.definition.get_closest_marker(marker) is not None:
            metafunc.definition.add_marker(pytest.mark.parametrize("engine_name", [engine]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if TEST_DATABASE_URL:
        return
    skip = pytest.mark.skip(reason="PostgreSQL only: TEST_DATABASE_URL is unset")
    for item in items:
        if item.get_closest_marker("postgres_only") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole run."""
    url = create_migrated_postgres_database()
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
    async with client_of(app) as client:
        yield client


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client, "acme")


@pytest.fixture
async def tenant_id(tenant: Tenant) -> str:
    """The id of `tenant`, for tests that call the services directly."""
    return tenant.id


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client, "globex")


@pytest.fixture
async def fresh_database(engine_name: str) -> AsyncIterator[Database]:
    """An empty database of its own (not migrated), so it can be migrated step by step."""
    url = None
    if engine_name == "postgresql":
        url = await create_postgres_database_async("cs_fresh")
    database = Database(make_settings(database_url=url))
    await database.start()
    yield database
    await database.stop()
    if url is not None:
        await drop_postgres_database_async(url)
