"""The Agents SDK's `OpenAIConversationsSession`, unmodified, on our /v1/conversations
(issue 12, item 7): add_items (more than 20), get_items with and without a limit, pop_item,
clear_session - what the SDK's own session tests check of it, against our service."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import openai
from agents.memory import OpenAIConversationsSession
from litestar import Litestar

from openai_sdk import BASE_URL, answered
from support import Tenant


def a_run(turns: int) -> list[dict[str, Any]]:
    """Items as an agent run hands them to its session: input messages in the short form,
    the model's output messages, reasoning, tool calls and their outputs, with OpenAI's ids."""
    items: list[dict[str, Any]] = []
    for n in range(turns):
        items += [
            {"role": "user", "content": f"question {n}"},
            {"id": f"rs_{n}", "type": "reasoning", "summary": [], "encrypted_content": "e=="},
            {
                "id": f"fc_{n}",
                "type": "function_call",
                "call_id": f"call_{n}",
                "name": "lookup",
                "arguments": json.dumps({"n": n}),
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": f"call_{n}", "output": f"result {n}"},
            {
                "id": f"msg_{n}",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": f"answer {n}", "annotations": []}],
            },
        ]
    return items


def as_sent(got: list[Any], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the session read back, without what the service sets: each item's id, and the
    type and status of a message sent without them (the short form)."""
    return [
        {k: v for k, v in item.items() if k == "id" or k in original or k not in ADDED}
        for item, original in zip(without_ids(got), sent, strict=True)
    ]


ADDED = ("type", "status")


def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "id"} for item in items]


async def test_the_agents_sdk_session_works_unmodified(
    app: Litestar, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    batches: list[int] = []

    async def count_items(request: httpx2.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/items"):
            batches.append(len(json.loads(request.content)["items"]))

    openai_client = openai.AsyncOpenAI(
        base_url=BASE_URL,
        api_key=tenant.key,
        http_client=httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), event_hooks={"request": [count_items]}
        ),
    )
    session = OpenAIConversationsSession(openai_client=openai_client)
    sent = a_run(9)  # 45 items
    assert await session.get_items() == []  # creates the conversation

    await session.add_items(sent)
    # The SDK sends at most 20 items a request (OpenAI's documented limit, and ours).
    assert batches == [20, 20, 5]
    everything = await session.get_items()
    assert as_sent(everything, sent) == without_ids([answered(item) for item in sent])
    assert len({item["id"] for item in everything}) == 45

    last_five = await session.get_items(limit=5)
    assert last_five == everything[-5:]
    assert await session.get_items(limit=30) == everything[-30:]

    popped = await session.pop_item()
    assert popped == everything[-1]
    assert await session.get_items() == everything[:-1]

    # The session is the conversation, and the conversation a session of the tenant.
    conversation_id = session.session_id
    history = await client.get(f"/v1/sessions/{conversation_id}/messages", headers=tenant.headers)
    assert [message["id"] for message in history.json()["data"]] == [
        item["id"] for item in everything[:-1]
    ]

    await session.clear_session()
    gone = await client.get(f"/v1/sessions/{conversation_id}", headers=tenant.headers)
    assert gone.status_code == 404
    assert await session.pop_item() is None  # a new, empty conversation
    await openai_client.close()
