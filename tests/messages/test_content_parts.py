"""Messages in every current LLM shape: the `developer` role, content as an array of parts
(kept exactly as sent; their text is what search, previews and /context read), and a
provider-native `item` stored and returned verbatim."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import Tenant, app_client, append, assert_problem, new_session, stored

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo"}}
# One of each known type, each with what its API requires, and a type nobody knows yet.
EVERY_KIND: list[dict[str, Any]] = [
    {"type": "text", "text": "the quokka smiles"},
    {"type": "input_text", "text": "an input"},
    {"type": "output_text", "text": "an output", "annotations": []},
    {"type": "refusal", "refusal": "I can't"},
    IMAGE,
    {"type": "input_image", "image_url": "https://example.test/a.png", "detail": "auto"},
    {"type": "input_image", "file_id": "file-1"},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    {"type": "file", "file": {"file_id": "file-2"}},
    {"type": "input_file", "file_id": "file-3"},
    {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0="},
    {"type": "future_part", "anything": {"nested": [1, 2.5, True, None]}},
]


async def history(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> list[Any]:
    response = await client.get(f"/v1/sessions/{session_id}/messages", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def test_parts_of_every_kind_come_back_exactly_as_sent(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    message = await append(client, tenant, session_id, EVERY_KIND)  # type: ignore[arg-type]
    assert message["content"] == EVERY_KIND
    (read,) = await history(client, tenant, session_id)
    # Byte for byte: key order and every value as sent.
    assert msgspec.json.encode(read["content"]) == msgspec.json.encode(EVERY_KIND)


async def test_a_string_content_stays_a_string(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "[not parts]")
    (read,) = await history(client, tenant, session_id)
    assert read["content"] == "[not parts]"


async def test_an_empty_array_of_parts_is_stored(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    message = await append(client, tenant, session_id, [], role="assistant")  # type: ignore[arg-type]
    assert message["content"] == []


BAD_PARTS = [
    pytest.param(["text"], "content[0]", id="not-an-object"),
    pytest.param([{"text": "x"}], "content[0] needs a string 'type'", id="no-type"),
    pytest.param([{"type": 3, "text": "x"}], "content[0] needs a string 'type'", id="type-number"),
    pytest.param([{"type": "text"}], "'text'", id="text-without-text"),
    pytest.param([{"type": "input_text", "text": ["x"]}], "'text'", id="text-not-string"),
    pytest.param([{"type": "refusal"}], "'refusal'", id="refusal-without-refusal"),
    pytest.param([{"type": "image_url", "image_url": "u"}], "'url'", id="image-url-not-object"),
    pytest.param([{"type": "image_url", "image_url": {}}], "'url'", id="image-url-without-url"),
    pytest.param([{"type": "input_image"}], "'file_id'", id="input-image-without-source"),
    pytest.param(
        [{"type": "input_audio", "input_audio": {"data": "x"}}], "'format'", id="audio-no-format"
    ),
    pytest.param([{"type": "file"}], "'file'", id="file-without-file"),
    pytest.param([{"type": "input_file", "file": "x"}], "'file'", id="input-file-bad"),
    pytest.param(
        [{"type": "text", "text": "fine"}, {"type": "image_url"}], "content[1]", id="second-part"
    ),
]


@pytest.mark.parametrize(("content", "detail"), BAD_PARTS)
async def test_malformed_parts_are_400_and_store_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, content: Any, detail: str
) -> None:
    session_id = await new_session(client, tenant)
    before = await stored(database)
    for path, body in [
        ("messages", {"role": "user", "content": content}),
        (
            "messages/batch",
            {"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": content}]},
        ),
    ]:
        response = await client.post(
            f"/v1/sessions/{session_id}/{path}", json=body, headers=tenant.headers
        )
        assert detail in assert_problem(response, 400)["detail"]
    assert await stored(database) == before


@pytest.mark.parametrize("item", [[{"type": "x"}], "reasoning", 5, True])
async def test_an_item_that_is_not_an_object_is_400_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, item: Any
) -> None:
    session_id = await new_session(client, tenant)
    before = await stored(database)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "assistant", "content": "", "item": item},
        headers=tenant.headers,
    )
    assert_problem(response, 400)
    assert await stored(database) == before


async def test_an_item_is_stored_and_returned_verbatim_by_every_read(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    item = {
        "type": "reasoning",
        "id": "rs_1",
        "encrypted_content": "gAAAAB" + "x" * 500,
        "summary": [{"type": "summary_text", "text": "thinking"}],
    }
    session_id = await new_session(client, tenant)
    message = await append(client, tenant, session_id, "", role="assistant", item=item)
    one = await client.get(
        f"/v1/sessions/{session_id}/messages/{message['id']}", headers=tenant.headers
    )
    exported = await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    for read in [
        message,
        one.json(),
        (await history(client, tenant, session_id))[0],
        exported.json()["messages"][0],
    ]:
        assert msgspec.json.encode(read["item"]) == msgspec.json.encode(item)


async def test_a_message_without_an_item_reads_item_null(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    assert (await append(client, tenant, session_id, "hi"))["item"] is None


async def test_export_and_import_keep_parts_and_items(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, EVERY_KIND)  # type: ignore[arg-type]
    await append(client, tenant, session_id, "", role="assistant", item={"type": "x", "k": [1]})
    exported = (
        await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    ).json()
    imported = await client.post("/v1/sessions/import", json=exported, headers=tenant.headers)
    assert imported.status_code == 201, imported.text
    copy = await history(client, tenant, imported.json()["id"])
    assert [(m["content"], m["item"]) for m in copy] == [
        (m["content"], m["item"]) for m in exported["messages"]
    ]


async def test_an_import_with_malformed_parts_is_400(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    before = await stored(database)
    document = {
        "format": "chat-sessions.v1",
        "session": {},
        "messages": [
            {
                "seq": 1,
                "role": "user",
                "content": [{"type": "text"}],
                "created_at": "2026-01-01T00:00:00Z",
            }
        ],
    }
    response = await client.post("/v1/sessions/import", json=document, headers=tenant.headers)
    assert_problem(response, 400)
    assert await stored(database) == before


# --- the text of the parts --------------------------------------------------------------------


async def test_search_finds_the_text_of_text_parts_only(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    message = await append(
        client,
        tenant,
        session_id,
        [{"type": "input_text", "text": "where is the wombat"}, IMAGE],  # type: ignore[arg-type]
        item={"type": "message", "note": "platypus"},
    )

    async def found(word: str) -> list[str]:
        response = await client.get("/v1/search", params={"q": word}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [hit["message_id"] for hit in response.json()["data"]]

    assert await found("wombat") == [message["id"]]
    assert await found("iVBORw0KGgo") == []  # the image's data is no text
    assert await found("platypus") == []  # nor is the item
    assert await found("image_url") == []  # nor the parts' structure


async def test_the_list_preview_shows_the_text_of_the_parts(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(
        client,
        tenant,
        session_id,
        [IMAGE, {"type": "text", "text": "first"}, {"type": "text", "text": "second"}],  # type: ignore[arg-type]
    )
    listed = await client.get("/v1/sessions", headers=tenant.headers)
    assert listed.json()["data"][0]["preview"] == "first\nsecond"


async def test_context_passes_the_text_of_the_parts_and_always_keeps_developer_messages(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "be terse", role="developer", token_count=5)
    for word in ("one", "two", "three"):
        await append(
            client, tenant, session_id, [{"type": "text", "text": word}, IMAGE], token_count=10
        )  # type: ignore[arg-type]
    response = await client.get(
        f"/v1/sessions/{session_id}/context",
        params={"max_tokens": 25},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    # The developer message's 5 tokens first, then the newest that fit the other 20.
    assert response.json()["messages"] == [
        {"role": "developer", "content": "be terse"},
        {"role": "user", "content": "two"},
        {"role": "user", "content": "three"},
    ]


async def test_history_filters_by_the_developer_role(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "rules", role="developer")
    await append(client, tenant, session_id, "hi")
    response = await client.get(
        f"/v1/sessions/{session_id}/messages",
        params={"role": "developer"},
        headers=tenant.headers,
    )
    assert [m["content"] for m in response.json()["data"]] == ["rules"]


# --- sizes ---------------------------------------------------------------------------------------


async def test_max_message_bytes_counts_the_encoded_parts_and_the_item_together(
    settings: Settings, database: Database, tenant: Tenant
) -> None:
    limit = 2000
    async with app_client(settings, database, max_message_bytes=limit) as client:
        session_id = await new_session(client, tenant)
        parts = [{"type": "text", "text": "x" * 900}]
        item = {"type": "note", "body": "y" * 900}
        size = len(msgspec.json.encode(parts)) + len(msgspec.json.encode(item))
        assert size < limit
        await append(client, tenant, session_id, parts, item=item)  # type: ignore[arg-type]
        before = await stored(database)
        over_item = {"type": "note", "body": "y" * (900 + limit - size + 1)}
        for content, extra in [
            (parts, {"item": over_item}),
            ([{"type": "text", "text": "x" * limit}], {}),
        ]:
            response = await client.post(
                f"/v1/sessions/{session_id}/messages",
                json={"role": "user", "content": content, **extra},
                headers=tenant.headers,
            )
            assert "bytes" in assert_problem(response, 413)["detail"]
        assert await stored(database) == before


async def test_a_retry_of_a_message_with_parts_is_a_replay(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    body = {"role": "user", "content": [IMAGE], "item": {"type": "message"}}
    headers = {**tenant.headers, "Idempotency-Key": "k1"}
    first = await client.post(f"/v1/sessions/{session_id}/messages", json=body, headers=headers)
    again = await client.post(f"/v1/sessions/{session_id}/messages", json=body, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    changed = {**body, "item": {"type": "other"}}
    conflict = await client.post(
        f"/v1/sessions/{session_id}/messages", json=changed, headers=headers
    )
    assert_problem(conflict, 409)
