"""Streaming messages over HTTP, on both engines: an assistant answer appended `in_progress`,
grown by deltas, closed by a PATCH or by the idle sweep (whose clock the tests advance)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from chat_sessions.db import Database
from chat_sessions.messages.streaming import interrupt_idle, interrupt_idle_periodically
from chat_sessions.models import messages, utcnow
from support import Tenant, append, assert_problem, new_session, stats, stored

IDLE = 120


async def start_answer(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, content: str = "", **fields: Any
) -> dict[str, Any]:
    return await append(
        client, tenant, session_id, content, role="assistant", status="in_progress", **fields
    )


async def delta(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, message_id: str, text: str
) -> httpx.Response:
    return await client.post(
        f"/v1/sessions/{session_id}/messages/{message_id}/deltas",
        json={"content": text},
        headers=tenant.headers,
    )


async def close(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, message_id: str, **body: Any
) -> httpx.Response:
    return await client.patch(
        f"/v1/sessions/{session_id}/messages/{message_id}",
        json={"status": "completed", **body},
        headers=tenant.headers,
    )


async def read(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, message_id: str
) -> dict[str, Any]:
    response = await client.get(
        f"/v1/sessions/{session_id}/messages/{message_id}", headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def session_of(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)).json())


async def test_an_answer_streams_in_and_completes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    await append(client, tenant, sid, "Where is Alfama?")
    started = await start_answer(client, tenant, sid, "Alf")
    assert (started["seq"], started["status"], started["content"]) == (2, "in_progress", "Alf")
    version_at_start = (await session_of(client, tenant, sid))["version"]

    acks = [await delta(client, tenant, sid, started["id"], text) for text in ("ama is ", "é…")]

    assert [a.status_code for a in acks] == [200, 200]
    assert acks[-1].json() == {"id": started["id"], "seq": 2, "length": len("Alfama is é…")}
    now = await read(client, tenant, sid, started["id"])
    assert (now["content"], now["status"]) == ("Alfama is é…", "in_progress")
    assert (await session_of(client, tenant, sid))["version"] == version_at_start, "no churn"

    closed = await close(client, tenant, sid, started["id"], token_count=7, metadata={"m": 1})

    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["status"], body["content"], body["token_count"]) == (
        "completed",
        now["content"],
        7,
    )
    assert body["metadata"] == {"m": 1}
    assert await read(client, tenant, sid, started["id"]) == body
    session = await session_of(client, tenant, sid)
    assert session["version"] == version_at_start + 1
    assert session["message_count"] == 2
    assert (await stats(client, tenant))["tokens"] == 7


async def test_every_read_shows_status(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sid = await new_session(client, tenant)
    plain = await append(client, tenant, sid, "hi")
    assert plain["status"] == "completed"
    await start_answer(client, tenant, sid, "…")
    history = (await client.get(f"/v1/sessions/{sid}/messages", headers=tenant.headers)).json()
    assert [m["status"] for m in history["data"]] == ["completed", "in_progress"]


async def test_closing_with_content_replaces_the_streamed_text_and_token_total_follows(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid, "draft", token_count=3)
    assert (await stats(client, tenant))["tokens"] == 3
    parts = [{"type": "output_text", "text": "final"}]

    closed = await close(client, tenant, sid, started["id"], content=parts, token_count=10)

    assert closed.status_code == 200, closed.text
    assert closed.json()["content"] == parts
    assert (await stats(client, tenant))["tokens"] == 10


async def test_an_interrupted_close_keeps_the_text(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid, "half an ans")
    closed = await close(client, tenant, sid, started["id"], status="interrupted")
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["content"]) == ("interrupted", "half an ans")


async def test_deltas_and_closes_after_the_close_are_409_and_change_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid, "done")
    assert (await close(client, tenant, sid, started["id"])).status_code == 200
    completed = await append(client, tenant, sid, "a plain one")
    before = await stored(database)

    assert_problem(await delta(client, tenant, sid, started["id"], "more"), 409)
    assert_problem(await close(client, tenant, sid, started["id"]), 409)
    assert_problem(await close(client, tenant, sid, completed["id"], status="interrupted"), 409)
    assert_problem(await delta(client, tenant, sid, completed["id"], "more"), 409)

    assert await stored(database) == before
    assert (await read(client, tenant, sid, started["id"]))["content"] == "done"


@pytest.mark.parametrize(
    "body",
    [
        {"role": "user", "content": "q", "status": "in_progress"},
        {"role": "tool", "content": "r", "tool_call_id": "c", "status": "in_progress"},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}], "status": "in_progress"},
        {"role": "assistant", "content": "a", "status": "interrupted"},
        {"role": "assistant", "content": "a", "status": "streaming"},
    ],
)
async def test_only_an_assistant_string_can_start_in_progress(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, body: dict[str, Any]
) -> None:
    sid = await new_session(client, tenant)
    before = await stored(database)
    response = await client.post(f"/v1/sessions/{sid}/messages", json=body, headers=tenant.headers)
    assert_problem(response, 400)
    assert await stored(database) == before


async def test_a_batch_can_carry_the_question_and_the_answer_to_come(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    batch = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "status": "in_progress"},
    ]
    response = await client.post(
        f"/v1/sessions/{sid}/messages/batch", json={"messages": batch}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    answer = response.json()["data"][1]
    assert answer["status"] == "in_progress"
    assert (await delta(client, tenant, sid, answer["id"], "a")).json()["length"] == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"content": 5}, 400),
        ({"content": "x\u0000"}, 400),
        ({"content": "x", "extra": 1}, 400),
        ({}, 400),
        ({"content": "x" * 200}, 413),
    ],
)
async def test_a_bad_or_too_big_delta_adds_nothing(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Any,
    database: Database,
    body: dict[str, Any],
    status: int,
) -> None:
    from support import app_client

    async with app_client(settings, database, max_message_bytes=150) as small:
        sid = await new_session(small, tenant)
        started = await start_answer(small, tenant, sid, "x" * 100)
        response = await small.post(
            f"/v1/sessions/{sid}/messages/{started['id']}/deltas",
            json=body,
            headers=tenant.headers,
        )
        assert_problem(response, status)
        assert (await read(small, tenant, sid, started["id"]))["content"] == "x" * 100
        # up to the limit exactly is fine
        assert (await delta(small, tenant, sid, started["id"], "y" * 50)).json()["length"] == 150


@pytest.mark.parametrize(
    "body",
    [
        {"status": "in_progress"},
        {"status": "completed", "content": "x\u0000"},
        {"status": "completed", "token_count": -1},
        {"status": "completed", "role": "user"},
        {"content": "no status"},
    ],
)
async def test_a_bad_close_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, body: dict[str, Any]
) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid, "so far")
    before = await stored(database)
    response = await client.patch(
        f"/v1/sessions/{sid}/messages/{started['id']}", json=body, headers=tenant.headers
    )
    assert_problem(response, 400)
    assert await stored(database) == before
    assert (await read(client, tenant, sid, started["id"]))["status"] == "in_progress"


async def test_a_close_over_the_size_limit_is_413(
    client: httpx.AsyncClient, tenant: Tenant, settings: Any, database: Database
) -> None:
    from support import app_client

    async with app_client(settings, database, max_message_bytes=150) as small:
        sid = await new_session(small, tenant)
        started = await start_answer(small, tenant, sid, "so far")
        assert_problem(await close(small, tenant, sid, started["id"], content="z" * 151), 413)
        assert (await read(small, tenant, sid, started["id"]))["status"] == "in_progress"


async def test_another_tenants_or_an_unknown_message_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid, "mine")
    other_sid = await new_session(client, other_tenant)

    assert_problem(await delta(client, other_tenant, sid, started["id"], "x"), 404)
    assert_problem(await close(client, other_tenant, sid, started["id"]), 404)
    assert_problem(await delta(client, other_tenant, other_sid, started["id"], "x"), 404)
    assert_problem(await delta(client, tenant, sid, "no-such-id", "x"), 404)
    assert_problem(await close(client, tenant, sid, "no-such-id"), 404)
    assert_problem(await close(client, tenant, "no-such-session", started["id"]), 404)
    assert (await read(client, tenant, sid, started["id"]))["content"] == "mine"


async def test_last_is_not_an_id_patch_answers_405_and_deltas_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    await start_answer(client, tenant, sid, "x")
    patched = await client.patch(
        f"/v1/sessions/{sid}/messages/last", json={"status": "completed"}, headers=tenant.headers
    )
    assert_problem(patched, 405)
    assert "DELETE" in patched.headers["allow"]
    assert_problem(await delta(client, tenant, sid, "last", "x"), 404)


async def test_concurrent_deltas_are_all_kept(client: httpx.AsyncClient, tenant: Tenant) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid)
    pieces = [f"<{n}>" for n in range(40)]

    acks = await asyncio.gather(*(delta(client, tenant, sid, started["id"], p) for p in pieces))

    assert [a.status_code for a in acks] == [200] * len(pieces)
    content = (await read(client, tenant, sid, started["id"]))["content"]
    assert sorted(content.replace(">", ">\n").split()) == sorted(pieces)
    # Each ack's length is where its piece ends in the text: applied whole, in one order.
    for piece, ack in zip(pieces, acks, strict=True):
        end = ack.json()["length"]
        assert content[end - len(piece) : end] == piece
    assert max(ack.json()["length"] for ack in acks) == len(content)


async def last_activity(database: Database, message_id: str) -> datetime:
    async with database.transaction(write=False) as tx:
        found = await tx.execute(
            select(messages.c.last_activity_at).where(messages.c.id == message_id)
        )
        return found.scalar_one()  # type: ignore[no-any-return]


async def test_a_silent_message_is_interrupted_keeping_its_text(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    sid = await new_session(client, tenant)
    silent = await start_answer(client, tenant, sid, "cut off mid-")
    alive = await start_answer(client, tenant, sid, "still ")
    version = (await session_of(client, tenant, sid))["version"]
    assert await interrupt_idle(database, idle_seconds=IDLE, now=utcnow()) == 0

    # The clock moves on to IDLE after the second one's last activity: only the first is silent.
    later = await last_activity(database, alive["id"]) + timedelta(seconds=IDLE)
    assert await interrupt_idle(database, idle_seconds=IDLE, now=later) == 1
    assert await interrupt_idle(database, idle_seconds=IDLE, now=later) == 0, "once only"

    now = await read(client, tenant, sid, silent["id"])
    assert (now["status"], now["content"]) == ("interrupted", "cut off mid-")
    assert (await read(client, tenant, sid, alive["id"]))["status"] == "in_progress"
    assert (await session_of(client, tenant, sid))["version"] == version + 1
    assert_problem(await delta(client, tenant, sid, silent["id"], "more"), 409)


async def test_the_background_sweep_runs_on_its_own_clock(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid, "partial")
    moments = [utcnow(), utcnow() + timedelta(seconds=IDLE + 1)]
    rounds: list[float] = []

    async def sleep(seconds: float) -> None:
        rounds.append(seconds)
        if len(rounds) > len(moments):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await interrupt_idle_periodically(
            database, IDLE, clock=lambda: moments[len(rounds) - 1], sleep=sleep
        )

    assert rounds == [5.0, 5.0, 5.0]
    assert (await read(client, tenant, sid, started["id"]))["status"] == "interrupted"


async def test_context_leaves_out_in_progress_and_keeps_interrupted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    await append(client, tenant, sid, "q1")
    cut = await start_answer(client, tenant, sid, "a1 (cut)")
    await close(client, tenant, sid, cut["id"], status="interrupted")
    await append(client, tenant, sid, "q2")
    await start_answer(client, tenant, sid, "a2 so f")

    context = (await client.get(f"/v1/sessions/{sid}/context", headers=tenant.headers)).json()

    assert [m["content"] for m in context["messages"]] == ["q1", "a1 (cut)", "q2"]


async def test_search_finds_a_message_once_it_is_closed(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    started = await start_answer(client, tenant, sid, "zanzibar ")

    async def found(word: str) -> list[str]:
        response = await client.get(f"/v1/search?q={word}", headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [hit["message_id"] for hit in response.json()["data"]]

    assert await found("zanzibar") == []
    await delta(client, tenant, sid, started["id"], "quokka")
    assert await found("quokka") == []
    await close(client, tenant, sid, started["id"])
    assert await found("zanzibar") == [started["id"]]
    assert await found("quokka") == [started["id"]]
    await client.delete(f"/v1/sessions/{sid}/messages?after_seq=0", headers=tenant.headers)
    assert await found("quokka") == []


async def test_an_export_carries_status_and_an_import_interrupts_in_progress(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    await append(client, tenant, sid, "q")
    await start_answer(client, tenant, sid, "so far")
    exported = (await client.get(f"/v1/sessions/{sid}/export", headers=tenant.headers)).json()
    assert [m["status"] for m in exported["messages"]] == ["completed", "in_progress"]

    imported = await client.post("/v1/sessions/import", json=exported, headers=tenant.headers)

    assert imported.status_code == 201, imported.text
    copy = imported.json()["id"]
    history = (await client.get(f"/v1/sessions/{copy}/messages", headers=tenant.headers)).json()
    assert [(m["status"], m["content"]) for m in history["data"]] == [
        ("completed", "q"),
        ("interrupted", "so far"),
    ]


@pytest.mark.sqlite_only
async def test_the_sqlite_search_index_matches_the_messages_after_every_kind_of_change(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    """FTS5's own integrity check compares the index with the texts of every message: once
    everything is closed and indexed, they must agree, whatever order things happened in
    (in-progress rows passed over by the indexer, closed below and above the watermark,
    grown, interrupted, deleted)."""
    sid = await new_session(client, tenant)
    early = await start_answer(client, tenant, sid, "early ")
    await append(client, tenant, sid, "plain words")
    await client.get("/v1/search?q=plain", headers=tenant.headers)  # indexes past `early`
    await delta(client, tenant, sid, early["id"], "grown")
    late = await start_answer(client, tenant, sid, "late ")
    await delta(client, tenant, sid, late["id"], "more")
    await close(client, tenant, sid, late["id"], content="replaced text")
    await close(client, tenant, sid, early["id"], status="interrupted")
    silent = await start_answer(client, tenant, sid, "silent")
    await client.get("/v1/search?q=plain", headers=tenant.headers)
    await interrupt_idle(database, idle_seconds=IDLE, now=utcnow() + timedelta(seconds=IDLE + 1))
    await start_answer(client, tenant, sid, "doomed")
    await client.delete(f"/v1/sessions/{sid}/messages/last", headers=tenant.headers)
    await client.get("/v1/search?q=plain", headers=tenant.headers)

    async with database.transaction() as tx:
        await tx.execute(
            text("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
        )
    for word, expected in (("grown", early), ("replaced", late), ("silent", silent)):
        response = await client.get(f"/v1/search?q={word}", headers=tenant.headers)
        assert [hit["message_id"] for hit in response.json()["data"]] == [expected["id"]]
    assert (await client.get("/v1/search?q=doomed", headers=tenant.headers)).json()["data"] == []


async def test_sweeps_running_at_once_interrupt_each_message_once(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    sessions = [await new_session(client, tenant) for _ in range(3)]
    for sid in sessions:
        for _ in range(2):
            await start_answer(client, tenant, sid, "x")
    versions = [(await session_of(client, tenant, sid))["version"] for sid in sessions]
    later = utcnow() + timedelta(seconds=IDLE + 1)

    counts = await asyncio.gather(
        *(interrupt_idle(database, idle_seconds=IDLE, now=later) for _ in range(4))
    )

    assert sum(counts) == 6
    after = [(await session_of(client, tenant, sid))["version"] for sid in sessions]
    assert after == [version + 1 for version in versions]


async def test_the_conversations_api_shows_a_streaming_answers_item_status(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    await start_answer(client, tenant, sid, "so far")
    cut = await start_answer(client, tenant, sid, "cut")
    await close(client, tenant, sid, cut["id"], status="interrupted")

    items = await client.get(f"/v1/conversations/{sid}/items?order=asc", headers=tenant.headers)

    assert items.status_code == 200, items.text
    assert [item["status"] for item in items.json()["data"]] == ["in_progress", "incomplete"]


async def test_a_retried_start_answers_the_message_as_it_is_now(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sid = await new_session(client, tenant)
    body = {"role": "assistant", "content": "", "status": "in_progress"}
    headers = {**tenant.headers, "Idempotency-Key": "answer-1"}
    first = await client.post(f"/v1/sessions/{sid}/messages", json=body, headers=headers)
    await delta(client, tenant, sid, first.json()["id"], "grown")

    again = await client.post(f"/v1/sessions/{sid}/messages", json=body, headers=headers)

    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert (again.json()["id"], again.json()["content"]) == (first.json()["id"], "grown")
    assert (await session_of(client, tenant, sid))["message_count"] == 1
