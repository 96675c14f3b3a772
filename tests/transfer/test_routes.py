"""Export and import over HTTP: a session travels as one document and comes back whole, under
new ids, in the importing tenant; a bad document stores nothing."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from support import Tenant, count_rows

FORMAT = "chat-sessions.v1"
SESSION_FIELDS = (
    "user_id",
    "title",
    "traits",
    "status",
    "result",
    "error",
    "message_count",
)
SESSION_TIMES = ("created_at", "updated_at", "last_message_at")
MESSAGE_FIELDS = ("seq", "role", "content", "name", "tool_calls", "tool_call_id", "metadata")
TOOL_CALL_FIELDS = (
    "tool_call_id",
    "tool_name",
    "arguments",
    "status",
    "result",
    "error",
    "duration_ms",
)


def when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def build_session(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """A session with every kind of content an export has to carry."""
    session = await ok(
        await client.post(
            "/v1/sessions",
            json={
                "user_id": "traveller-7",
                "title": "Trip to Lisbon",
                "traits": {"plan": "pro", "locale": "pt-PT", "tags": ["a", "b"], "n": {"x": 1}},
            },
            headers=tenant.headers,
        ),
        201,
    )
    session_id = session["id"]
    url = f"/v1/sessions/{session_id}/messages"
    await ok(
        await client.post(
            f"{url}/batch",
            json={
                "messages": [
                    {"role": "system", "content": "You are a travel agent.", "token_count": 6},
                    {
                        "role": "user",
                        "content": "Find hotels in Lisbon — ünïcödé ✈",
                        "name": "ana",
                        "metadata": {"client": "web", "ip_country": "PT"},
                        "token_count": 9,
                    },
                ]
            },
            headers=tenant.headers,
        ),
        201,
    )
    assistant = await ok(
        await client.post(
            url,
            json={
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"q":"hotels"}'},
                    }
                ],
                "metadata": {"model": "gpt-x", "latency_ms": 812},
                "token_count": 21,
            },
            headers=tenant.headers,
        ),
        201,
    )
    await ok(
        await client.post(
            url,
            json={
                "role": "tool",
                "content": '{"hotels": ["Avenida", "Bairro"]}',
                "name": "search",
                "tool_call_id": "call_1",
            },
            headers=tenant.headers,
        ),
        201,
    )
    await ok(
        await client.post(
            url,
            json={"role": "assistant", "content": "Avenida or Bairro?", "token_count": 5},
            headers=tenant.headers,
        ),
        201,
    )
    tool_calls_url = f"/v1/sessions/{session_id}/tool-calls"
    done = await ok(
        await client.post(
            tool_calls_url,
            json={
                "tool_call_id": "call_1",
                "tool_name": "search",
                "arguments": {"q": "hotels"},
                "message_id": assistant["id"],
            },
            headers=tenant.headers,
        ),
        201,
    )
    await ok(
        await client.patch(
            f"{tool_calls_url}/{done['id']}",
            json={"status": "completed", "result": {"hotels": 2}, "duration_ms": 120},
            headers=tenant.headers,
        )
    )
    await ok(
        await client.post(
            tool_calls_url,
            json={"tool_call_id": "call_2", "tool_name": "weather"},
            headers=tenant.headers,
        ),
        201,
    )
    await ok(
        await client.patch(
            f"/v1/sessions/{session_id}",
            json={"status": "completed", "result": "booked"},
            headers=tenant.headers,
        )
    )
    return str(session_id)


async def export(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    return dict(
        await ok(await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers))
    )


async def import_document(
    client: httpx.AsyncClient, tenant: Tenant, document: dict[str, Any]
) -> httpx.Response:
    return await client.post("/v1/sessions/import", json=document, headers=tenant.headers)


async def stored(database: Database, tenant: Tenant | None = None) -> tuple[int, int, int]:
    where, params = ("tenant_id = :tenant", {"tenant": tenant.id}) if tenant else ("", {})
    return (
        await count_rows(database, "sessions", where, **params),
        await count_rows(database, "messages", where, **params),
        await count_rows(database, "tool_calls", where, **params),
    )


def assert_same_contents(original: dict[str, Any], copied: dict[str, Any]) -> None:
    """Two export documents hold the same session, whatever the ids."""
    assert copied["format"] == FORMAT
    for field in SESSION_FIELDS:
        assert copied["session"][field] == original["session"][field], field
    for field in SESSION_TIMES:
        assert when(copied["session"][field]) == when(original["session"][field]), field

    assert len(copied["messages"]) == len(original["messages"])
    new_message_id = {}
    for before, after in zip(original["messages"], copied["messages"], strict=True):
        for field in MESSAGE_FIELDS:
            assert after[field] == before[field], (before["seq"], field)
        assert after.get("token_count") == before.get("token_count")
        assert when(after["created_at"]) == when(before["created_at"])
        assert after["id"] != before["id"]
        assert after["session_id"] == copied["session"]["id"]
        new_message_id[before["id"]] = after["id"]

    assert len(copied["tool_calls"]) == len(original["tool_calls"])
    for before, after in zip(original["tool_calls"], copied["tool_calls"], strict=True):
        for field in TOOL_CALL_FIELDS:
            assert after[field] == before[field], field
        for field in ("created_at", "completed_at"):
            assert when(after[field]) == when(before[field]), field
        assert after["id"] != before["id"]
        assert after["session_id"] == copied["session"]["id"]
        expected = None if before["message_id"] is None else new_message_id[before["message_id"]]
        assert after["message_id"] == expected


# --- export ---------------------------------------------------------------------------------


async def test_export_holds_the_session_its_messages_in_seq_order_and_its_tool_calls(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await build_session(client, tenant)

    document = await export(client, tenant, session_id)

    assert document["format"] == FORMAT
    session = await ok(await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers))
    assert document["session"] == session
    history = await ok(
        await client.get(f"/v1/sessions/{session_id}/messages", headers=tenant.headers)
    )
    assert document["messages"] == history["data"]
    assert [message["seq"] for message in document["messages"]] == [1, 2, 3, 4, 5]
    calls = await ok(
        await client.get(f"/v1/sessions/{session_id}/tool-calls", headers=tenant.headers)
    )
    assert document["tool_calls"] == calls["data"]
    assert [call["tool_call_id"] for call in document["tool_calls"]] == ["call_1", "call_2"]


async def test_export_of_another_tenants_session_is_404_like_a_missing_one(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    session_id = await build_session(client, tenant)

    theirs = await client.get(f"/v1/sessions/{session_id}/export", headers=other_tenant.headers)
    missing = await client.get(
        "/v1/sessions/0192f6c5-0000-7000-8000-000000000000/export", headers=other_tenant.headers
    )

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()


# --- import ---------------------------------------------------------------------------------


async def test_import_recreates_the_session_under_new_ids_with_the_same_contents(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    original_id = await build_session(client, tenant)
    original = await export(client, tenant, original_id)

    response = await import_document(client, tenant, original)

    created = await ok(response, 201)
    assert created["id"] != original_id
    assert response.headers["location"].endswith(f"/v1/sessions/{created['id']}")
    for field in SESSION_FIELDS:
        assert created[field] == original["session"][field], field
    copied = await export(client, tenant, created["id"])
    assert_same_contents(original, copied)
    assert await export(client, tenant, original_id) == original


async def test_import_by_another_tenant_lands_in_that_tenant_and_leaves_the_original_alone(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    original_id = await build_session(client, tenant)
    original = await export(client, tenant, original_id)
    before = await stored(database, tenant)

    created = await ok(await import_document(client, other_tenant, original), 201)

    copied = await export(client, other_tenant, created["id"])
    assert_same_contents(original, copied)
    assert await stored(database, other_tenant) == (1, 5, 2)
    assert await stored(database, tenant) == before
    assert await export(client, tenant, original_id) == original
    response = await client.get(f"/v1/sessions/{created['id']}", headers=tenant.headers)
    assert response.status_code == 404
    response = await client.get(f"/v1/sessions/{original_id}", headers=other_tenant.headers)
    assert response.status_code == 404


async def test_import_twice_gives_two_independent_sessions(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    original = await export(client, tenant, await build_session(client, tenant))

    first = await ok(await import_document(client, tenant, original), 201)
    second = await ok(await import_document(client, tenant, original), 201)

    assert first["id"] != second["id"]
    first_ids = {m["id"] for m in (await export(client, tenant, first["id"]))["messages"]}
    second_ids = {m["id"] for m in (await export(client, tenant, second["id"]))["messages"]}
    assert first_ids.isdisjoint(second_ids)


async def test_appends_after_import_continue_after_the_highest_imported_seq(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    document = await export(client, tenant, await build_session(client, tenant))
    # a gap, as an edited history may have: seqs 1, 2, 5 (the tool exchange left out)
    document["messages"] = [m for m in document["messages"] if m["seq"] not in (3, 4)]
    document["tool_calls"] = []

    created = await ok(await import_document(client, tenant, document), 201)
    response = await client.post(
        f"/v1/sessions/{created['id']}/messages",
        json={"role": "user", "content": "next"},
        headers=tenant.headers,
    )

    assert (await ok(response, 201))["seq"] == 6
    history = await ok(
        await client.get(f"/v1/sessions/{created['id']}/messages", headers=tenant.headers)
    )
    assert [m["seq"] for m in history["data"]] == [1, 2, 5, 6]


async def test_import_of_an_empty_session_then_appends_start_at_seq_1(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session = await ok(
        await client.post("/v1/sessions", json={"title": "empty"}, headers=tenant.headers), 201
    )
    document = await export(client, tenant, session["id"])

    created = await ok(await import_document(client, tenant, document), 201)
    assert created["title"] == "empty"
    assert created["message_count"] == 0
    response = await client.post(
        f"/v1/sessions/{created['id']}/messages",
        json={"role": "user", "content": "first"},
        headers=tenant.headers,
    )
    assert (await ok(response, 201))["seq"] == 1


# --- bad documents store nothing ------------------------------------------------------------


def broken_documents() -> list[tuple[str, Any]]:
    def unknown_format(doc: dict[str, Any]) -> None:
        doc["format"] = "chat-sessions.v0"

    def duplicate_seqs(doc: dict[str, Any]) -> None:
        doc["messages"][-1]["seq"] = doc["messages"][0]["seq"]

    def duplicate_message_ids(doc: dict[str, Any]) -> None:
        doc["messages"][-1]["id"] = doc["messages"][0]["id"]

    def tool_message_without_tool_call_id(doc: dict[str, Any]) -> None:
        (tool,) = [m for m in doc["messages"] if m["role"] == "tool"]
        tool["tool_call_id"] = None

    def tool_call_naming_a_foreign_message(doc: dict[str, Any]) -> None:
        doc["tool_calls"][0]["message_id"] = "0192f6c5-0000-7000-8000-000000000000"

    def zero_seq(doc: dict[str, Any]) -> None:
        doc["messages"][0]["seq"] = 0

    def unknown_role(doc: dict[str, Any]) -> None:
        doc["messages"][-1]["role"] = "wizard"

    def traits_not_an_object(doc: dict[str, Any]) -> None:
        doc["session"]["traits"] = ["a", "b"]

    def no_format(doc: dict[str, Any]) -> None:
        del doc["format"]

    return [
        (fn.__name__, fn)
        for fn in (
            unknown_format,
            duplicate_seqs,
            duplicate_message_ids,
            tool_message_without_tool_call_id,
            tool_call_naming_a_foreign_message,
            zero_seq,
            unknown_role,
            traits_not_an_object,
            no_format,
        )
    ]


@pytest.mark.parametrize(
    "breakage", [fn for _, fn in broken_documents()], ids=[name for name, _ in broken_documents()]
)
async def test_a_broken_document_is_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, breakage: Any
) -> None:
    document = copy.deepcopy(await export(client, tenant, await build_session(client, tenant)))
    breakage(document)
    before = await stored(database)

    response = await import_document(client, tenant, document)

    assert response.status_code == 400, response.text
    assert "detail" in response.json()
    assert await stored(database) == before


async def test_import_needs_an_api_key(client: httpx.AsyncClient, tenant: Tenant) -> None:
    document = await export(client, tenant, await build_session(client, tenant))
    response = await client.post("/v1/sessions/import", json=document)
    assert response.status_code == 401
