"""Event streams across service processes on one PostgreSQL database: what is written through
one process reaches the streams held by another, in the order of the session's changes, and a
relay that loses its LISTEN connection catches its streams up once it is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from events.sse import follow
from events.test_streams import Writer
from service_process import ServiceProcess
from support import create_migrated_postgres_database, drop_postgres_database

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    url = create_migrated_postgres_database("cs_events")
    yield url
    drop_postgres_database(url)


@pytest.fixture
def two_processes(postgres_database_url: str, tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    servers = [
        ServiceProcess(tmp_path, DATABASE_URL=postgres_database_url, EVENTS_PING_SECONDS="15")
        for _ in range(2)
    ]
    yield servers
    logs = [server.stop() for server in servers]
    for log in logs:
        assert "Traceback" not in log and "ERROR" not in log, log


async def test_a_stream_on_one_process_sees_what_the_other_writes_in_order(
    two_processes: list[ServiceProcess],
) -> None:
    here, there = two_processes
    async with Writer(there.base_url) as writer, Writer(here.base_url) as also_here:
        also_here.headers = writer.headers  # the same tenant, through the other process
        session_id = await writer.session()
        async with follow(here.base_url, session_id, writer.headers) as stream:
            await writer.append(session_id, "question")
            answer_id = await writer.answer(session_id)
            pieces = [f"<{n}>" for n in range(12)]
            for n, piece in enumerate(pieces):  # through both processes, in turn
                await (writer, also_here)[n % 2].delta(session_id, answer_id, piece)
            await writer.close(session_id, answer_id)
            await writer.call(
                "DELETE", f"/v1/sessions/{session_id}/messages", params={"after_seq": 1}
            )
            await also_here.append(session_id, "question, edited")
            await writer.append(session_id, "one more")
            events = []
            while not (
                events
                and events[-1].kind == "message.created"
                and events[-1].data["content"] == "one more"
            ):
                events.append(await stream.next_event())
    order = [
        (event.kind, event.data.get("seq"))
        for event in events
        if event.kind not in ("session.updated", "message.delta")
    ]
    assert order == [
        ("message.created", 1),
        ("message.created", 2),
        ("message.updated", 2),
        ("messages.deleted", None),
        ("message.created", 2),
        ("message.created", 3),
    ]
    streamed = "".join(event.data["delta"] for event in events if event.kind == "message.delta")
    assert streamed == "".join(pieces)
    updated = next(event for event in events if event.kind == "message.updated")
    assert updated.data["content"] == "".join(pieces)


async def test_a_relay_that_lost_its_connection_catches_its_streams_up(
    two_processes: list[ServiceProcess], postgres_database_url: str
) -> None:
    here, there = two_processes
    async with Writer(there.base_url) as writer:
        session_id = await writer.session()
        async with follow(here.base_url, session_id, writer.headers) as stream:
            await writer.append(session_id, "before")
            assert (await stream.next_event()).data["content"] == "before"
            dsn = make_url(postgres_database_url).set(drivername="postgresql")
            admin = await asyncpg.connect(dsn.render_as_string(False))
            try:
                terminated = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = $1",
                    f"chat-sessions events {here.process.pid}",
                )
            finally:
                await admin.close()
            assert terminated == 1
            # Announced while that process was not listening: it reads it once back.
            await writer.append(session_id, "while it was away")
            events = await stream.until("message.created")
    assert events[-1].data["content"] == "while it was away"


async def test_streams_on_two_workers_see_every_append_in_order(
    postgres_database_url: str, tmp_path: Path
) -> None:
    server = ServiceProcess(tmp_path, DATABASE_URL=postgres_database_url, WORKERS="2")
    try:
        async with Writer(server.base_url) as writer:
            session_id = await writer.session()
            async with (
                follow(server.base_url, session_id, writer.headers) as first,
                follow(server.base_url, session_id, writer.headers) as second,
                follow(server.base_url, session_id, writer.headers) as third,
                follow(server.base_url, session_id, writer.headers) as fourth,
            ):
                for n in range(10):  # each on a new connection: to either worker
                    async with Writer(server.base_url) as fresh:
                        fresh.headers = writer.headers
                        await fresh.append(session_id, f"m{n}")
                seen = []
                for stream in (first, second, third, fourth):
                    created = []
                    while len(created) < 10:
                        event = await stream.next_event()
                        if event.kind == "message.created":
                            created.append(event.data["content"])
                    seen.append(created)
    finally:
        log = server.stop()
    assert seen == [[f"m{n}" for n in range(10)]] * 4
    assert "Traceback" not in log and "ERROR" not in log, log


async def test_a_stream_resumes_on_the_other_process_mid_answer(
    two_processes: list[ServiceProcess],
) -> None:
    """An event id carries what its client was told: any process resumes it."""
    first, second = two_processes
    async with Writer(first.base_url) as writer:
        session_id = await writer.session()
        async with follow(first.base_url, session_id, writer.headers) as stream:
            answer_id = await writer.answer(session_id)
            await writer.delta(session_id, answer_id, "Half")
            await stream.until("message.delta")
            last_event_id = str(stream.last_event_id)
        await writer.delta(session_id, answer_id, " an answer")
        resume = {**writer.headers, "Last-Event-ID": last_event_id}
        async with follow(second.base_url, session_id, resume) as stream:
            missed = await stream.next_event()
            await writer.close(session_id, answer_id)
            closed = await stream.until("message.updated")
    assert (missed.kind, missed.data["content"]) == ("message.created", "Half an answer")
    assert closed[-1].data["status"] == "completed"
