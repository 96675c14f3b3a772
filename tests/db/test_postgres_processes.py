"""PostgreSQL as the scale-out backend: real uvicorn processes sharing one database.

Each test starts `chat-sessions serve` processes (not test clients in this process) against a
database of its own, and drives them over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.db import Database
from service_process import ServiceProcess, free_port
from support import (
    ADMIN,
    create_migrated_postgres_database,
    drop_postgres_database,
    make_settings,
)

pytestmark = [
    pytest.mark.postgres_only,
]


@pytest.fixture
def database_url() -> Iterator[str]:
    url = create_migrated_postgres_database("cs_processes")
    yield url
    drop_postgres_database(url)


class Server(ServiceProcess):
    def __init__(self, database_url: str, tmp_path: Path, **env: str) -> None:
        super().__init__(tmp_path, DATABASE_URL=database_url, **env)


@contextmanager
def servers(
    database_url: str, tmp_path: Path, count: int = 2, **env: str
) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for _ in range(count):
            started.append(Server(database_url, tmp_path, **env))
        yield started
    finally:
        for server in started:
            server.stop()


def tenant_and_session(server: Server) -> tuple[dict[str, str], str]:
    created = httpx.post(
        f"{server.base_url}/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['api_key']}"}
    session = httpx.post(f"{server.base_url}/v1/sessions", json={}, headers=headers)
    return headers, str(session.json()["id"])


async def _send_everywhere(
    targets: list[Server],
    path: str,
    bodies: list[dict[str, object]],
    headers: dict[str, str],
    method: str = "POST",
) -> list[httpx.Response]:
    """Send each body to the servers in turn, all at once."""
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.request(
                    method,
                    f"{targets[n % len(targets)].base_url}{path}",
                    json=body,
                    headers=headers,
                )
                for n, body in enumerate(bodies)
            )
        )


def test_two_processes_append_200_messages_with_gapless_seqs(
    database_url: str, tmp_path: Path
) -> None:
    with servers(database_url, tmp_path) as (first, second):
        headers, session_id = tenant_and_session(first)
        bodies = [{"role": "user", "content": f"m{n}"} for n in range(200)]
        responses = asyncio.run(
            _send_everywhere(
                [first, second], f"/v1/sessions/{session_id}/messages", bodies, headers
            )
        )
        assert [r.status_code for r in responses] == [201] * 200
        assert sorted(r.json()["seq"] for r in responses) == list(range(1, 201))
        session = httpx.get(f"{second.base_url}/v1/sessions/{session_id}", headers=headers)
        assert session.json()["message_count"] == 200


def test_traits_patches_from_two_processes_lose_no_key(database_url: str, tmp_path: Path) -> None:
    with servers(database_url, tmp_path) as (first, second):
        headers, session_id = tenant_and_session(first)

        async def patch_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(
                    *(
                        client.patch(
                            f"{(first, second)[n % 2].base_url}/v1/sessions/{session_id}",
                            json={"traits": {f"k{n}": n}},
                            headers=headers,
                        )
                        for n in range(60)
                    )
                )

        assert {r.status_code for r in asyncio.run(patch_all())} == {200}
        traits = httpx.get(f"{first.base_url}/v1/sessions/{session_id}", headers=headers)
        assert traits.json()["traits"] == {f"k{n}": n for n in range(60)}


def test_an_idempotency_key_raced_from_two_processes_stores_one_row(
    database_url: str, tmp_path: Path
) -> None:
    with servers(database_url, tmp_path) as (first, second):
        headers, session_id = tenant_and_session(first)
        keyed = {**headers, "Idempotency-Key": "charge-42"}
        body = {"role": "assistant", "content": "done"}
        responses = asyncio.run(
            _send_everywhere(
                [first, second], f"/v1/sessions/{session_id}/messages", [body] * 40, keyed
            )
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["id"] for r in responses}) == 1
        page = httpx.get(f"{first.base_url}/v1/sessions/{session_id}/messages", headers=headers)
        assert len(page.json()["data"]) == 1


def test_concurrent_creates_with_one_external_id_from_two_processes_make_one_session(
    database_url: str, tmp_path: Path
) -> None:
    with servers(database_url, tmp_path) as (first, second):
        headers, _ = tenant_and_session(first)
        # Five external_ids, ten creates each, all at once over both processes.
        bodies: list[dict[str, object]] = [
            {"external_id": f"app/u/{n % 5}", "title": f"attempt {n}"} for n in range(50)
        ]
        responses = asyncio.run(_send_everywhere([first, second], "/v1/sessions", bodies, headers))

        by_external_id: dict[str, list[httpx.Response]] = {}
        for body, response in zip(bodies, responses, strict=True):
            by_external_id.setdefault(str(body["external_id"]), []).append(response)
        for answers in by_external_id.values():
            assert sorted(r.status_code for r in answers) == [200] * 9 + [201]
            assert len({r.json()["id"] for r in answers}) == 1
        listed = httpx.get(
            f"{second.base_url}/v1/sessions",
            params={"external_id_prefix": "app/u/"},
            headers=headers,
        )
        assert [item["external_id"] for item in listed.json()["data"]] == [
            f"app/u/{n}" for n in range(5)
        ]


def test_user_traits_patches_from_two_processes_lose_no_key_from_the_first_write(
    database_url: str, tmp_path: Path
) -> None:
    with servers(database_url, tmp_path) as (first, second):
        headers, _ = tenant_and_session(first)
        bodies: list[dict[str, object]] = [{f"k{n}": n} for n in range(40)]
        responses = asyncio.run(
            _send_everywhere([first, second], "/v1/users/u-1/traits", bodies, headers, "PATCH")
        )

        assert {r.status_code for r in responses} == {200}
        traits = httpx.get(f"{second.base_url}/v1/users/u-1/traits", headers=headers).json()
        assert traits["traits"] == {f"k{n}": n for n in range(40)}
        assert traits["version"] == 40


def test_kill_9_mid_load_loses_no_acknowledged_message(database_url: str, tmp_path: Path) -> None:
    with servers(database_url, tmp_path) as (survivor, victim):
        headers, session_id = tenant_and_session(survivor)
        acknowledged: list[str] = []
        path = f"/v1/sessions/{session_id}/messages"

        async def load() -> None:
            async with httpx.AsyncClient(timeout=10) as client:

                async def writer(server: Server, name: str) -> None:
                    for n in range(150):
                        try:
                            response = await client.post(
                                f"{server.base_url}{path}",
                                json={"role": "user", "content": f"{name}-{n}"},
                                headers=headers,
                            )
                        except httpx.TransportError:
                            return  # the server is gone: whatever it did not answer is not ours
                        if response.status_code == 201:
                            acknowledged.append(response.json()["id"])
                        if name == "victim-0" and n == 40:
                            os.kill(victim.process.pid, signal.SIGKILL)

                await asyncio.gather(
                    *(writer(victim, f"victim-{w}") for w in range(4)),
                    *(writer(survivor, f"survivor-{w}") for w in range(4)),
                )

        asyncio.run(load())
        assert victim.process.wait(timeout=10) == -signal.SIGKILL

        stored = asyncio.run(_stored_messages(database_url, session_id))
        assert set(acknowledged) <= {row_id for row_id, _ in stored}
        assert [seq for _, seq in stored] == list(range(1, len(stored) + 1)), "seqs stay gapless"
        assert len(acknowledged) > 40 * 4


async def _stored_messages(database_url: str, session_id: str) -> list[tuple[str, int]]:
    database = Database(make_settings(database_url=database_url))
    await database.start()
    try:
        async with database.transaction() as tx:
            rows = await tx.execute(
                text("SELECT id, seq FROM messages WHERE session_id = :s ORDER BY seq"),
                {"s": session_id},
            )
            return [(row.id, row.seq) for row in rows]
    finally:
        await database.stop()


class TcpProxy:
    """A loopback TCP proxy in front of PostgreSQL that the test can cut and restore."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self.writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    def start(self) -> None:
        async def start() -> None:
            self.server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)

    def cut(self) -> None:
        """Refuse new connections and drop every open one, as a dead server would."""

        async def cut() -> None:
            assert self.server is not None
            self.server.close()
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(cut(), self.loop).result(5)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def wait_for_status(url: str, expected: int, seconds: float = 20.0) -> int:
    deadline = time.monotonic() + seconds
    status = -1
    while time.monotonic() < deadline:
        status = httpx.get(url, timeout=10).status_code
        if status == expected:
            return status
        time.sleep(0.2)  # waits for a server process to reconnect, not for a clock
    return status


def test_outage_answers_503_and_recovers_without_restart(database_url: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    target = make_url(database_url)
    proxy = TcpProxy(target.port or 5432)
    proxy.start()
    through_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    try:
        with servers(through_proxy, tmp_path, count=1, DB_CONNECT_TIMEOUT_SECONDS="2") as (server,):
            headers, session_id = tenant_and_session(server)
            assert httpx.get(f"{server.base_url}/ready").status_code == 200

            proxy.cut()
            assert httpx.get(f"{server.base_url}/ready", timeout=15).status_code == 503
            during = httpx.post(
                f"{server.base_url}/v1/sessions/{session_id}/messages",
                json={"role": "user", "content": "lost?"},
                headers=headers,
                timeout=15,
            )
            assert during.status_code == 503
            assert during.headers["content-type"].startswith("application/problem+json")
            assert "Traceback" not in during.text

            proxy.start()
            assert wait_for_status(f"{server.base_url}/ready", 200) == 200
            after = httpx.post(
                f"{server.base_url}/v1/sessions/{session_id}/messages",
                json={"role": "user", "content": "back"},
                headers=headers,
            )
            assert after.status_code == 201
            assert after.json()["seq"] == 1, "the request refused during the outage stored nothing"
    finally:
        proxy.close()
