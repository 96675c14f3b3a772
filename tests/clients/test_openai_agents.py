"""`ChatSessionsSession` against a running service, checking what the Agents SDK's own session
tests check of a session (tests/test_session.py and the memory backends' suites): order, the
last `limit` items (0, more than there are), pop (empty, in order, one session only), clear,
separate sessions, items kept verbatim, concurrent first writes sharing one session, and two
turns of `Runner.run(..., session=...)` where the second sees the first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, ModelResponse, RunConfig, Runner, Usage
from agents.memory import SessionABC
from agents.models.interface import Model
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

from chat_sessions_client import AsyncChatSessionsClient
from chat_sessions_client.integrations.openai_agents import ChatSessionsSession
from clients.conftest import Service

TURNS: list[Any] = [
    {"role": "user", "content": "Message 1"},
    {"role": "assistant", "content": "Response 1"},
    {"role": "user", "content": "Message 2"},
    {"role": "assistant", "content": "Response 2"},
    {"role": "user", "content": "Message 3"},
    {"role": "assistant", "content": "Response 3"},
]


@pytest.fixture
async def client(service: Service) -> AsyncIterator[AsyncChatSessionsClient]:
    async with AsyncChatSessionsClient(service.base_url, service.api_key) as client:
        yield client


def contents(items: list[Any]) -> list[str]:
    return [item["content"] for item in items]


async def test_items_in_order_and_the_last_limit(client: AsyncChatSessionsClient) -> None:
    session = ChatSessionsSession("count_test", client=client)
    assert isinstance(session, SessionABC)
    assert await session.get_items() == []
    await session.add_items(TURNS)
    assert contents(await session.get_items()) == contents(TURNS)
    assert contents(await session.get_items(limit=2)) == ["Message 3", "Response 3"]
    assert contents(await session.get_items(limit=4)) == contents(TURNS[2:])
    assert contents(await session.get_items(limit=10)) == contents(TURNS)
    assert await session.get_items(limit=0) == []


async def test_pop_takes_the_last_item_of_this_session_only(
    client: AsyncChatSessionsClient,
) -> None:
    session, other = (ChatSessionsSession(name, client=client) for name in ("pop", "other"))
    assert await session.pop_item() is None
    await session.add_items(TURNS[:3])
    await other.add_items([{"role": "user", "content": "Session 2 message"}])
    assert [(await session.pop_item() or {}).get("content") for _ in range(3)] == [
        "Message 2",
        "Response 1",
        "Message 1",
    ]
    assert await session.pop_item() is None and await session.get_items() == []
    assert contents(await other.get_items()) == ["Session 2 message"]


async def test_clear_and_separate_sessions(client: AsyncChatSessionsClient) -> None:
    cats, dogs = (ChatSessionsSession(name, client=client) for name in ("s-cats", "s-dogs"))
    await cats.add_items([{"role": "user", "content": "I like cats"}])
    await dogs.add_items([{"role": "user", "content": "I like dogs"}])
    await cats.clear_session()
    assert await cats.get_items() == []
    assert contents(await dogs.get_items()) == ["I like dogs"]
    await cats.add_items([{"role": "user", "content": "again"}])  # a cleared session goes on
    assert contents(await cats.get_items()) == ["again"]


async def test_every_item_comes_back_verbatim(client: AsyncChatSessionsClient) -> None:
    items: list[Any] = [
        {"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA..."},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "add",
            "arguments": '{"a": 2, "b": 2}',
            "id": "fc_1",
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "4"},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "4", "annotations": []}],
        },
    ]
    session = ChatSessionsSession("verbatim", client=client)
    await session.add_items(items)
    assert await session.get_items() == items
    assert await session.pop_item() == items[-1]


async def test_concurrent_first_writes_share_one_session(
    client: AsyncChatSessionsClient, service: Service
) -> None:
    writers = [ChatSessionsSession("first-write", client=client) for _ in range(8)]
    await asyncio.gather(
        *(w.add_items([{"role": "user", "content": f"w{n}"}]) for n, w in enumerate(writers))
    )
    stored = await ChatSessionsSession("first-write", client=client).get_items()
    assert sorted(contents(stored)) == [f"w{n}" for n in range(8)]
    listed = await client.list_sessions(external_id_prefix="first-write")
    assert len(listed.data) == 1


def reply(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg_reply",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


class ScriptedModel(Model):
    """Answers each turn with the next scripted text, keeping what it was given."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.inputs: list[Any] = []

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        self.inputs.append(input)
        return ModelResponse(output=[reply(self.answers.pop(0))], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        # Runner.run never streams: a call here means the test no longer tests what it says.
        raise AssertionError("Runner.run asked the model to stream")


async def test_runner_run_remembers_the_previous_turn(client: AsyncChatSessionsClient) -> None:
    model = ScriptedModel("San Francisco", "California")
    agent = Agent(name="test", model=model)
    session = ChatSessionsSession("runner", client=client)

    config = RunConfig(tracing_disabled=True)
    question = "What city is the Golden Gate Bridge in?"
    first = await Runner.run(agent, question, session=session, run_config=config)
    second = await Runner.run(agent, "What state is it in?", session=session, run_config=config)

    assert (first.final_output, second.final_output) == ("San Francisco", "California")
    seen = model.inputs[1]
    assert [item.get("content") for item in seen[:1]] == [question]
    assert len(seen) == 3
    assert len(await session.get_items()) == 4
