"""OpenAI's own Python SDK (`openai.OpenAI(base_url=..., api_key=<tenant key>)`), unmodified,
against /v1/conversations: what it sends, we take; what we answer, it reads (issue 12, item 7).
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from litestar import Litestar

from chat_sessions.db import Database
from openai_sdk import in_thread, sync_openai
from support import Tenant, count_rows, stored


def ids(page: Any) -> list[str]:
    return [item.id for item in page.data]


async def test_the_sdk_creates_retrieves_updates_and_deletes_a_conversation(
    sdk: openai.OpenAI, database: Database
) -> None:
    created = await in_thread(
        sdk.conversations.create,
        metadata={"topic": "lisbon"},
        items=[{"role": "user", "content": "Plan a trip"}],
    )
    assert created.object == "conversation"
    assert created.metadata == {"topic": "lisbon"}
    assert isinstance(created.created_at, int)

    fetched = await in_thread(sdk.conversations.retrieve, created.id)
    assert fetched == created

    updated = await in_thread(sdk.conversations.update, created.id, metadata={"topic": "porto"})
    assert updated.metadata == {"topic": "porto"}  # replaced, not merged
    assert (await in_thread(sdk.conversations.retrieve, created.id)).metadata == {"topic": "porto"}
    cleared = await in_thread(sdk.conversations.update, created.id, metadata=None)
    assert cleared.metadata == {}

    deleted = await in_thread(sdk.conversations.delete, created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        created.id,
        "conversation.deleted",
        True,
    )
    # Unlike OpenAI's service, the items go with the conversation.
    assert await count_rows(database, "messages") == 0
    with pytest.raises(openai.NotFoundError):
        await in_thread(sdk.conversations.retrieve, created.id)


async def test_the_sdk_creates_lists_retrieves_and_deletes_items(sdk: openai.OpenAI) -> None:
    conversation = await in_thread(sdk.conversations.create)
    sent = [{"role": "user", "content": f"m{n}"} for n in range(25)]
    first = await in_thread(sdk.conversations.items.create, conversation.id, items=sent[:20])
    second = await in_thread(
        sdk.conversations.items.create,
        conversation.id,
        items=sent[20:],
        include=["message.output_text.logprobs"],  # accepted, ignored
    )
    assert (first.object, first.has_more, len(first.data)) == ("list", False, 20)
    assert (first.first_id, first.last_id) == (first.data[0].id, first.data[-1].id)
    in_order = ids(first) + ids(second)
    # String content comes back as one text part, as OpenAI answers it.
    texts = [item.content[0].text for item in first.data + second.data]
    assert texts == [f"m{n}" for n in range(25)]

    # Paged by hand with `after` until has_more is false, in both orders.
    for order, expected in (("asc", in_order), ("desc", in_order[::-1])):
        seen: list[str] = []
        page = await in_thread(sdk.conversations.items.list, conversation.id, order=order, limit=10)
        pages = 1
        while True:
            seen += ids(page)
            assert page.last_id == page.data[-1].id
            if not page.has_more:
                break
            page = await in_thread(
                sdk.conversations.items.list,
                conversation.id,
                order=order,
                limit=10,
                after=page.last_id,
            )
            pages += 1
        assert (seen, pages) == (expected, 3)

    # The SDK's own auto-pagination (default order: desc, 20 a page), include[] and all.
    every = await in_thread(
        lambda: list(
            sdk.conversations.items.list(conversation.id, include=["reasoning.encrypted_content"])
        )
    )
    assert [item.id for item in every] == in_order[::-1]

    item = await in_thread(
        sdk.conversations.items.retrieve, in_order[3], conversation_id=conversation.id
    )
    assert (item.id, item.type, item.role, item.content[0].text, item.status) == (
        in_order[3],
        "message",
        "user",
        "m3",
        "completed",
    )
    answer = await in_thread(
        sdk.conversations.items.delete, in_order[3], conversation_id=conversation.id
    )
    assert (answer.object, answer.id) == ("conversation", conversation.id)
    with pytest.raises(openai.NotFoundError):
        await in_thread(
            sdk.conversations.items.retrieve, in_order[3], conversation_id=conversation.id
        )
    rest = await in_thread(lambda: list(sdk.conversations.items.list(conversation.id, order="asc")))
    assert [item.id for item in rest] == in_order[:3] + in_order[4:]


async def test_function_calls_and_other_items_come_back_as_sent(sdk: openai.OpenAI) -> None:
    items: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "Be brief"}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "weather",
            "arguments": '{"city":"Lisbon"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque=="},
    ]
    conversation = await in_thread(sdk.conversations.create, items=items)
    page = await in_thread(sdk.conversations.items.list, conversation.id, order="asc")
    dumped = [item.model_dump(exclude_unset=True) for item in page.data]
    for sent, got in zip(items, dumped, strict=True):
        assert {k: v for k, v in got.items() if k not in ("id", "status")} == {
            k: v for k, v in sent.items() if k != "id"
        }
    # The SDK parses each by its type.
    assert [type(item).__name__ for item in page.data] == [
        "Message",
        "ResponseFunctionToolCallItem",
        "ResponseFunctionToolCallOutputItem",
        "ResponseReasoningItem",
    ]
    assert page.data[3].id != "rs_1"  # the message's id, not the one sent


async def test_another_tenants_conversation_is_not_found_in_openais_shape(
    app: Litestar, sdk: openai.OpenAI, other_tenant: Tenant
) -> None:
    theirs = sync_openai(app, other_tenant.key)
    conversation = await in_thread(
        theirs.conversations.create, items=[{"role": "user", "content": "x"}]
    )
    item_id = (await in_thread(theirs.conversations.items.list, conversation.id)).data[0].id
    calls = [
        lambda: sdk.conversations.retrieve(conversation.id),
        lambda: sdk.conversations.update(conversation.id, metadata={"a": "b"}),
        lambda: sdk.conversations.delete(conversation.id),
        lambda: sdk.conversations.items.list(conversation.id),
        lambda: sdk.conversations.items.create(
            conversation.id, items=[{"role": "user", "content": "y"}]
        ),
        lambda: sdk.conversations.items.retrieve(item_id, conversation_id=conversation.id),
        lambda: sdk.conversations.items.delete(item_id, conversation_id=conversation.id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as raised:
            await in_thread(call)
        assert raised.value.status_code == 404
        assert raised.value.body == {
            "message": raised.value.body["message"],  # type: ignore[index]
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        assert "not found" in raised.value.message
    # ... exactly as an id that does not exist.
    with pytest.raises(openai.NotFoundError) as missing:
        await in_thread(sdk.conversations.retrieve, "0192f6c5-0000-7000-8000-000000000000")
    assert missing.value.body == {**missing.value.body, "message": "conversation not found"}  # type: ignore[dict-item]
    assert len(await in_thread(lambda: list(theirs.conversations.items.list(conversation.id)))) == 1


async def test_a_bad_key_is_401_in_openais_shape(app: Litestar, tenant: Tenant) -> None:
    for key in ("sk-not-a-key", tenant.key + "x"):
        client = sync_openai(app, key)
        with pytest.raises(openai.AuthenticationError) as raised:
            await in_thread(client.conversations.create)
        error = raised.value
        assert error.status_code == 401
        assert error.response.headers["WWW-Authenticate"] == "Bearer"
        assert error.code == "invalid_api_key"
        assert error.type == "invalid_request_error"
        assert "API key" in error.message


async def test_more_than_20_items_is_400_and_stores_nothing(
    sdk: openai.OpenAI, database: Database
) -> None:
    items = [{"role": "user", "content": f"m{n}"} for n in range(21)]
    conversation = await in_thread(sdk.conversations.create)
    before = await stored(database)
    with pytest.raises(openai.BadRequestError) as on_create:
        await in_thread(sdk.conversations.create, items=items)
    with pytest.raises(openai.BadRequestError) as on_add:
        await in_thread(sdk.conversations.items.create, conversation.id, items=items)
    assert await stored(database) == before
    for raised in (on_create, on_add):
        assert raised.value.param == "items"
        assert "20" in raised.value.message


@pytest.mark.parametrize(
    "item",
    [
        {"content": "no role, no type"},
        {"type": 5},
        {"type": "message", "role": "tool", "content": "not an input role"},
        {"type": "message", "role": "user"},
        {"role": "user", "content": 5},
        {"role": "user", "content": ["not a part"]},
        {"type": "function_call", "call_id": "c", "name": "f"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": {"not": "a string"}},
        {"type": "function_call_output", "output": "no call_id"},
        {"type": "function_call_output", "call_id": "c", "output": 5},
        {"type": "function_call_output", "call_id": "c" * 257, "output": "call_id too long"},
        {"role": "user", "content": [{"type": "input_text"}]},
        {"role": "user", "content": [{"text": "a part without a type"}]},
        {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image"}]},
    ],
    ids=lambda item: str(item)[:40],
)
async def test_a_malformed_item_is_400_and_stores_nothing(
    sdk: openai.OpenAI, database: Database, item: dict[str, Any]
) -> None:
    conversation = await in_thread(sdk.conversations.create)
    before = await stored(database)
    good = {"role": "user", "content": "fine"}
    with pytest.raises(openai.BadRequestError) as on_add:
        await in_thread(sdk.conversations.items.create, conversation.id, items=[good, item])
    assert "items[1]" in on_add.value.message
    with pytest.raises(openai.BadRequestError):
        await in_thread(sdk.conversations.create, items=[good, item])
    assert await stored(database) == before


@pytest.mark.parametrize(
    ("metadata", "what"),
    [
        ({f"k{n}": "v" for n in range(17)}, "16"),
        ({"k" * 65: "v"}, "64"),
        ({"k": "v" * 513}, "512"),
        ({"k": 5}, "str"),
    ],
    ids=["17 keys", "65-char key", "513-char value", "not a string"],
)
async def test_metadata_over_openais_limits_is_400(
    sdk: openai.OpenAI, database: Database, metadata: dict[str, Any], what: str
) -> None:
    conversation = await in_thread(sdk.conversations.create, metadata={"k": "v"})
    before = await stored(database)
    with pytest.raises(openai.BadRequestError) as on_create:
        await in_thread(sdk.conversations.create, metadata=metadata)
    with pytest.raises(openai.BadRequestError) as on_update:
        await in_thread(sdk.conversations.update, conversation.id, metadata=metadata)
    for raised in (on_create, on_update):
        assert raised.value.param == "metadata"
        assert what in raised.value.message
    assert await stored(database) == before
    at_the_limits = {f"{n:02}" + "k" * 62: "v" * 512 for n in range(16)}
    updated = await in_thread(sdk.conversations.update, conversation.id, metadata=at_the_limits)
    assert updated.metadata == at_the_limits
