"""The catch-up (events/follow.py) against the database, both engines: what a stream sends
after each kind of change, and what a resuming client gets. The streams of tests/events/
test_streams.py send exactly these events; here each case is made to happen directly."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from chat_sessions.errors import BadRequest
from chat_sessions.events.follow import PAGE, Follower, read_catch_up
from support import Tenant, append, new_session


async def catch_up(
    database: Database, follower: Follower, truncated_after: int | None = None
) -> list[tuple[str, Any]]:
    events = await read_catch_up(database, follower, truncated_after)
    return [(event.event or "", json.loads(str(event.data))) for event in events]


async def started(database: Database, tenant: Tenant, session_id: str) -> Follower:
    follower = Follower(tenant.id, session_id)
    async with database.transaction(write=False) as tx:
        await follower.start_from_now(tx)
    return follower


async def streaming_answer(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> str:
    message = await append(client, tenant, session_id, "", "assistant", status="in_progress")
    return str(message["id"])


async def delta(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, message_id: str, text: str
) -> None:
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/{message_id}/deltas",
        json={"content": text},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text


async def test_a_new_follower_sends_only_what_happens_from_then_on(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "before")
    follower = await started(database, tenant, session_id)
    assert await catch_up(database, follower) == []

    stored = await append(client, tenant, session_id, "after")
    events = await catch_up(database, follower)
    assert [kind for kind, _ in events] == ["message.created", "session.updated"]
    assert events[0][1]["content"] == "after" and events[0][1]["seq"] == 2
    assert events[0][1]["id"] == stored["id"]
    assert events[1][1]["message_count"] == 2
    assert await catch_up(database, follower) == []  # told once


async def test_an_answer_streams_as_created_deltas_and_updated(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    follower = await started(database, tenant, session_id)
    message_id = await streaming_answer(client, tenant, session_id)
    created = await catch_up(database, follower)
    assert created[0][0] == "message.created" and created[0][1]["status"] == "in_progress"

    await delta(client, tenant, session_id, message_id, "Hel")
    await delta(client, tenant, session_id, message_id, "lo")
    # Two deltas announced before the stream read: what they added, once, in order.
    assert await catch_up(database, follower) == [
        ("message.delta", {"id": message_id, "seq": 1, "delta": "Hello"})
    ]
    await delta(client, tenant, session_id, message_id, ", world")
    assert (await catch_up(database, follower))[0][1]["delta"] == ", world"

    closed = await client.patch(
        f"/v1/sessions/{session_id}/messages/{message_id}",
        json={"status": "completed"},
        headers=tenant.headers,
    )
    assert closed.status_code == 200
    events = await catch_up(database, follower)
    assert events[0][0] == "message.updated"
    assert events[0][1]["status"] == "completed" and events[0][1]["content"] == "Hello, world"


async def test_a_follower_started_mid_answer_gets_the_rest_of_it(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    message_id = await streaming_answer(client, tenant, session_id)
    await delta(client, tenant, session_id, message_id, "already there")
    follower = await started(database, tenant, session_id)
    await delta(client, tenant, session_id, message_id, " and more")
    assert await catch_up(database, follower) == [
        ("message.delta", {"id": message_id, "seq": 1, "delta": " and more"})
    ]


async def test_a_truncation_is_messages_deleted_then_what_follows_it(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    follower = await started(database, tenant, session_id)
    for n in range(4):
        await append(client, tenant, session_id, f"m{n + 1}")
    await catch_up(database, follower)
    truncated = await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 2}, headers=tenant.headers
    )
    assert truncated.json() == {"deleted": 2}
    regenerated = await append(client, tenant, session_id, "m3, again")
    events = await catch_up(database, follower, truncated_after=2)
    assert [kind for kind, _ in events] == [
        "messages.deleted",
        "message.created",
        "session.updated",
    ]
    assert events[0][1] == {"after_seq": 2}
    assert events[1][1]["id"] == regenerated["id"] and events[1][1]["seq"] == 3


async def test_a_removal_whose_announcement_was_lost_is_noticed_from_the_rows(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    follower = await started(database, tenant, session_id)
    answer_id = await streaming_answer(client, tenant, session_id)
    await append(client, tenant, session_id, "next")
    await catch_up(database, follower)
    # The in-progress answer (seq 1) keeps seq 2 unsettled; then both go and seq 2 is new.
    await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 0}, headers=tenant.headers
    )
    await append(client, tenant, session_id, "other 1")
    await append(client, tenant, session_id, "other 2")
    events = await catch_up(database, follower)  # no truncated_after: it was not heard
    assert events[0] == ("messages.deleted", {"after_seq": 0})
    assert [data["content"] for kind, data in events if kind == "message.created"] == [
        "other 1",
        "other 2",
    ]
    assert answer_id not in json.dumps(events)


async def test_resuming_mid_answer_sends_the_answer_as_it_is_now(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "question")
    follower = await started(database, tenant, session_id)
    message_id = await streaming_answer(client, tenant, session_id)
    await delta(client, tenant, session_id, message_id, "The first words")
    seen = await read_catch_up(database, follower, None)
    last_event_id = str(seen[-1].id)

    await delta(client, tenant, session_id, message_id, " and the rest")
    await append(client, tenant, session_id, "a follow-up", "user")
    resumed = Follower.resuming(tenant.id, session_id, last_event_id)
    events = await catch_up(database, resumed)
    created = [data for kind, data in events if kind == "message.created"]
    assert [(data["seq"], data["content"]) for data in created] == [
        (2, "The first words and the rest"),
        (3, "a follow-up"),
    ]
    assert events[-1][0] == "session.updated"  # it changed while the client was away
    assert await catch_up(database, resumed) == []


async def test_resuming_after_the_history_was_rewritten_below_starts_over(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    follower = await started(database, tenant, session_id)
    for n in range(3):
        await append(client, tenant, session_id, f"m{n + 1}")
    last_event_id = str((await read_catch_up(database, follower, None))[-1].id)
    await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 1}, headers=tenant.headers
    )
    for n in range(2):
        await append(client, tenant, session_id, f"new {n + 2}")
    events = await catch_up(database, Follower.resuming(tenant.id, session_id, last_event_id))
    assert events[0] == ("messages.deleted", {"after_seq": 0})
    created = [data["content"] for kind, data in events if kind == "message.created"]
    assert created == ["m1", "new 2", "new 3"]


async def test_after_seq_starts_after_that_seq(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    for n in range(3):
        await append(client, tenant, session_id, f"m{n + 1}")
    events = await catch_up(database, Follower(tenant.id, session_id, settled=1))
    assert [data["content"] for _, data in events] == ["m2", "m3"]


async def test_a_long_catch_up_is_sent_a_page_at_a_time(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    messages = [{"role": "user", "content": f"m{n}"} for n in range(PAGE * 2 + 5)]
    batch = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": messages},
        headers=tenant.headers,
    )
    assert batch.status_code == 201
    follower = Follower(tenant.id, session_id, settled=0)
    sent: list[str] = []
    for _ in range(4):
        sent += [data["content"] for kind, data in await catch_up(database, follower)]
        if follower.resume_from is None:
            break
    assert sent == [message["content"] for message in messages]


async def test_a_deleted_session_ends_the_follower(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    follower = await started(database, tenant, session_id)
    await client.delete(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert await catch_up(database, follower) == [("session.deleted", {"id": session_id})]
    assert follower.ended


async def test_event_ids_increase_and_resume_where_they_were(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    follower = await started(database, tenant, session_id)
    for n in range(3):
        await append(client, tenant, session_id, f"m{n}")
    events = await read_catch_up(database, follower, None)
    counts = [int(str(event.id).split("-")[0]) for event in events]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    resumed = Follower.resuming(tenant.id, session_id, str(events[-1].id))
    assert resumed.count == counts[-1] and resumed.settled == 3


@pytest.mark.parametrize("bad", ["", "12", "1-2-3", "a-1-_-1", "1-1-xyz-1", "1-1-_-1-9"])
def test_an_event_id_this_service_did_not_send_is_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        Follower.resuming("t", "s", bad)


async def test_pages_behind_an_answer_still_streaming_are_each_sent_once(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    """The streaming answer keeps every later message unsettled: the next page must not take
    them for gone."""
    session_id = await new_session(client, tenant)
    answer = {"role": "assistant", "content": "so far", "status": "in_progress"}
    rest = [{"role": "user", "content": f"m{n}"} for n in range(PAGE * 2)]
    batch = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [answer, *rest]},
        headers=tenant.headers,
    )
    assert batch.status_code == 201, batch.text
    follower = Follower(tenant.id, session_id, settled=0)
    events: list[tuple[str, Any]] = []
    for _ in range(5):
        events += await catch_up(database, follower)
        if follower.resume_from is None:
            break
    assert [kind for kind, _ in events if kind != "session.updated"] == ["message.created"] * (
        PAGE * 2 + 1
    )
    assert [data["content"] for kind, data in events if kind == "message.created"] == [
        "so far",
        *(message["content"] for message in rest),
    ]
