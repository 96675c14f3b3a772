"""A real service for the client and adapter tests: `chat-sessions serve` on a SQLite file and,
when TEST_DATABASE_URL is set, two worker processes on one PostgreSQL database. Each server
runs for the whole test run; each test gets a tenant of its own on it (`service`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from service_process import ServiceProcess
from support import ADMIN, create_migrated_postgres_database, drop_postgres_database


@dataclass
class Service:
    """A running server and a fresh tenant's API key on it."""

    engine: str
    base_url: str
    api_key: str


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("sqlite-server")
    server = ServiceProcess(folder, "--migrate", DATABASE_PATH=str(folder / "sessions.db"))
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


@pytest.fixture(scope="session")
def postgresql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    url = create_migrated_postgres_database("cs_clients")
    server = ServiceProcess(tmp_path_factory.mktemp("pg-server"), DATABASE_URL=url, WORKERS="2")
    yield server
    log = server.stop()
    drop_postgres_database(url)
    assert "Traceback" not in log, log


_tenants = iter(range(1_000_000))


@pytest.fixture
def service(engine_name: str, request: pytest.FixtureRequest) -> Service:
    """A tenant of its own on the engine's server (the root conftest's `engine_name`: every
    engine, or the one a `sqlite_only`/`postgres_only` mark names)."""
    server: ServiceProcess = request.getfixturevalue(f"{engine_name}_server")
    created = httpx.post(
        f"{server.base_url}/v1/admin/tenants",
        json={"name": f"tenant-{next(_tenants)}"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    return Service(engine_name, server.base_url, created.json()["api_key"])
