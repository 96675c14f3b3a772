"""Deltas against real service processes: a `chat-sessions serve` on a SQLite file, and two
processes sharing one PostgreSQL database. Concurrent deltas from several connections are all
kept, each where its acknowledged length says; and a server killed (-9) mid-answer loses no
acknowledged delta: the partial answer is there, and can still be closed."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_process import ServiceProcess
from support import ADMIN, create_migrated_postgres_database, drop_postgres_database

WRITERS = 4
DELTAS = 25


def started_answer(base_url: str) -> tuple[dict[str, str], str, str]:
    """A new tenant's key, a session, and an in-progress answer in it."""
    tenant = httpx.post(f"{base_url}/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN)
    assert tenant.status_code == 201, tenant.text
    headers = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
    session_id = httpx.post(f"{base_url}/v1/sessions", json={}, headers=headers).json()["id"]
    answer = httpx.post(
        f"{base_url}/v1/sessions/{session_id}/messages",
        json={"role": "assistant", "content": "", "status": "in_progress"},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    return headers, session_id, answer.json()["id"]


async def send_deltas(
    base_urls: list[str],
    path: str,
    headers: dict[str, str],
    kill: ServiceProcess | None = None,
) -> dict[str, int]:
    """WRITERS writers, each on connections of its own to one of the servers, send DELTAS
    deltas each; what was acknowledged (piece -> the length it answered). With `kill`, that
    server is killed -9 once 10 of its deltas were acknowledged."""
    acknowledged: dict[str, int] = {}

    async def writer(number: int) -> None:
        base_url = base_urls[number % len(base_urls)]
        async with httpx.AsyncClient(timeout=10) as client:
            for n in range(DELTAS):
                piece = f"<{number}.{n}>"
                try:
                    response = await client.post(
                        f"{base_url}{path}", json={"content": piece}, headers=headers
                    )
                except httpx.TransportError:
                    return  # the server is gone: what it did not answer is not ours
                assert response.status_code == 200, response.text
                acknowledged[piece] = response.json()["length"]
                if kill is not None and base_url == kill.base_url and n == 10:
                    os.kill(kill.process.pid, signal.SIGKILL)

    await asyncio.gather(*(writer(number) for number in range(WRITERS)))
    return acknowledged


def assert_kept(content: str, acknowledged: dict[str, int]) -> None:
    for piece, end in acknowledged.items():
        assert content[end - len(piece) : end] == piece, piece


def read_message(
    base_url: str, session_id: str, message_id: str, headers: dict[str, str]
) -> dict[str, Any]:
    response = httpx.get(
        f"{base_url}/v1/sessions/{session_id}/messages/{message_id}", headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_concurrent_deltas_all_kept(base_urls: list[str]) -> None:
    headers, session_id, message_id = started_answer(base_urls[0])
    path = f"/v1/sessions/{session_id}/messages/{message_id}/deltas"

    acknowledged = asyncio.run(send_deltas(base_urls, path, headers))

    assert len(acknowledged) == WRITERS * DELTAS
    content = read_message(base_urls[-1], session_id, message_id, headers)["content"]
    assert len(content) == sum(map(len, acknowledged))
    assert_kept(content, acknowledged)


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    url = create_migrated_postgres_database("cs_streams")
    yield url
    drop_postgres_database(url)


@pytest.mark.sqlite_only
def test_concurrent_deltas_to_a_server_on_a_sqlite_file_are_all_kept(tmp_path: Path) -> None:
    server = ServiceProcess(tmp_path, "--migrate", DATABASE_PATH=str(tmp_path / "s.db"))
    try:
        assert_concurrent_deltas_all_kept([server.base_url])
    finally:
        server.stop()


@pytest.mark.postgres_only
def test_concurrent_deltas_through_2_processes_on_postgresql_are_all_kept(
    postgres_database_url: str, tmp_path: Path
) -> None:
    servers = [ServiceProcess(tmp_path, DATABASE_URL=postgres_database_url) for _ in range(2)]
    try:
        assert_concurrent_deltas_all_kept([server.base_url for server in servers])
    finally:
        for server in servers:
            server.stop()


@pytest.mark.sqlite_only
def test_a_sqlite_server_killed_mid_answer_keeps_every_acknowledged_delta(
    tmp_path: Path,
) -> None:
    database = {"DATABASE_PATH": str(tmp_path / "s.db")}
    victim = ServiceProcess(tmp_path, "--migrate", **database)
    headers, session_id, message_id = started_answer(victim.base_url)
    path = f"/v1/sessions/{session_id}/messages/{message_id}/deltas"

    acknowledged = asyncio.run(send_deltas([victim.base_url], path, headers, kill=victim))
    assert victim.process.wait(timeout=10) == -signal.SIGKILL
    assert 10 < len(acknowledged) < WRITERS * DELTAS

    restarted = ServiceProcess(tmp_path, **database)
    try:
        message = read_message(restarted.base_url, session_id, message_id, headers)
        assert message["status"] == "in_progress"
        assert_kept(message["content"], acknowledged)
        closed = httpx.patch(
            f"{restarted.base_url}/v1/sessions/{session_id}/messages/{message_id}",
            json={"status": "interrupted"},
            headers=headers,
        )
        assert closed.status_code == 200, closed.text
        assert closed.json()["content"] == message["content"]
    finally:
        restarted.stop()


@pytest.mark.postgres_only
def test_a_postgresql_process_killed_mid_answer_loses_no_acknowledged_delta(
    postgres_database_url: str, tmp_path: Path
) -> None:
    environment = {"DATABASE_URL": postgres_database_url}
    survivor, victim = (ServiceProcess(tmp_path, **environment) for _ in range(2))
    try:
        headers, session_id, message_id = started_answer(survivor.base_url)
        path = f"/v1/sessions/{session_id}/messages/{message_id}/deltas"

        acknowledged = asyncio.run(
            send_deltas([survivor.base_url, victim.base_url], path, headers, kill=victim)
        )
        assert victim.process.wait(timeout=10) == -signal.SIGKILL

        assert len(acknowledged) > WRITERS // 2 * DELTAS, "the survivor's writers went on"
        message = read_message(survivor.base_url, session_id, message_id, headers)
        assert_kept(message["content"], acknowledged)
    finally:
        survivor.stop()
        victim.stop()
