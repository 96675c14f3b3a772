"""Tool calls over HTTP: create, lifecycle moves, listing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from support import Tenant, count_rows, new_session


async def new_message(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> str:
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "type": "function"}],
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def create(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={"tool_call_id": "call_1", "tool_name": "search", **body},
        headers=tenant.headers,
    )


async def new_tool_call(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **body: Any
) -> dict[str, Any]:
    response = await create(client, tenant, session_id, **body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def move(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, pk: str, **body: Any
) -> httpx.Response:
    return await client.patch(
        f"/v1/sessions/{session_id}/tool-calls/{pk}", json=body, headers=tenant.headers
    )


async def listing(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/sessions/{session_id}/tool-calls", params=params, headers=tenant.headers
    )


async def stored(client: httpx.AsyncClient, tenant: Tenant, session_id: str, pk: str) -> Any:
    """The tool call as the listing shows it now."""
    response = await listing(client, tenant, session_id, limit=100)
    assert response.status_code == 200
    (found,) = [call for call in response.json()["data"] if call["id"] == pk]
    return found


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- create -------------------------------------------------------------------------------


async def test_create_returns_a_pending_tool_call(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    response = await create(client, tenant, session_id, arguments={"q": "hotels", "n": [1, 2]})

    assert response.status_code == 201
    call = response.json()
    assert uuid.UUID(call["id"]).version == 7
    assert call["session_id"] == session_id
    assert call["message_id"] is None
    assert call["tool_call_id"] == "call_1"
    assert call["tool_name"] == "search"
    assert call["arguments"] == {"q": "hotels", "n": [1, 2]}
    assert call["status"] == "pending"
    assert call["result"] is None
    assert call["error"] is None
    assert call["duration_ms"] is None
    assert call["completed_at"] is None
    assert call["created_at"].endswith(("Z", "+00:00"))
    assert "tenant_id" not in call
    assert await stored(client, tenant, session_id, call["id"]) == call


async def test_create_without_arguments_stores_an_empty_object(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    assert (await new_tool_call(client, tenant, session_id))["arguments"] == {}


async def test_create_links_a_message_of_the_session(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    message_id = await new_message(client, tenant, session_id)
    call = await new_tool_call(client, tenant, session_id, message_id=message_id)
    assert call["message_id"] == message_id


async def test_create_with_an_unknown_or_other_sessions_message_is_404_and_stores_nothing(
    client, tenant: Tenant, other_tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    other_session = await new_session(client, tenant)
    other_sessions_message = await new_message(client, tenant, other_session)
    their_session = await new_session(client, other_tenant)
    their_message = await new_message(client, other_tenant, their_session)

    for message_id in (str(uuid.uuid4()), other_sessions_message, their_message):
        response = await create(client, tenant, session_id, message_id=message_id)
        assert response.status_code == 404
        assert response.json()["detail"]
    assert await count_rows(database, "tool_calls") == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"tool_call_id": "call_1"}, id="missing-tool_name"),
        pytest.param({"tool_name": "search"}, id="missing-tool_call_id"),
        pytest.param({"tool_call_id": "call_1", "tool_name": ""}, id="empty-tool_name"),
        pytest.param({"tool_call_id": "call_1", "tool_name": 7}, id="tool_name-not-a-string"),
        pytest.param({"tool_call_id": "c", "tool_name": "s", "status": "completed"}, id="status"),
    ],
)
async def test_create_with_an_invalid_body_is_400_and_stores_nothing(
    client, tenant: Tenant, database: Database, body: dict[str, Any]
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/tool-calls", json=body, headers=tenant.headers
    )
    assert response.status_code == 400
    assert await count_rows(database, "tool_calls") == 0


async def test_create_in_an_unknown_or_foreign_session_is_404(
    client, tenant: Tenant, other_tenant: Tenant, database: Database
) -> None:
    theirs = await new_session(client, other_tenant)
    assert (await create(client, tenant, str(uuid.uuid4()))).status_code == 404
    assert (await create(client, tenant, theirs)).status_code == 404
    assert await count_rows(database, "tool_calls") == 0


# --- lifecycle ----------------------------------------------------------------------------


async def test_pending_to_executing_to_completed_stores_the_outcome(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    call = await new_tool_call(client, tenant, session_id)

    executing = await move(client, tenant, session_id, call["id"], status="executing")
    assert executing.status_code == 200
    assert executing.json()["status"] == "executing"
    assert executing.json()["completed_at"] is None

    completed = await move(
        client,
        tenant,
        session_id,
        call["id"],
        status="completed",
        result={"hotels": ["A", "B"]},
        duration_ms=812,
    )
    assert completed.status_code == 200
    body = completed.json()
    assert body["status"] == "completed"
    assert body["result"] == {"hotels": ["A", "B"]}
    assert body["duration_ms"] == 812
    assert body["error"] is None
    assert when(body["completed_at"]) >= when(body["created_at"])
    assert body["arguments"] == call["arguments"]
    assert await stored(client, tenant, session_id, call["id"]) == body


async def test_pending_to_failed_stores_the_error_and_completes(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    call = await new_tool_call(client, tenant, session_id)

    failed = await move(
        client, tenant, session_id, call["id"], status="failed", error="timeout", duration_ms=30
    )

    assert failed.status_code == 200
    body = failed.json()
    assert body["status"] == "failed"
    assert body["error"] == "timeout"
    assert body["duration_ms"] == 30
    assert body["completed_at"] is not None
    assert await stored(client, tenant, session_id, call["id"]) == body


async def test_executing_to_failed_is_legal(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    call = await new_tool_call(client, tenant, session_id)
    await move(client, tenant, session_id, call["id"], status="executing")
    failed = await move(client, tenant, session_id, call["id"], status="failed", error="boom")
    assert failed.status_code == 200
    assert failed.json()["completed_at"] is not None


@pytest.mark.parametrize("result", ["plain text", 42, [1, 2], None], ids=repr)
async def test_pending_to_completed_directly_stores_any_json_result(
    client, tenant: Tenant, result: Any
) -> None:
    session_id = await new_session(client, tenant)
    call = await new_tool_call(client, tenant, session_id)

    completed = await move(
        client, tenant, session_id, call["id"], status="completed", result=result
    )

    assert completed.status_code == 200
    assert completed.json()["status"] == "completed"
    assert completed.json()["result"] == result
    assert completed.json()["completed_at"] is not None
    assert (await stored(client, tenant, session_id, call["id"]))["result"] == result


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        (["completed"], "executing"),
        (["executing"], "pending"),
        (["failed"], "completed"),
        (["completed"], "failed"),
        (["executing", "completed"], "executing"),
        ([], "pending"),
        (["executing"], "executing"),
        (["completed"], "completed"),
        (["failed"], "failed"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else f"to-{value}",
)
async def test_illegal_move_is_409_and_changes_nothing(
    client, tenant: Tenant, path: list[str], illegal: str
) -> None:
    session_id = await new_session(client, tenant)
    call = await new_tool_call(client, tenant, session_id)
    for status in path:
        response = await move(
            client, tenant, session_id, call["id"], status=status, result={"ok": True}
        )
        assert response.status_code == 200, response.text
    before = await stored(client, tenant, session_id, call["id"])

    response = await move(
        client,
        tenant,
        session_id,
        call["id"],
        status=illegal,
        result={"overwritten": True},
        error="overwritten",
        duration_ms=1,
    )

    assert response.status_code == 409
    assert response.json()["detail"]
    assert await stored(client, tenant, session_id, call["id"]) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"status": "done"}, id="unknown-status"),
        pytest.param({}, id="missing-status"),
        pytest.param({"status": "completed", "duration_ms": -1}, id="negative-duration"),
        pytest.param({"status": "completed", "error": 5}, id="error-not-a-string"),
    ],
)
async def test_invalid_patch_is_400_and_changes_nothing(
    client, tenant: Tenant, body: dict[str, Any]
) -> None:
    session_id = await new_session(client, tenant)
    call = await new_tool_call(client, tenant, session_id)
    response = await client.patch(
        f"/v1/sessions/{session_id}/tool-calls/{call['id']}", json=body, headers=tenant.headers
    )
    assert response.status_code == 400
    assert await stored(client, tenant, session_id, call["id"]) == call


async def test_patch_of_an_unknown_or_foreign_tool_call_is_404(
    client, tenant: Tenant, other_tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    other_session = await new_session(client, tenant)
    call = await new_tool_call(client, tenant, session_id)

    unknown = await move(client, tenant, session_id, str(uuid.uuid4()), status="executing")
    via_other_session = await move(client, tenant, other_session, call["id"], status="executing")
    via_other_tenant = await move(client, other_tenant, session_id, call["id"], status="executing")

    assert unknown.status_code == via_other_session.status_code == 404
    assert via_other_tenant.status_code == 404
    assert (await stored(client, tenant, session_id, call["id"]))["status"] == "pending"


# --- listing ------------------------------------------------------------------------------


async def test_list_is_in_creation_order_with_status_filter(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    calls = [
        await new_tool_call(client, tenant, session_id, tool_call_id=f"call_{n}") for n in range(5)
    ]
    await move(client, tenant, session_id, calls[1]["id"], status="executing")
    await move(client, tenant, session_id, calls[3]["id"], status="completed")
    await move(client, tenant, session_id, calls[4]["id"], status="executing")

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [call["tool_call_id"] for call in response.json()["data"]]

    everything = await listing(client, tenant, session_id)
    assert ids(everything) == [f"call_{n}" for n in range(5)]
    assert everything.json()["next_cursor"] is None
    assert ids(await listing(client, tenant, session_id, status="pending")) == ["call_0", "call_2"]
    assert ids(await listing(client, tenant, session_id, status="executing")) == [
        "call_1",
        "call_4",
    ]
    assert ids(await listing(client, tenant, session_id, status="completed")) == ["call_3"]
    assert ids(await listing(client, tenant, session_id, status="failed")) == []


async def test_list_pages_walk_every_tool_call_once_in_creation_order(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    created = [
        (await new_tool_call(client, tenant, session_id, tool_call_id=f"call_{n}"))["id"]
        for n in range(7)
    ]
    await move(client, tenant, session_id, created[2], status="failed")

    async def walk(**params: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page_params = {**params, **({"cursor": cursor} if cursor else {})}
            response = await listing(client, tenant, session_id, **page_params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["data"]) <= params["limit"]
            seen += [call["id"] for call in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert await walk(limit=2) == created
    assert await walk(limit=3, status="pending") == [pk for pk in created if pk != created[2]]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"limit": 0},
        {"limit": 101},
        {"cursor": "garbage"},
    ],
    ids=str,
)
async def test_list_with_invalid_parameters_is_400(
    client, tenant: Tenant, params: dict[str, Any]
) -> None:
    session_id = await new_session(client, tenant)
    await new_tool_call(client, tenant, session_id)
    response = await listing(client, tenant, session_id, **params)
    assert response.status_code == 400


async def test_list_cursor_from_another_filter_or_session_is_400(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    other_session = await new_session(client, tenant)
    for _ in range(3):
        await new_tool_call(client, tenant, session_id)
        await new_tool_call(client, tenant, other_session)
    cursor = (await listing(client, tenant, session_id, limit=1)).json()["next_cursor"]
    assert cursor

    assert (await listing(client, tenant, other_session, limit=1, cursor=cursor)).status_code == 400
    assert (
        await listing(client, tenant, session_id, limit=1, status="pending", cursor=cursor)
    ).status_code == 400


async def test_list_of_an_unknown_or_foreign_session_is_404(
    client, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await new_session(client, other_tenant)
    await new_tool_call(client, other_tenant, theirs)
    assert (await listing(client, tenant, str(uuid.uuid4()))).status_code == 404
    assert (await listing(client, tenant, theirs)).status_code == 404
    assert (await listing(client, tenant, theirs, status="pending")).status_code == 404
