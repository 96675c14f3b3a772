"""Event streams read over real HTTP from `chat-sessions serve` on a SQLite file, as frontends
read them: two devices following one session, resumption after a disconnect mid-answer, the
keep-alive, the idle sweep's interruption, the per-tenant bound, a client that stops reading,
and a shutdown with streams open."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.sse import WAIT_SECONDS, follow
from service_process import ServiceProcess
from support import ADMIN

pytestmark = pytest.mark.sqlite_only

STREAM_SETTINGS = {
    "EVENTS_PING_SECONDS": "0.2",
    "STREAM_IDLE_SECONDS": "2",
    "MAX_STREAMS_PER_TENANT": "3",
}


def serve(tmp_path: Path, **settings: str) -> ServiceProcess:
    return ServiceProcess(
        tmp_path, "--migrate", DATABASE_PATH=str(tmp_path / "sessions.db"), **settings
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = serve(tmp_path_factory.mktemp("events"), **STREAM_SETTINGS)
    yield process
    log = process.stop()
    assert "Traceback" not in log and "ERROR" not in log, log


_TENANTS = itertools.count(1)


class Writer:
    """A frontend's writes, through the API, for a new tenant of its own."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS)
        self.headers: dict[str, str] = {}

    async def __aenter__(self) -> Writer:
        tenant = await self.client.post(
            "/v1/admin/tenants", json={"name": f"t{next(_TENANTS)}"}, headers=ADMIN
        )
        assert tenant.status_code == 201, tenant.text
        self.headers = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, headers=self.headers, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def session(self) -> str:
        return str((await self.call("POST", "/v1/sessions", json={}))["id"])

    async def append(self, session_id: str, content: str, **fields: Any) -> dict[str, Any]:
        body = {"role": "user", "content": content, **fields}
        return dict(await self.call("POST", f"/v1/sessions/{session_id}/messages", json=body))

    async def answer(self, session_id: str) -> str:
        started = await self.append(session_id, "", role="assistant", status="in_progress")
        return str(started["id"])

    async def delta(self, session_id: str, message_id: str, text: str) -> None:
        path = f"/v1/sessions/{session_id}/messages/{message_id}/deltas"
        await self.call("POST", path, json={"content": text})

    async def close(self, session_id: str, message_id: str) -> None:
        path = f"/v1/sessions/{session_id}/messages/{message_id}"
        await self.call("PATCH", path, json={"status": "completed"})


def kinds(events: list[Any]) -> list[str]:
    return [event.kind for event in events]


async def test_two_devices_follow_one_session_alike(server: ServiceProcess) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        async with (
            follow(server.base_url, session_id, writer.headers) as phone,
            follow(server.base_url, session_id, writer.headers) as laptop,
        ):
            await writer.append(session_id, "Plan a trip")
            answer_id = await writer.answer(session_id)
            for piece in ("Lis", "bon", "!"):
                await writer.delta(session_id, answer_id, piece)
            await writer.close(session_id, answer_id)
            seen = [await phone.until("message.updated"), await laptop.until("message.updated")]
    for events in seen:
        created = [event.data["content"] for event in events if event.kind == "message.created"]
        assert created == ["Plan a trip", ""]
        streamed = "".join(e.data["delta"] for e in events if e.kind == "message.delta")
        assert streamed == "Lisbon!"  # every delta, in order (some may arrive joined)
        assert events[-1].data["content"] == "Lisbon!" and events[-1].data["status"] == "completed"
        counts = [int(str(event.id).split("-")[0]) for event in events]
        assert counts == sorted(counts)
    assert [(e.kind, e.data) for e in seen[0]] == [(e.kind, e.data) for e in seen[1]]


async def test_a_device_that_reconnects_mid_answer_gets_the_answer_so_far(
    server: ServiceProcess,
) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        async with follow(server.base_url, session_id, writer.headers) as stream:
            answer_id = await writer.answer(session_id)
            await writer.delta(session_id, answer_id, "The first words")
            await stream.until("message.delta")
            last_event_id = stream.last_event_id
        # Disconnected (a tab closed, a train in a tunnel); the answer goes on meanwhile.
        await writer.delta(session_id, answer_id, ", more words")
        await writer.append(session_id, "an aside", role="user")
        resume = {**writer.headers, "Last-Event-ID": str(last_event_id)}
        async with follow(server.base_url, session_id, resume) as stream:
            missed = await stream.until("session.updated")
            await writer.delta(session_id, answer_id, ", the end")
            await writer.close(session_id, answer_id)
            live = await stream.until("message.updated")
    assert [(e.kind, e.data["seq"]) for e in missed[:2]] == [
        ("message.created", 1),
        ("message.created", 2),
    ]
    assert missed[0].data["content"] == "The first words, more words"
    assert missed[0].data["status"] == "in_progress"
    assert "".join(e.data["delta"] for e in live if e.kind == "message.delta") == ", the end"
    assert live[-1].data["content"] == "The first words, more words, the end"


async def test_a_stream_from_now_opens_with_its_position_so_an_early_drop_loses_nothing(
    server: ServiceProcess,
) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        await writer.append(session_id, "before")
        async with follow(server.base_url, session_id, writer.headers) as stream:
            position = await stream.position()
        # Dropped before any event; what is appended meanwhile is sent on resumption.
        await writer.append(session_id, "while away")
        resume = {**writer.headers, "Last-Event-ID": position}
        async with follow(server.base_url, session_id, resume) as stream:
            missed = await stream.next_event()
    assert (missed.kind, missed.data["content"]) == ("message.created", "while away")


async def test_after_seq_follows_on_from_the_history_read(server: ServiceProcess) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        for n in range(3):
            await writer.append(session_id, f"m{n + 1}")
        async with follow(server.base_url, session_id, writer.headers, query="?after_seq=1") as s:
            caught_up = await s.take(2)
            await writer.append(session_id, "m4")
            live = await s.next_event()
    assert [event.data["content"] for event in caught_up] == ["m2", "m3"]
    assert (live.kind, live.data["content"]) == ("message.created", "m4")


async def test_truncation_and_deletion_reach_the_stream_which_then_ends(
    server: ServiceProcess,
) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        for n in range(3):
            await writer.append(session_id, f"m{n + 1}")
        async with follow(server.base_url, session_id, writer.headers) as stream:
            path = f"/v1/sessions/{session_id}"
            await writer.call("DELETE", f"{path}/messages", params={"after_seq": 1})
            await writer.append(session_id, "m2, edited")
            await writer.call("PATCH", path, json={"title": "Edited"})
            await writer.call("DELETE", path)
            events = await stream.read_to_end()
    assert events[0].kind == "messages.deleted" and events[0].data == {"after_seq": 1}
    edited = [e.data["content"] for e in events if e.kind == "message.created"]
    assert edited == ["m2, edited"]
    assert any(e.kind == "session.updated" and e.data["title"] == "Edited" for e in events)
    assert events[-1].kind == "session.deleted" and events[-1].data == {"id": session_id}


async def test_a_quiet_stream_is_kept_alive_with_pings(server: ServiceProcess) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        async with follow(server.base_url, session_id, writer.headers) as stream:
            await stream.wait_for_ping()
            await stream.wait_for_ping()
        assert stream.pings >= 2


async def test_a_silent_answer_is_interrupted_on_every_stream(server: ServiceProcess) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        async with follow(server.base_url, session_id, writer.headers) as stream:
            answer_id = await writer.answer(session_id)
            await writer.delta(session_id, answer_id, "cut off here")
            events = await stream.until("message.updated")  # STREAM_IDLE_SECONDS=2 later
    assert events[-1].data["status"] == "interrupted"
    assert events[-1].data["content"] == "cut off here"


async def test_more_streams_than_the_tenant_may_open_is_429(server: ServiceProcess) -> None:
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        async with (
            follow(server.base_url, session_id, writer.headers),
            follow(server.base_url, session_id, writer.headers),
            follow(server.base_url, session_id, writer.headers),
        ):
            refused = await writer.client.get(
                f"/v1/sessions/{session_id}/events", headers=writer.headers
            )
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "1"
            async with Writer(server.base_url) as another_tenant:
                theirs = await another_tenant.session()
                async with follow(server.base_url, theirs, another_tenant.headers) as stream:
                    await another_tenant.append(theirs, "unaffected")
                    assert (await stream.next_event()).kind == "message.created"
        # Closed streams give their places back (once the server has seen them go).
        for _ in range(100):
            again = await writer.client.head(
                f"/v1/sessions/{session_id}/events", headers=writer.headers
            )
            async with follow(server.base_url, session_id, writer.headers) as stream:
                await writer.append(session_id, "back")
                assert (await stream.next_event()).kind == "message.created"
                break
        assert again.status_code == 200


def raw_stream(base_url: str, session_id: str, headers: dict[str, str]) -> socket.socket:
    """A stream request on a socket that reads nothing more (a small receive buffer)."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = socket.socket()
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    connection.connect((host, int(port)))
    lines = [f"GET /v1/sessions/{session_id}/events HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return connection


def received_until_closed(connection: socket.socket) -> bytes:
    connection.settimeout(WAIT_SECONDS)
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_a_client_that_stops_reading_is_disconnected_and_resumes(
    tmp_path: Path,
) -> None:
    server = serve(tmp_path, EVENTS_BACKLOG_LIMIT="5", LOG_LEVEL="info")
    try:
        async with Writer(server.base_url) as writer:
            session_id = await writer.session()
            stuck = raw_stream(server.base_url, session_id, writer.headers)
            await writer.append(session_id, "first")  # the stream is open once this arrives
            big = "x" * 200_000
            # Far more than the socket buffers hold, then changes past the backlog bound.
            for n in range(60):
                await writer.append(session_id, f"{n} {big}")
            received = await asyncio.to_thread(received_until_closed, stuck)
            stuck.close()
            # What a client takes from it: the events received whole (the last may be cut).
            whole = received.split(b"\r\n\r\n")[:-1]
            ids = [line for event in whole for line in event.split(b"\r\n") if b"id: " in line]
            assert 0 < len(ids) < 61  # dropped before it was sent everything
            last_event_id = ids[-1].split(b"id: ")[1].decode()
            resume = {**writer.headers, "Last-Event-ID": last_event_id}
            async with follow(server.base_url, session_id, resume) as stream:
                missed = await stream.until("session.updated")
        seqs_before = [
            int(re.findall(rb'"seq":(\d+)', event)[0])
            for event in whole
            if b"event: message.created" in event
        ]
        created = [e for e in missed if e.kind == "message.created"]
        assert created[-1].data["seq"] == 61
        assert created[0].data["seq"] <= seqs_before[-1] + 1  # nothing skipped
    finally:
        log = server.stop()
    assert "Traceback" not in log and "ERROR" not in log, log
    assert "stopped reading" in log


async def test_shutdown_ends_open_streams_cleanly(tmp_path: Path) -> None:
    server = serve(tmp_path, LOG_LEVEL="info")
    async with Writer(server.base_url) as writer:
        session_id = await writer.session()
        async with (
            follow(server.base_url, session_id, writer.headers) as first,
            follow(server.base_url, session_id, writer.headers) as second,
        ):
            await writer.append(session_id, "before the shutdown")
            await first.until("session.updated")
            await second.until("session.updated")
            log = await asyncio.to_thread(server.stop)
            # Each stream ended as a response ends, not as a broken connection.
            assert await first.read_to_end() == [] and await second.read_to_end() == []
    # It ended by itself, within stop()'s wait (uvicorn ends a SIGTERM'd server by the signal).
    assert server.process.returncode in (0, -signal.SIGTERM), log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert "Finished server process" in log
