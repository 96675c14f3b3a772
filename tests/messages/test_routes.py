"""Messages over HTTP: append (one, batch, idempotent, conditional, concurrent), history,
one message, truncation (conditional too), pop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from chat_sessions.app import create_app
from chat_sessions.bounds import MAX_SEQ
from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import (
    Tenant,
    add_tool_call,
    append,
    assert_problem,
    count_rows,
    make_settings,
    new_session,
    stats,
)
from support import stored as everything_stored

KIB = 1024


async def append_many(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, count: int
) -> list[dict[str, Any]]:
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={
            "messages": [
                {"role": "user" if n % 2 else "assistant", "content": f"m{n}"}
                for n in range(1, count + 1)
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return list(response.json()["data"])


async def get_session(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def history(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/sessions/{session_id}/messages", params=params, headers=tenant.headers
    )


async def stored_messages(database: Database, session_id: str) -> int:
    return await count_rows(database, "messages", "session_id = :sid", sid=session_id)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- append -------------------------------------------------------------------------------


async def test_append_returns_the_message_with_seqs_1_2_3(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    first = await append(
        client,
        tenant,
        session_id,
        "Here is your itinerary",
        "assistant",
        name="planner",
        metadata={"model": "gpt-x", "latency_ms": 812},
        token_count=153,
    )
    second = await append(client, tenant, session_id)
    third = await append(client, tenant, session_id)

    assert [first["seq"], second["seq"], third["seq"]] == [1, 2, 3]
    assert first["session_id"] == session_id
    assert first["role"] == "assistant"
    assert first["content"] == "Here is your itinerary"
    assert first["name"] == "planner"
    assert first["metadata"] == {"model": "gpt-x", "latency_ms": 812}
    assert first["token_count"] == 153
    assert first["tool_calls"] is None
    assert first["tool_call_id"] is None
    assert uuid.UUID(first["id"]).version == 7
    assert first["created_at"].endswith(("Z", "+00:00"))
    assert not {"tenant_id", "idempotency_key", "request_hash"} & first.keys()
    assert len({first["id"], second["id"], third["id"]}) == 3


async def test_append_stores_assistant_tool_calls_and_tool_results(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    ]
    assistant = await append(client, tenant, session_id, "", "assistant", tool_calls=calls)
    tool = await append(client, tenant, session_id, "[]", "tool", tool_call_id="call_1")

    assert assistant["tool_calls"] == calls
    assert assistant["content"] == ""
    assert tool["tool_call_id"] == "call_1"


async def test_append_updates_the_sessions_counters_and_version(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    before = await get_session(client, tenant, session_id)

    await append(client, tenant, session_id)
    message = await append(client, tenant, session_id)
    after = await get_session(client, tenant, session_id)

    assert before["message_count"] == 0
    assert before["last_message_at"] is None
    assert after["message_count"] == 2
    assert when(after["last_message_at"]) == when(message["created_at"])
    assert when(after["updated_at"]) >= when(message["created_at"])
    assert when(after["updated_at"]) > when(before["updated_at"])
    assert after["version"] >= before["version"] + 2


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"role": "tool", "content": "42"}, id="tool-without-tool_call_id"),
        pytest.param(
            {"role": "user", "content": "hi", "tool_calls": [{"id": "c1", "type": "function"}]},
            id="tool_calls-on-user",
        ),
        pytest.param(
            {"role": "tool", "content": "x", "tool_call_id": "c1", "tool_calls": [{"id": "c1"}]},
            id="tool_calls-on-tool",
        ),
        pytest.param(
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]},
            id="tool_call-without-id",
        ),
        pytest.param({"role": "wizard", "content": "hi"}, id="unknown-role"),
        pytest.param({"role": "user"}, id="missing-content"),
        pytest.param({"role": "user", "content": 5}, id="content-not-a-string"),
        pytest.param({"role": "user", "content": "hi", "token_count": -1}, id="negative-tokens"),
        pytest.param({"role": "user", "content": "hi", "metadata": [1]}, id="metadata-not-object"),
    ],
)
async def test_append_refuses_an_invalid_message_with_400_and_stores_nothing(
    client, tenant: Tenant, database: Database, body: dict[str, Any]
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages", json=body, headers=tenant.headers
    )
    assert response.status_code == 400
    assert response.json()["detail"]
    assert await stored_messages(database, session_id) == 0
    assert (await get_session(client, tenant, session_id))["message_count"] == 0


async def test_append_to_an_unknown_or_foreign_session_is_404(
    client, tenant: Tenant, other_tenant: Tenant, database: Database
) -> None:
    theirs = await new_session(client, other_tenant)
    body = {"role": "user", "content": "hi"}
    unknown = await client.post(
        f"/v1/sessions/{uuid.uuid4()}/messages", json=body, headers=tenant.headers
    )
    foreign = await client.post(
        f"/v1/sessions/{theirs}/messages", json=body, headers=tenant.headers
    )
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()
    assert await count_rows(database, "messages") == 0


async def test_content_of_exactly_max_message_bytes_is_accepted(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    message = await append(client, tenant, session_id, content="x" * (256 * KIB))
    assert len(message["content"]) == 256 * KIB


@pytest.mark.parametrize(
    "content",
    ["x" * (256 * KIB + 1), "é" * (128 * KIB + 1)],  # 2 UTF-8 bytes each: counted in bytes
    ids=["ascii", "multibyte"],
)
async def test_content_over_max_message_bytes_is_413_and_nothing_is_stored(
    client, tenant: Tenant, database: Database, content: str
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": content},
        headers=tenant.headers,
    )
    assert response.status_code == 413
    assert response.json()["detail"]
    assert await stored_messages(database, session_id) == 0
    assert (await get_session(client, tenant, session_id))["message_count"] == 0


async def test_metadata_over_max_json_bytes_is_413_and_nothing_is_stored(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "hi", "metadata": {"blob": "x" * (64 * KIB)}},
        headers=tenant.headers,
    )
    assert response.status_code == 413
    assert await stored_messages(database, session_id) == 0


@pytest.fixture
async def small_limits_client(
    settings: Settings, database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The same database behind an app configured with small message and JSON limits."""
    small = make_settings(
        database_url=settings.database_url,
        database_path=settings.database_path,
        max_message_bytes=100,
        max_json_bytes=50,
    )
    transport = httpx.ASGITransport(app=create_app(small, database))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_configured_message_and_json_limits_are_enforced(
    client, small_limits_client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    url = f"/v1/sessions/{session_id}/messages"
    small = small_limits_client

    fits = await small.post(
        url, json={"role": "user", "content": "x" * 100}, headers=tenant.headers
    )
    too_long = await small.post(
        url, json={"role": "user", "content": "x" * 101}, headers=tenant.headers
    )
    too_much_metadata = await small.post(
        url,
        json={"role": "user", "content": "hi", "metadata": {"k": "v" * 50}},
        headers=tenant.headers,
    )
    assert fits.status_code == 201
    assert too_long.status_code == 413
    assert too_much_metadata.status_code == 413
    assert await stored_messages(database, session_id) == 1


# --- Idempotency-Key ----------------------------------------------------------------------


async def post_with_key(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_id: str,
    key: str,
    body: dict[str, Any],
    path: str = "messages",
) -> httpx.Response:
    return await client.post(
        f"/v1/sessions/{session_id}/{path}",
        json=body,
        headers={**tenant.headers, "Idempotency-Key": key},
    )


async def test_same_idempotency_key_and_body_replays_the_original_and_stores_nothing(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    body = {"role": "user", "content": "book a hotel", "metadata": {"a": 1}}
    first = await post_with_key(client, tenant, session_id, "req-1", body)
    session_after_first = await get_session(client, tenant, session_id)
    retry = await post_with_key(client, tenant, session_id, "req-1", body)

    assert first.status_code == retry.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert retry.json()["seq"] == first.json()["seq"] == 1
    assert retry.json() == first.json()
    assert await stored_messages(database, session_id) == 1
    assert await get_session(client, tenant, session_id) == session_after_first
    assert (await append(client, tenant, session_id))["seq"] == 2


async def test_quoted_idempotency_key_is_the_same_key_as_bare(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    body = {"role": "user", "content": "hi"}
    bare = await post_with_key(client, tenant, session_id, "k", body)
    quoted = await post_with_key(client, tenant, session_id, '"k"', body)

    assert quoted.status_code == 201
    assert quoted.headers["idempotent-replayed"] == "true"
    assert quoted.json()["id"] == bare.json()["id"]
    assert await stored_messages(database, session_id) == 1


async def test_same_idempotency_key_with_another_body_is_409(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    first = await post_with_key(client, tenant, session_id, "k", {"role": "user", "content": "a"})
    reused = await post_with_key(client, tenant, session_id, "k", {"role": "user", "content": "b"})

    assert first.status_code == 201
    assert reused.status_code == 409
    assert reused.json()["detail"]
    assert await stored_messages(database, session_id) == 1


async def test_idempotency_key_of_255_chars_is_accepted_and_of_256_is_400(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    body = {"role": "user", "content": "hi"}
    longest = await post_with_key(client, tenant, session_id, "k" * 255, body)
    too_long = await post_with_key(client, tenant, session_id, "k" * 256, body)
    empty_quoted = await post_with_key(client, tenant, session_id, '""', body)

    assert longest.status_code == 201
    assert too_long.status_code == 400
    assert empty_quoted.status_code == 400
    assert await stored_messages(database, session_id) == 1


async def test_same_idempotency_key_in_another_session_is_independent(
    client, tenant: Tenant, database: Database
) -> None:
    first_session = await new_session(client, tenant)
    second_session = await new_session(client, tenant)
    body = {"role": "user", "content": "hi"}
    first = await post_with_key(client, tenant, first_session, "k", body)
    second = await post_with_key(client, tenant, second_session, "k", body)

    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["session_id"] == second_session
    assert second.json()["seq"] == 1
    assert await stored_messages(database, first_session) == 1
    assert await stored_messages(database, second_session) == 1


async def test_batch_with_idempotency_key_replays_the_whole_batch(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    body = {"messages": [{"role": "user", "content": f"m{n}"} for n in range(3)]}
    first = await post_with_key(client, tenant, session_id, "batch-1", body, "messages/batch")
    retry = await post_with_key(client, tenant, session_id, "batch-1", body, "messages/batch")
    changed = await post_with_key(
        client, tenant, session_id, "batch-1", {"messages": body["messages"][:2]}, "messages/batch"
    )

    assert first.status_code == retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["data"] == first.json()["data"]
    assert [m["seq"] for m in retry.json()["data"]] == [1, 2, 3]
    assert changed.status_code == 409
    assert await stored_messages(database, session_id) == 3


async def test_batch_replay_after_a_truncation_answers_only_what_the_key_stored(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    body = {"messages": [{"role": "user", "content": f"batch {n}"} for n in range(3)]}
    first = await post_with_key(client, tenant, session_id, "k", body, "messages/batch")
    await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 1}, headers=tenant.headers
    )
    later = [await append(client, tenant, session_id, content=f"later {n}") for n in range(2)]

    retry = await post_with_key(client, tenant, session_id, "k", body, "messages/batch")

    assert [m["seq"] for m in later] == [2, 3]
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["data"] == first.json()["data"][:1]


async def test_32_concurrent_appends_with_one_idempotency_key_store_one_message(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    body = {"role": "user", "content": "once"}
    responses = await asyncio.gather(
        *(post_with_key(client, tenant, session_id, "twin", body) for _ in range(32))
    )

    assert [r.status_code for r in responses] == [201] * 32
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 31
    assert await stored_messages(database, session_id) == 1
    assert (await get_session(client, tenant, session_id))["message_count"] == 1


async def test_64_concurrent_appends_get_seqs_exactly_1_to_64(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/sessions/{session_id}/messages",
                json={"role": "user", "content": f"m{n}"},
                headers=tenant.headers,
            )
            for n in range(64)
        )
    )

    assert [r.status_code for r in responses] == [201] * 64
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 65))
    stored = (await history(client, tenant, session_id, limit=1000)).json()["data"]
    assert [m["seq"] for m in stored] == list(range(1, 65))
    assert await stored_messages(database, session_id) == 64
    assert (await get_session(client, tenant, session_id))["message_count"] == 64


# --- expected_last_seq --------------------------------------------------------------------


async def conditional_append(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, expected: int, path: str = ""
) -> httpx.Response:
    body: dict[str, Any] = {"role": "user", "content": "guarded"}
    if path == "/batch":
        body = {"messages": [body, body]}
    return await client.post(
        f"/v1/sessions/{session_id}/messages{path}",
        params={"expected_last_seq": expected},
        json=body,
        headers=tenant.headers,
    )


async def test_expected_last_seq_0_appends_to_an_empty_session(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    response = await conditional_append(client, tenant, session_id, 0)
    assert response.status_code == 201
    assert response.json()["seq"] == 1


async def test_expected_last_seq_that_matches_appends(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 2)
    response = await conditional_append(client, tenant, session_id, 2)
    assert response.status_code == 201
    assert response.json()["seq"] == 3


@pytest.mark.parametrize("path", ["", "/batch"], ids=["one", "batch"])
@pytest.mark.parametrize("expected", [0, 1, 3])
async def test_stale_expected_last_seq_is_412_and_nothing_changes(
    client, tenant: Tenant, database: Database, path: str, expected: int
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 2)
    before = await get_session(client, tenant, session_id)

    response = await conditional_append(client, tenant, session_id, expected, path)

    assert response.status_code == 412
    assert response.json()["detail"]
    assert await stored_messages(database, session_id) == 2
    assert await get_session(client, tenant, session_id) == before
    assert (await append(client, tenant, session_id))["seq"] == 3


async def test_negative_expected_last_seq_is_400(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    response = await conditional_append(client, tenant, session_id, -1)
    assert response.status_code == 400


# --- batch --------------------------------------------------------------------------------


async def test_batch_appends_with_consecutive_seqs_after_the_last(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id)
    stored = await append_many(client, tenant, session_id, 3)

    assert [m["seq"] for m in stored] == [2, 3, 4]
    assert [m["content"] for m in stored] == ["m1", "m2", "m3"]
    assert (await get_session(client, tenant, session_id))["message_count"] == 4


async def test_batch_of_500_is_stored_whole(client, tenant: Tenant, database: Database) -> None:
    session_id = await new_session(client, tenant)
    stored = await append_many(client, tenant, session_id, 500)
    assert [m["seq"] for m in stored] == list(range(1, 501))
    assert await stored_messages(database, session_id) == 500
    # SQLite stores a batch as several multi-row INSERTs (256 + 128 + ... + 4 rows): every
    # row must keep its own seq, role and content across those pieces.
    history = []
    for after in (0, 250):
        response = await client.get(
            f"/v1/sessions/{session_id}/messages",
            params={"after_seq": after, "limit": 250},
            headers=tenant.headers,
        )
        history += response.json()["data"]
    assert [(m["seq"], m["role"], m["content"]) for m in history] == [
        (n, "user" if n % 2 else "assistant", f"m{n}") for n in range(1, 501)
    ]
    assert [m["id"] for m in history] == [m["id"] for m in stored]


@pytest.mark.parametrize("size", [0, 501])
async def test_batch_of_0_or_501_messages_is_400(
    client, tenant: Tenant, database: Database, size: int
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [{"role": "user", "content": "m"}] * size},
        headers=tenant.headers,
    )
    assert response.status_code == 400
    assert await stored_messages(database, session_id) == 0


@pytest.mark.parametrize(
    ("bad", "status"),
    [
        ({"role": "tool", "content": "no tool_call_id"}, 400),
        ({"role": "robot", "content": "unknown role"}, 400),
        ({"role": "user", "content": "x" * (256 * KIB + 1)}, 413),
    ],
    ids=["tool-without-id", "unknown-role", "too-long"],
)
async def test_batch_with_one_invalid_message_stores_none_of_them(
    client, tenant: Tenant, database: Database, bad: dict[str, Any], status: int
) -> None:
    session_id = await new_session(client, tenant)
    good = {"role": "user", "content": "fine"}
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [good, good, bad, good]},
        headers=tenant.headers,
    )
    assert response.status_code == status
    assert await stored_messages(database, session_id) == 0
    assert (await get_session(client, tenant, session_id))["message_count"] == 0
    assert (await append(client, tenant, session_id))["seq"] == 1


async def test_batch_over_max_body_bytes_is_413_and_nothing_is_stored(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [{"role": "user", "content": "x" * (200 * KIB)}] * 6},
        headers=tenant.headers,
    )
    assert response.status_code == 413
    assert await stored_messages(database, session_id) == 0


# --- history ------------------------------------------------------------------------------


async def seqs(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [message["seq"] for message in response.json()["data"]]


async def test_history_is_ascending_by_default_and_descending_on_request(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 5)

    ascending = await history(client, tenant, session_id)
    assert await seqs(ascending) == [1, 2, 3, 4, 5]
    assert ascending.json()["next_cursor"] is None
    assert await seqs(await history(client, tenant, session_id, order="desc")) == [5, 4, 3, 2, 1]
    assert await seqs(await history(client, tenant, session_id, order="desc", limit=2)) == [5, 4]


async def test_history_filters_by_after_seq_before_seq_and_role(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 6)  # odd seqs user, even seqs assistant

    assert await seqs(await history(client, tenant, session_id, after_seq=4)) == [5, 6]
    assert await seqs(await history(client, tenant, session_id, before_seq=3)) == [1, 2]
    assert await seqs(await history(client, tenant, session_id, after_seq=1, before_seq=5)) == [
        2,
        3,
        4,
    ]
    assert await seqs(await history(client, tenant, session_id, role="user")) == [1, 3, 5]
    assert await seqs(
        await history(client, tenant, session_id, role="assistant", order="desc", after_seq=2)
    ) == [6, 4]
    assert await seqs(await history(client, tenant, session_id, role="system")) == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": "ten"},
        {"order": "sideways"},
        {"role": "wizard"},
        {"after_seq": -1},
    ],
    ids=str,
)
async def test_history_out_of_range_parameters_are_400(
    client, tenant: Tenant, params: dict[str, Any]
) -> None:
    session_id = await new_session(client, tenant)
    response = await history(client, tenant, session_id, **params)
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_history_limit_1_and_1000_are_accepted(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    assert await seqs(await history(client, tenant, session_id, limit=1)) == [1]
    assert await seqs(await history(client, tenant, session_id, limit=1000)) == [1, 2, 3]


async def walk(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        response = await history(client, tenant, session_id, **page_params)
        page = await seqs(response)
        assert len(page) <= params["limit"]
        seen += page
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_keyset_pages_walk_every_message_exactly_once(
    client, tenant: Tenant, order: str
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 23)

    walked = await walk(client, tenant, session_id, order=order, limit=5)
    expected = list(range(1, 24))
    assert walked == (expected if order == "asc" else expected[::-1])


async def test_keyset_pages_with_filters_walk_only_matching_messages(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 20)

    walked = await walk(client, tenant, session_id, role="user", after_seq=4, limit=3)
    assert walked == [5, 7, 9, 11, 13, 15, 17, 19]


async def test_messages_appended_between_pages_are_read_once_at_the_end(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 4)
    first = await history(client, tenant, session_id, limit=3)
    await append_many(client, tenant, session_id, 2)
    rest = await walk(client, tenant, session_id, limit=3, cursor=first.json()["next_cursor"])
    assert await seqs(first) + rest == [1, 2, 3, 4, 5, 6]


async def test_cursor_from_another_session_or_listing_is_400(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    other_session = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    await append_many(client, tenant, other_session, 3)
    cursor = (await history(client, tenant, session_id, limit=1)).json()["next_cursor"]
    assert cursor

    other = await history(client, tenant, other_session, limit=1, cursor=cursor)
    reversed_order = await history(client, tenant, session_id, limit=1, order="desc", cursor=cursor)
    assert other.status_code == 400
    assert reversed_order.status_code == 400


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "W10", "x" * 600])
async def test_garbage_cursor_is_400(client, tenant: Tenant, cursor: str) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 2)
    response = await history(client, tenant, session_id, cursor=cursor)
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_history_of_an_unknown_or_foreign_session_is_404(
    client, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await new_session(client, other_tenant)
    await append_many(client, other_tenant, theirs, 2)

    assert (await history(client, tenant, str(uuid.uuid4()))).status_code == 404
    assert (await history(client, tenant, theirs)).status_code == 404
    assert (await history(client, tenant, theirs, role="user")).status_code == 404


async def test_history_of_an_empty_session_is_an_empty_page(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    response = await history(client, tenant, session_id)
    assert response.status_code == 200
    assert response.json() == {"data": [], "next_cursor": None}


# --- one message --------------------------------------------------------------------------


async def test_get_one_message_returns_it_as_appended(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    appended = await append(client, tenant, session_id, metadata={"k": [1, 2]}, token_count=3)
    response = await client.get(
        f"/v1/sessions/{session_id}/messages/{appended['id']}", headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json() == appended


async def test_get_a_message_through_another_session_or_tenant_is_404(
    client, tenant: Tenant, other_tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    other_session = await new_session(client, tenant)
    message = await append(client, tenant, session_id)

    via_other_session = await client.get(
        f"/v1/sessions/{other_session}/messages/{message['id']}", headers=tenant.headers
    )
    via_other_tenant = await client.get(
        f"/v1/sessions/{session_id}/messages/{message['id']}", headers=other_tenant.headers
    )
    unknown = await client.get(
        f"/v1/sessions/{session_id}/messages/{uuid.uuid4()}", headers=tenant.headers
    )
    assert via_other_session.status_code == via_other_tenant.status_code == 404
    assert unknown.status_code == 404


# --- truncate -----------------------------------------------------------------------------


async def truncate(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> httpx.Response:
    return await client.delete(
        f"/v1/sessions/{session_id}/messages", params=params, headers=tenant.headers
    )


async def assert_emptied(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> None:
    """The session counts no messages, has no last message, and seqs restart at 1."""
    session = await get_session(client, tenant, session_id)
    assert session["message_count"] == 0
    assert session["last_message_at"] is None
    assert (await append(client, tenant, session_id))["seq"] == 1


async def test_truncate_deletes_messages_after_seq_and_appends_continue_from_what_remains(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    stored = await append_many(client, tenant, session_id, 5)
    before = await get_session(client, tenant, session_id)

    response = await truncate(client, tenant, session_id, after_seq=2)

    assert response.status_code == 200
    assert response.json() == {"deleted": 3}
    assert await stored_messages(database, session_id) == 2
    assert (
        await count_rows(database, "messages", "session_id = :sid AND seq > 2", sid=session_id) == 0
    )
    session = await get_session(client, tenant, session_id)
    assert session["message_count"] == 2
    assert when(session["last_message_at"]) == when(stored[1]["created_at"])
    assert session["version"] > before["version"]
    assert await seqs(await history(client, tenant, session_id)) == [1, 2]
    assert (await append(client, tenant, session_id))["seq"] == 3
    assert (await get_session(client, tenant, session_id))["message_count"] == 3


async def test_truncate_after_0_clears_the_history_and_seqs_restart_at_1(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)

    response = await truncate(client, tenant, session_id, after_seq=0)

    assert response.json() == {"deleted": 3}
    assert await stored_messages(database, session_id) == 0
    await assert_emptied(client, tenant, session_id)


async def test_truncate_after_the_last_seq_deletes_nothing(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    response = await truncate(client, tenant, session_id, after_seq=3)
    assert response.status_code == 200
    assert response.json() == {"deleted": 0}
    assert await stored_messages(database, session_id) == 3
    assert (await get_session(client, tenant, session_id))["message_count"] == 3


async def test_truncate_leaves_other_sessions_alone(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    other_session = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    await append_many(client, tenant, other_session, 3)
    await truncate(client, tenant, session_id, after_seq=0)
    assert await stored_messages(database, other_session) == 3


@pytest.mark.parametrize("params", [{}, {"after_seq": -1}, {"after_seq": "x"}], ids=str)
async def test_truncate_without_a_valid_after_seq_is_400_and_deletes_nothing(
    client, tenant: Tenant, database: Database, params: dict[str, Any]
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    response = await truncate(client, tenant, session_id, **params)
    assert response.status_code == 400
    assert await stored_messages(database, session_id) == 3


async def test_truncate_of_an_unknown_or_foreign_session_is_404(
    client, tenant: Tenant, other_tenant: Tenant, database: Database
) -> None:
    theirs = await new_session(client, other_tenant)
    await append_many(client, other_tenant, theirs, 2)
    assert (await truncate(client, tenant, str(uuid.uuid4()), after_seq=0)).status_code == 404
    assert (await truncate(client, tenant, theirs, after_seq=0)).status_code == 404
    assert await stored_messages(database, theirs) == 2


async def test_truncate_deletes_tool_calls_of_deleted_messages_by_cascade(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    stored = await append_many(client, tenant, session_id, 4)
    tool_calls = []
    for message in stored:
        response = await client.post(
            f"/v1/sessions/{session_id}/tool-calls",
            json={
                "tool_call_id": f"call_{message['seq']}",
                "tool_name": "search",
                "message_id": message["id"],
            },
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        tool_calls.append(response.json())
    unlinked = await client.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={"tool_call_id": "call_free", "tool_name": "search"},
        headers=tenant.headers,
    )
    assert unlinked.status_code == 201

    await truncate(client, tenant, session_id, after_seq=2)

    assert await count_rows(database, "tool_calls", "session_id = :sid", sid=session_id) == 3
    left = await client.get(f"/v1/sessions/{session_id}/tool-calls", headers=tenant.headers)
    assert [call["tool_call_id"] for call in left.json()["data"]] == [
        "call_1",
        "call_2",
        "call_free",
    ]


# --- conditional truncate and pop ---------------------------------------------------------


async def pop(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> httpx.Response:
    return await client.delete(
        f"/v1/sessions/{session_id}/messages/last", params=params, headers=tenant.headers
    )


async def with_tokens(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, *token_counts: int
) -> list[dict[str, Any]]:
    """Append one message per token count (10, 20, ...); the stored messages."""
    return [
        await append(client, tenant, session_id, f"m{n}", token_count=tokens)
        for n, tokens in enumerate(token_counts, start=1)
    ]


async def test_truncate_with_a_matching_expected_last_seq_deletes(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    response = await truncate(client, tenant, session_id, after_seq=1, expected_last_seq=3)
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2}
    assert await seqs(await history(client, tenant, session_id)) == [1]


async def remove(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, route: str, **params: Any
) -> httpx.Response:
    """A truncation after seq 1, or a pop, with `params`."""
    if route == "truncate":
        return await truncate(client, tenant, session_id, after_seq=1, **params)
    return await pop(client, tenant, session_id, **params)


STALE = [pytest.param(value, 412, id=f"stale-{value}") for value in ("0", "2", "4")]
BAD = [
    pytest.param(value, 400, id=f"bad-{value}")
    for value in ("1e3", "-1", "1.0", "x", "", str(MAX_SEQ + 1))
]


@pytest.mark.parametrize("route", ["truncate", "pop"])
@pytest.mark.parametrize(("value", "status"), STALE + BAD)
async def test_a_stale_expected_last_seq_is_412_a_bad_one_400_and_nothing_changes(
    client, tenant: Tenant, database: Database, route: str, value: str, status: int
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    before = await everything_stored(database)

    response = await remove(client, tenant, session_id, route, expected_last_seq=value)

    assert_problem(response, status)
    assert await everything_stored(database) == before
    assert await seqs(await history(client, tenant, session_id)) == [1, 2, 3]


async def test_expected_last_seq_after_a_truncation_is_the_highest_remaining_seq(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 5)
    await truncate(client, tenant, session_id, after_seq=2)
    stale = await truncate(client, tenant, session_id, after_seq=0, expected_last_seq=5)
    assert stale.status_code == 412
    assert (await pop(client, tenant, session_id, expected_last_seq=2)).json()["seq"] == 2


async def test_pop_removes_the_last_message_and_answers_it_as_it_was_read(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 2)
    last = await append(
        client,
        tenant,
        session_id,
        "calling",
        role="assistant",
        tool_calls=[{"id": "call_1", "type": "function", "function": {"name": "f"}}],
        metadata={"model": "m"},
        token_count=7,
    )
    read = await client.get(
        f"/v1/sessions/{session_id}/messages/{last['id']}", headers=tenant.headers
    )

    response = await pop(client, tenant, session_id)

    assert response.status_code == 200, response.text
    assert response.json() == read.json() == last
    gone = await client.get(
        f"/v1/sessions/{session_id}/messages/{last['id']}", headers=tenant.headers
    )
    assert gone.status_code == 404
    assert await seqs(await history(client, tenant, session_id)) == [1, 2]
    assert await stored_messages(database, session_id) == 2


async def test_pop_answers_content_parts_and_an_item_exactly_as_sent(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo"}},
    ]
    item = {"type": "message", "role": "user", "content": parts, "id": "msg_1"}
    sent = await append(client, tenant, session_id, parts, item=item)

    response = await pop(client, tenant, session_id)

    assert response.status_code == 200, response.text
    assert response.json() == sent
    assert (response.json()["content"], response.json()["item"]) == (parts, item)


async def test_pop_keeps_the_sessions_counters_stats_and_last_message_at_right(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    appended = await with_tokens(client, tenant, session_id, 10, 20, 30)
    before = await get_session(client, tenant, session_id)
    assert await stats(client, tenant) == {"sessions": 1, "messages": 3, "tokens": 60, "users": 0}

    assert (await pop(client, tenant, session_id)).json()["seq"] == 3

    session = await get_session(client, tenant, session_id)
    assert session["message_count"] == 2
    assert when(session["last_message_at"]) == when(appended[1]["created_at"])
    assert session["version"] == before["version"] + 1
    assert when(session["updated_at"]) >= when(before["updated_at"])
    assert await stats(client, tenant) == {"sessions": 1, "messages": 2, "tokens": 30, "users": 0}
    listed = await client.get("/v1/sessions", headers=tenant.headers)
    assert listed.json()["data"][0]["preview"] == "m2"


async def test_appends_after_a_pop_continue_from_the_highest_remaining_seq(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 3)
    await pop(client, tenant, session_id)
    assert (await append(client, tenant, session_id))["seq"] == 3
    for expected_seq in (3, 2, 1):
        assert (await pop(client, tenant, session_id)).json()["seq"] == expected_seq
    await assert_emptied(client, tenant, session_id)


async def test_pop_of_a_session_without_messages_is_404_and_changes_nothing(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    before = await everything_stored(database)
    body = assert_problem(await pop(client, tenant, session_id), 404)
    assert "no messages" in body["detail"]
    assert assert_problem(await pop(client, tenant, session_id, expected_last_seq=0), 404)
    assert await everything_stored(database) == before


async def test_pop_of_an_unknown_or_another_tenants_session_is_404(
    client, tenant: Tenant, other_tenant: Tenant, database: Database
) -> None:
    theirs = await new_session(client, other_tenant)
    await append_many(client, other_tenant, theirs, 2)
    before = await everything_stored(database)
    unknown = await pop(client, tenant, str(uuid.uuid4()))
    foreign = await pop(client, tenant, theirs)
    assert assert_problem(unknown, 404) == assert_problem(foreign, 404)
    assert await everything_stored(database) == before


async def test_pop_with_a_matching_expected_last_seq_pops(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 2)
    response = await pop(client, tenant, session_id, expected_last_seq=2)
    assert response.status_code == 200, response.text
    assert response.json()["seq"] == 2


async def test_pop_deletes_the_tool_calls_of_the_popped_message_by_cascade(
    client, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    first, second = await append_many(client, tenant, session_id, 2)
    await add_tool_call(client, tenant, session_id, first["id"])
    await add_tool_call(client, tenant, session_id, second["id"])
    await add_tool_call(client, tenant, session_id)

    await pop(client, tenant, session_id)

    assert await count_rows(database, "tool_calls", "session_id = :sid", sid=session_id) == 2
    assert await count_rows(database, "tool_calls", "message_id = :mid", mid=second["id"]) == 0


async def test_12_concurrent_pops_over_20_messages_answer_12_distinct_messages(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append_many(client, tenant, session_id, 20)
    responses = await asyncio.gather(*(pop(client, tenant, session_id) for _ in range(12)))
    assert [r.status_code for r in responses] == [200] * 12
    assert sorted(r.json()["seq"] for r in responses) == list(range(9, 21))
    assert await seqs(await history(client, tenant, session_id)) == list(range(1, 9))
    assert (await get_session(client, tenant, session_id))["message_count"] == 8
