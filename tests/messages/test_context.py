"""GET /v1/sessions/{id}/context: the history as a ready chat-completions prompt."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from support import Tenant, new_session


async def store(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, *messages: dict[str, Any]
) -> None:
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": list(messages)},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text


async def context(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/sessions/{session_id}/context", params=params, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"messages"}
    return list(response.json()["messages"])


def contents(prompt: list[dict[str, Any]]) -> list[str]:
    return [message["content"] for message in prompt]


def system(content: str, tokens: int = 10) -> dict[str, Any]:
    return {"role": "system", "content": content, "token_count": tokens}


def user(content: str, tokens: int = 10) -> dict[str, Any]:
    return {"role": "user", "content": content, "token_count": tokens}


def assistant(content: str, tokens: int = 10, calls: tuple[str, ...] = ()) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "token_count": tokens}
    if calls:
        message["tool_calls"] = [
            {"id": call, "type": "function", "function": {"name": "search", "arguments": "{}"}}
            for call in calls
        ]
    return message


def tool(content: str, call: str, tokens: int = 10) -> dict[str, Any]:
    return {"role": "tool", "content": content, "tool_call_id": call, "token_count": tokens}


async def test_context_is_in_chat_completions_shape_with_optional_fields_only_when_set(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    await store(
        client,
        tenant,
        session_id,
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "ana", "metadata": {"x": 1}, "token_count": 2},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 42."},
    )

    assert await context(client, tenant, session_id) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "ana"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 42."},
    ]


async def test_without_limits_the_whole_history_comes_in_seq_order(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    history = [
        system("s"),
        user("u1"),
        assistant("a1", calls=("c1", "c2")),
        tool("t1", "c1"),
        tool("t2", "c2"),
        assistant("a2"),
        user("u2"),
        system("s2"),
        assistant("a3"),
    ]
    await store(client, tenant, session_id, *history)
    assert contents(await context(client, tenant, session_id)) == [m["content"] for m in history]


async def test_context_of_an_empty_session_is_empty(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    assert await context(client, tenant, session_id) == []


async def test_max_messages_keeps_the_newest(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client, tenant, session_id, user("u1"), assistant("a1"), user("u2"), assistant("a2")
    )

    assert contents(await context(client, tenant, session_id, max_messages=2)) == ["u2", "a2"]
    assert contents(await context(client, tenant, session_id, max_messages=1)) == ["a2"]
    assert contents(await context(client, tenant, session_id, max_messages=10)) == [
        "u1",
        "a1",
        "u2",
        "a2",
    ]


async def test_max_tokens_keeps_the_newest_messages_that_fit(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        user("u1", 10),
        assistant("a1", 10),
        user("u2", 10),
        assistant("a2", 10),
    )

    assert contents(await context(client, tenant, session_id, max_tokens=25)) == ["u2", "a2"]
    assert contents(await context(client, tenant, session_id, max_tokens=30)) == ["a1", "u2", "a2"]
    assert contents(await context(client, tenant, session_id, max_tokens=9)) == []


async def test_max_messages_and_max_tokens_together_keep_what_fits_both(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await store(client, tenant, session_id, *(user(f"u{n}", 10) for n in range(1, 6)))
    assert contents(await context(client, tenant, session_id, max_messages=2, max_tokens=100)) == [
        "u4",
        "u5",
    ]
    assert contents(await context(client, tenant, session_id, max_messages=4, max_tokens=20)) == [
        "u4",
        "u5",
    ]


async def test_system_messages_are_kept_and_count_against_the_budget_first(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        system("rules", 20),
        user("u1"),
        assistant("a1"),
        user("u2"),
        assistant("a2"),
    )

    assert contents(await context(client, tenant, session_id, max_messages=3)) == [
        "rules",
        "u2",
        "a2",
    ]
    assert contents(await context(client, tenant, session_id, max_tokens=40)) == [
        "rules",
        "u2",
        "a2",
    ]


async def test_system_messages_are_kept_even_over_budget(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        system("long rules", 1000),
        user("u1"),
        system("late rule", 5),
        assistant("a1"),
    )

    by_tokens = contents(await context(client, tenant, session_id, max_tokens=50))
    by_count = contents(await context(client, tenant, session_id, max_messages=1))
    assert by_tokens == by_count == ["long rules", "late rule"]


async def test_a_budget_that_would_cut_between_a_call_and_its_result_drops_both(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        user("question"),
        assistant("calling", calls=("call_1",)),
        tool("result", "call_1"),
        assistant("answer"),
    )

    # Room for the answer and one more: only the tool result would fit, so neither goes.
    assert contents(await context(client, tenant, session_id, max_messages=2)) == ["answer"]
    assert contents(await context(client, tenant, session_id, max_tokens=25)) == ["answer"]
    # Room for the whole unit: call, result and answer come together, in order.
    assert contents(await context(client, tenant, session_id, max_messages=3)) == [
        "calling",
        "result",
        "answer",
    ]
    assert contents(await context(client, tenant, session_id, max_tokens=30)) == [
        "calling",
        "result",
        "answer",
    ]


async def test_parallel_tool_results_stay_with_their_call(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        user("q"),
        assistant("calling", calls=("c1", "c2", "c3")),
        tool("r1", "c1"),
        tool("r2", "c2"),
        tool("r3", "c3"),
    )

    for limit in range(1, 4):
        assert await context(client, tenant, session_id, max_messages=limit) == []
    assert contents(await context(client, tenant, session_id, max_messages=4)) == [
        "calling",
        "r1",
        "r2",
        "r3",
    ]
    assert contents(await context(client, tenant, session_id, max_tokens=39)) == []


async def test_consecutive_calling_messages_are_one_unit_and_one_message(
    client, tenant: Tenant
) -> None:
    """Parallel calls stored one message each (the Responses API's function_call items)."""
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        user("q"),
        assistant("", calls=("c1",)),
        assistant("", calls=("c2",)),
        tool("r1", "c1"),
        tool("r2", "c2"),
    )

    for limit in range(1, 4):
        assert await context(client, tenant, session_id, max_messages=limit) == []
    prompt = await context(client, tenant, session_id, max_messages=4)
    assert [(m["role"], m["content"]) for m in prompt] == [
        ("assistant", ""),
        ("tool", "r1"),
        ("tool", "r2"),
    ]
    assert [call["id"] for call in prompt[0]["tool_calls"]] == ["c1", "c2"]


async def test_no_tool_message_is_ever_sent_without_its_calling_assistant_message(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        system("s", 3),
        user("u1", 7),
        assistant("a1", 5, calls=("c1", "c2")),
        tool("r1", "c1", 11),
        tool("r2", "c2", 13),
        assistant("a2", 2, calls=("c3",)),
        tool("r3", "c3", 17),
        assistant("a3", 19),
        user("u2", 23),
    )

    for max_messages in range(1, 11):
        for max_tokens in (None, *range(1, 120, 4)):
            params = {"max_messages": max_messages}
            if max_tokens is not None:
                params["max_tokens"] = max_tokens
            prompt = await context(client, tenant, session_id, **params)
            called = {call["id"] for message in prompt for call in message.get("tool_calls", ())}
            for message in prompt:
                if message["role"] == "tool":
                    assert message["tool_call_id"] in called, (params, contents(prompt))
            for message in prompt:
                if message.get("tool_calls"):
                    results = {m.get("tool_call_id") for m in prompt if m["role"] == "tool"}
                    assert {call["id"] for call in message["tool_calls"]} <= results


async def test_limits_on_a_long_history_keep_a_call_and_its_result_together(
    client, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    history = [user(f"m{seq}", 1) for seq in range(1, 701)]
    history[199] = assistant("m200", 1, calls=("c1",))
    history[200] = tool("m201", "c1", 1)
    await store(client, tenant, session_id, *history[:350])
    await store(client, tenant, session_id, *history[350:])

    with_unit = [f"m{seq}" for seq in range(200, 701)]
    without_unit = [f"m{seq}" for seq in range(202, 701)]
    assert contents(await context(client, tenant, session_id, max_messages=501)) == with_unit
    assert contents(await context(client, tenant, session_id, max_messages=500)) == without_unit
    assert contents(await context(client, tenant, session_id, max_tokens=501)) == with_unit
    assert contents(await context(client, tenant, session_id, max_tokens=500)) == without_unit
    assert len(await context(client, tenant, session_id)) == 700


async def test_orphan_tool_messages_are_dropped(client, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await store(
        client,
        tenant,
        session_id,
        tool("orphan at start", "c0"),
        user("u1"),
        assistant("a1", calls=("c1",)),
        tool("r1", "c1"),
        tool("r-unknown", "c-unknown"),
        assistant("a2"),
        user("u2"),
        tool("orphan after a user message", "c1"),
    )

    assert contents(await context(client, tenant, session_id)) == ["u1", "a1", "r1", "a2", "u2"]


@pytest.mark.parametrize(
    "params",
    [
        {"max_messages": 0},
        {"max_messages": -1},
        {"max_tokens": 0},
        {"max_messages": "many"},
    ],
    ids=str,
)
async def test_out_of_range_limits_are_400(client, tenant: Tenant, params: dict[str, Any]) -> None:
    session_id = await new_session(client, tenant)
    response = await client.get(
        f"/v1/sessions/{session_id}/context", params=params, headers=tenant.headers
    )
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_context_of_an_unknown_or_foreign_session_is_404(
    client, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await new_session(client, other_tenant)
    await store(client, other_tenant, theirs, user("secret"))

    unknown = await client.get(f"/v1/sessions/{uuid.uuid4()}/context", headers=tenant.headers)
    foreign = await client.get(f"/v1/sessions/{theirs}/context", headers=tenant.headers)
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()
