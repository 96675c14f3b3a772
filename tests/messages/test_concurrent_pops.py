"""Pops raced against real service processes: 12 concurrent poppers over 20 messages pop each
message exactly once. On SQLite, one `chat-sessions serve` on a file database; on PostgreSQL,
two processes sharing one database, the poppers spread over both."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from service_process import ServiceProcess
from support import (
    ADMIN,
    create_migrated_postgres_database,
    drop_postgres_database,
)

MESSAGES = 20
POPPERS = 12


def session_of_20_messages(base_url: str) -> tuple[dict[str, str], str]:
    """A new tenant's key and a session holding messages m1..m20 (seqs 1..20)."""
    tenant = httpx.post(f"{base_url}/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN)
    assert tenant.status_code == 201, tenant.text
    headers = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
    session = httpx.post(f"{base_url}/v1/sessions", json={}, headers=headers)
    assert session.status_code == 201, session.text
    session_id = str(session.json()["id"])
    batch = [{"role": "user", "content": f"m{seq}"} for seq in range(1, MESSAGES + 1)]
    appended = httpx.post(
        f"{base_url}/v1/sessions/{session_id}/messages/batch",
        json={"messages": batch},
        headers=headers,
    )
    assert appended.status_code == 201, appended.text
    return headers, session_id


async def pop_all_at_once(
    base_urls: list[str], headers: dict[str, str], session_id: str
) -> list[httpx.Response]:
    """POPPERS pops sent together, each on a connection of its own, spread over the servers."""
    limits = httpx.Limits(max_connections=POPPERS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.delete(
                    f"{base_urls[n % len(base_urls)]}/v1/sessions/{session_id}/messages/last",
                    headers=headers,
                )
                for n in range(POPPERS)
            )
        )


def assert_each_message_popped_once(base_urls: list[str]) -> None:
    headers, session_id = session_of_20_messages(base_urls[0])

    responses = asyncio.run(pop_all_at_once(base_urls, headers, session_id))

    assert [r.status_code for r in responses] == [200] * POPPERS, [r.text for r in responses]
    popped = [r.json() for r in responses]
    seqs = sorted(message["seq"] for message in popped)
    assert seqs == list(range(MESSAGES - POPPERS + 1, MESSAGES + 1)), "each seq exactly once"
    assert len({message["id"] for message in popped}) == POPPERS
    assert all(message["content"] == f"m{message['seq']}" for message in popped)
    base_url = base_urls[-1]
    left = httpx.get(f"{base_url}/v1/sessions/{session_id}/messages", headers=headers)
    assert [m["seq"] for m in left.json()["data"]] == list(range(1, MESSAGES - POPPERS + 1))
    session = httpx.get(f"{base_url}/v1/sessions/{session_id}", headers=headers).json()
    assert session["message_count"] == MESSAGES - POPPERS
    stats = httpx.get(f"{base_url}/v1/stats", headers=headers).json()
    assert stats["messages"] == MESSAGES - POPPERS
    appended = httpx.post(
        f"{base_url}/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "next"},
        headers=headers,
    )
    assert appended.json()["seq"] == MESSAGES - POPPERS + 1


@contextmanager
def running(count: int, tmp_path: Path, *serve_args: str, **env: str) -> Iterator[list[str]]:
    """`count` service processes on one database; their base URLs."""
    started: list[ServiceProcess] = []
    try:
        for _ in range(count):
            started.append(ServiceProcess(tmp_path, *serve_args, **env))
        yield [server.base_url for server in started]
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    url = create_migrated_postgres_database("cs_pops")
    yield url
    drop_postgres_database(url)


@pytest.mark.sqlite_only
def test_12_concurrent_pops_from_a_server_on_a_sqlite_file_pop_each_message_once(
    tmp_path: Path,
) -> None:
    database = str(tmp_path / "sessions.db")
    with running(1, tmp_path, "--migrate", DATABASE_PATH=database) as base_urls:
        assert_each_message_popped_once(base_urls)


@pytest.mark.postgres_only
def test_12_concurrent_pops_through_2_processes_on_postgresql_pop_each_message_once(
    postgres_database_url: str, tmp_path: Path
) -> None:
    with running(2, tmp_path, DATABASE_URL=postgres_database_url) as base_urls:
        assert_each_message_popped_once(base_urls)
