"""The event stream's route in-process (what is answered before a stream begins), and the
after-commit hook that feeds streams: which writes announce which change, and that nothing is
announced for a write that failed. Streams themselves are read from real servers
(test_streams.py): the in-process client collects a whole response before returning it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import httpx
import pytest
from tests.db.test_failures import Refusal

from chat_sessions.db import Database
from chat_sessions.db.transaction import SessionChange
from support import Tenant, append, assert_problem, new_session


@pytest.fixture
def announced(database: Database) -> list[SessionChange]:
    """What the database's after-commit hook announces during the test."""
    heard: list[SessionChange] = []

    def listener(changes: Sequence[SessionChange]) -> None:
        heard.extend(changes)

    database.change_listeners.append(listener)
    return heard


async def test_a_stream_needs_a_key(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    response = await client.get(f"/v1/sessions/{session_id}/events")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_another_tenants_session_is_404_as_an_unknown_one(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    theirs = await client.get(f"/v1/sessions/{session_id}/events", headers=other_tenant.headers)
    unknown = await client.get("/v1/sessions/no-such-session/events", headers=tenant.headers)
    assert assert_problem(theirs, 404) == assert_problem(unknown, 404)


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?after_seq=-1", {}),
        ("?after_seq=1.0", {}),
        ("?after=3", {}),  # not a parameter of this route
        ("", {"Last-Event-ID": "not-ours"}),
        ("", {"Last-Event-ID": "1-1-_-1" + "0" * 100}),
    ],
)
async def test_bad_resumption_points_are_400(
    client: httpx.AsyncClient, tenant: Tenant, query: str, headers: dict[str, str]
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.get(
        f"/v1/sessions/{session_id}/events{query}", headers={**tenant.headers, **headers}
    )
    assert_problem(response, 400)


async def test_head_answers_the_streams_headers(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    response = await client.head(f"/v1/sessions/{session_id}/events", headers=tenant.headers)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"


async def test_the_openapi_document_names_the_route(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    operation = document["paths"]["/v1/sessions/{session_id}/events"]["get"]
    parameters = {parameter["name"] for parameter in operation["parameters"]}
    assert {"session_id", "after_seq", "Last-Event-ID"} <= parameters
    assert {"404", "429"} <= set(operation["responses"])
    assert set(operation["responses"]["200"]["content"]) == {"text/event-stream"}


async def test_writes_announce_their_session_after_commit(
    client: httpx.AsyncClient, tenant: Tenant, announced: list[SessionChange]
) -> None:
    session_id = await new_session(client, tenant)
    assert announced == []  # a new session has no stream yet
    await append(client, tenant, session_id, "one")
    answer = await append(client, tenant, session_id, "", "assistant", status="in_progress")
    path = f"/v1/sessions/{session_id}"
    await client.post(
        f"{path}/messages/{answer['id']}/deltas", json={"content": "x"}, headers=tenant.headers
    )
    await client.patch(
        f"{path}/messages/{answer['id']}", json={"status": "completed"}, headers=tenant.headers
    )
    await client.patch(path, json={"title": "t"}, headers=tenant.headers)
    await client.put(f"{path}/traits", json={"a": 1}, headers=tenant.headers)
    await append(client, tenant, session_id, "three")
    await client.delete(f"{path}/messages/last", headers=tenant.headers)
    await client.delete(f"{path}/messages", params={"after_seq": 1}, headers=tenant.headers)
    await client.delete(path, headers=tenant.headers)
    assert announced == [
        SessionChange(session_id),  # append
        SessionChange(session_id),  # in-progress append
        SessionChange(session_id),  # delta
        SessionChange(session_id),  # close
        SessionChange(session_id),  # PATCH
        SessionChange(session_id),  # PUT traits
        SessionChange(session_id),  # append
        SessionChange(session_id, truncated_after=2),  # pop of seq 3
        SessionChange(session_id, truncated_after=1),  # truncation
        SessionChange(session_id),  # delete
    ]


async def test_conversation_items_and_user_erasure_announce_too(
    client: httpx.AsyncClient, tenant: Tenant, announced: list[SessionChange]
) -> None:
    session_id = await new_session(client, tenant, user_id="u-1")
    added = await client.post(
        f"/v1/conversations/{session_id}/items",
        json={"items": [{"role": "user", "content": "hi"}, {"role": "user", "content": "2"}]},
        headers=tenant.headers,
    )
    first_item = added.json()["data"][0]["id"]
    item_path = f"/v1/conversations/{session_id}/items/{first_item}"
    await client.delete(item_path, headers=tenant.headers)
    await client.delete("/v1/users/u-1", headers=tenant.headers)
    assert announced == [
        SessionChange(session_id),
        SessionChange(session_id, truncated_after=0),  # seq 1 removed: the rest is sent again
        SessionChange(session_id),
    ]


async def test_a_write_that_fails_announces_nothing(
    client: httpx.AsyncClient, tenant: Tenant, announced: list[SessionChange]
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "one")
    announced.clear()
    stale = await client.post(
        f"/v1/sessions/{session_id}/messages?expected_last_seq=0",
        json={"role": "user", "content": "late"},
        headers=tenant.headers,
    )
    assert_problem(stale, 412)  # the append ran, then the request failed: rolled back
    patched = await client.patch(
        f"/v1/sessions/{session_id}",
        json={"title": "t"},
        headers={**tenant.headers, "If-Match": '"99"'},
    )
    assert_problem(patched, 412)
    assert announced == []


@pytest.mark.sqlite_only
async def test_a_commit_that_fails_announces_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, announced: list[SessionChange]
) -> None:
    """The change was noted (the append ran); its commit failed: no stream hears of it."""
    session_id = await new_session(client, tenant)
    writer = database.engine._links.writer.raw  # type: ignore[attr-defined]
    refusal = Refusal(writer, sqlite3.SQLITE_TRANSACTION, "COMMIT", times=1)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "lost"},
        headers=tenant.headers,
    )
    assert refusal.refused == 1 and response.status_code >= 500
    assert announced == []
    await append(client, tenant, session_id, "kept")
    assert announced == [SessionChange(session_id)]


async def test_a_failing_listener_does_not_fail_a_committed_write(
    client: httpx.AsyncClient,
    tenant: Tenant,
    database: Database,
    announced: list[SessionChange],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_changes: Sequence[SessionChange]) -> None:
        raise RuntimeError("a listener's bug")

    database.change_listeners.insert(0, broken)
    session_id = await new_session(client, tenant)
    stored = await append(client, tenant, session_id, "kept")  # 201, asserted
    assert stored["seq"] == 1
    assert announced == [SessionChange(session_id)]  # the others still hear of it
    assert "a listener of committed changes failed" in caplog.text
