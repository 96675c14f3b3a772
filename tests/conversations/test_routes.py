"""/v1/conversations over plain HTTP: conversations and sessions are one store (an item is a
message, a message an item), and every error of these routes, and only of these, is in
OpenAI's shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from openai_sdk import answered
from support import Tenant, append, assert_problem, new_session, stored

CALL = {
    "type": "function_call",
    "call_id": "call_7",
    "name": "weather",
    "arguments": '{"city": "Lisbon"}',
    "status": "completed",
}
OUTPUT = {"type": "function_call_output", "call_id": "call_7", "output": "sunny, 24 C"}


async def create(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/conversations", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def items(
    client: httpx.AsyncClient, tenant: Tenant, conversation_id: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(
        f"/v1/conversations/{conversation_id}/items", params=params, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


async def test_a_message_appended_through_sessions_is_a_message_item(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    message = await append(client, tenant, session_id, "Hola", role="user")
    page = await items(client, tenant, session_id)
    assert page == {
        "object": "list",
        "data": [
            {
                "id": message["id"],
                "type": "message",
                "status": "completed",
                "role": "user",
                # String content as one text part, as OpenAI answers it.
                "content": [{"type": "input_text", "text": "Hola"}],
            }
        ],
        "first_id": message["id"],
        "last_id": message["id"],
        "has_more": False,
    }


async def test_a_message_with_another_frameworks_item_is_a_message_item(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    event = {"author": "planner", "actions": {"state_delta": {"step": 2}}}
    message = await append(client, tenant, session_id, "Step 2", role="assistant", item=event)
    (item,) = (await items(client, tenant, session_id))["data"]
    assert item == {
        "id": message["id"],
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Step 2"}],
    }


async def test_items_are_messages_with_derived_role_content_and_tool_calls(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sent = [
        {"role": "system", "content": "You are terse."},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Weather?"}],
        },
        CALL,
        OUTPUT,
        {"type": "reasoning", "summary": [], "encrypted_content": "opaque=="},
        {"role": "assistant", "content": "Sunny."},
    ]
    conversation = await create(client, tenant, items=sent)
    response = await client.get(
        f"/v1/sessions/{conversation['id']}/messages", headers=tenant.headers
    )
    messages = response.json()["data"]
    assert [(m["role"], m["item"]) for m in messages] == [
        ("system", sent[0]),
        ("user", sent[1]),
        ("assistant", CALL),
        ("tool", OUTPUT),
        ("assistant", sent[4]),
        ("assistant", sent[5]),
    ]
    assert messages[2]["content"] == "" and messages[4]["content"] == ""
    assert messages[2]["tool_calls"] == [
        {
            "id": "call_7",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'},
        }
    ]
    assert (messages[3]["tool_call_id"], messages[3]["content"]) == ("call_7", "sunny, 24 C")

    context = await client.get(f"/v1/sessions/{conversation['id']}/context", headers=tenant.headers)
    assert context.status_code == 200, context.text
    chat = context.json()["messages"]
    assert [m["role"] for m in chat] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "assistant",
    ]
    assert chat[2]["tool_calls"] == messages[2]["tool_calls"]
    assert chat[3]["tool_call_id"] == "call_7"

    # And back: each item as it was sent, with the message's id (string content as a part).
    listed = (await items(client, tenant, conversation["id"], order="asc"))["data"]
    assert [item["id"] for item in listed] == [m["id"] for m in messages]
    assert listed[2] == {**CALL, "id": messages[2]["id"]}
    assert listed[1] == {**sent[1], "id": messages[1]["id"], "status": "completed"}
    assert listed[0] == {
        **answered(sent[0]),
        "id": messages[0]["id"],
        "type": "message",
        "status": "completed",
    }


async def test_metadata_is_the_sessions_traits_read_as_strings(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    conversation = await create(client, tenant, metadata={"plan": "pro"})
    session = await client.get(f"/v1/sessions/{conversation['id']}", headers=tenant.headers)
    assert session.json()["traits"] == {"plan": "pro"}
    session_id = await new_session(client, tenant, traits={"n": 3, "tags": ["a"], "s": "x"})
    got = await client.get(f"/v1/conversations/{session_id}", headers=tenant.headers)
    assert got.json()["metadata"] == {"n": "3", "tags": '["a"]', "s": "x"}


async def test_a_bad_key_is_401_in_openais_shape_here_and_a_problem_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    bad = {"Authorization": "Bearer nope"}
    for method, path in (
        ("POST", "/v1/conversations"),
        ("GET", "/v1/conversations/x"),
        ("GET", "/v1/conversations/x/items"),
        ("DELETE", "/v1/conversations/x/items/y"),
    ):
        response = await client.request(
            method, path, headers=bad, json={} if method == "POST" else None
        )
        error = assert_openai_error(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert error["code"] == "invalid_api_key"
    assert_problem(await client.get("/v1/sessions", headers=bad), 401)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "newest"}, "order"),
        ({"after": "0192f6c5-0000-7000-8000-000000000000"}, "after"),
    ],
)
async def test_a_bad_listing_parameter_is_400_naming_it(
    client: httpx.AsyncClient, tenant: Tenant, params: dict[str, Any], param: str
) -> None:
    conversation = await create(client, tenant, items=[{"role": "user", "content": "x"}])
    response = await client.get(
        f"/v1/conversations/{conversation['id']}/items", params=params, headers=tenant.headers
    )
    assert assert_openai_error(response, 400)["param"] == param


async def test_include_is_accepted_with_or_without_brackets(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    conversation = await create(client, tenant)
    base = f"/v1/conversations/{conversation['id']}/items"
    for name in ("include", "include[]"):
        query = {name: ["reasoning.encrypted_content", "message.output_text.logprobs"]}
        added = await client.post(
            base, params=query, json={"items": [CALL]}, headers=tenant.headers
        )
        assert added.status_code == 200, added.text
        item_id = added.json()["data"][0]["id"]
        assert (await client.get(base, params=query, headers=tenant.headers)).status_code == 200
        one = await client.get(f"{base}/{item_id}", params=query, headers=tenant.headers)
        assert one.status_code == 200, one.text


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"items": [], "items": []}', "application/json", 400),
        (b'{"items": "x"}', "application/json", 400),
        (b'{"metadata": {}, "title": "unknown field"}', "application/json", 400),
        (b"not json", "application/json", 400),
        (b"{}", "text/plain", 415),
    ],
    ids=["duplicate key", "wrong type", "unknown field", "malformed", "not JSON"],
)
async def test_a_malformed_body_is_refused_in_openais_shape(
    client: httpx.AsyncClient,
    database: Database,
    tenant: Tenant,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    before = await stored(database)
    response = await client.post(
        "/v1/conversations",
        content=body,
        headers={**tenant.headers, "Content-Type": content_type},
    )
    assert_openai_error(response, status)
    assert await stored(database) == before


async def test_an_empty_items_request_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    conversation = await create(client, tenant)
    response = await client.post(
        f"/v1/conversations/{conversation['id']}/items", json={"items": []}, headers=tenant.headers
    )
    assert assert_openai_error(response, 400)["param"] == "items"


async def test_parallel_function_calls_are_one_assistant_message_in_the_context(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The Responses API answers parallel calls as one function_call item each; a
    chat-completions prompt needs them in one assistant message, followed by their outputs."""
    calls = [
        {**CALL, "call_id": f"call_{city}", "arguments": f'{{"city": "{city}"}}'}
        for city in ("lisbon", "porto")
    ]
    outputs = [{**OUTPUT, "call_id": call["call_id"]} for call in calls]
    conversation = await create(
        client,
        tenant,
        items=[{"role": "user", "content": "Weather in both?"}, *calls, *outputs],
    )
    context = await client.get(f"/v1/sessions/{conversation['id']}/context", headers=tenant.headers)
    chat = context.json()["messages"]
    assert [m["role"] for m in chat] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in chat[1]["tool_calls"]] == ["call_lisbon", "call_porto"]
    assert [m["tool_call_id"] for m in chat[2:]] == ["call_lisbon", "call_porto"]


async def test_the_openapi_document_states_openais_limits(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    paths = document["paths"]
    assert set(paths["/v1/conversations/{conversation_id}"]) >= {"get", "post", "delete"}
    listing = paths["/v1/conversations/{conversation_id}/items"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"after", "limit", "order", "include"}
    metadata = document["components"]["schemas"]["ConversationCreate"]["properties"]["metadata"]
    assert metadata["maxProperties"] == 16
    assert metadata["oneOf"][0]["propertyNames"]["maxLength"] == 64
    assert metadata["oneOf"][0]["additionalProperties"]["maxLength"] == 512
    items = document["components"]["schemas"]["ItemsCreate"]["properties"]["items"]
    assert (items["minItems"], items["maxItems"]) == (1, 20)


async def test_an_item_over_max_message_bytes_is_413_naming_it(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    conversation = await create(client, tenant)
    before = await stored(database)
    huge = {"type": "reasoning", "encrypted_content": "x" * (256 * 1024)}
    response = await client.post(
        f"/v1/conversations/{conversation['id']}/items",
        json={"items": [{"role": "user", "content": "fine"}, huge]},
        headers=tenant.headers,
    )
    assert assert_openai_error(response, 413)["message"].startswith("items[1]: ")
    assert await stored(database) == before
