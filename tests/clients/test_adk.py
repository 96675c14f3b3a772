"""`ChatSessionsSessionService` against a running service, checking what ADK's own session
service contract checks (tests/unittests/sessions: test_session_service.py, _conformance.py):
missing sessions, create/get/delete, duplicate ids (also raced), listings and their order,
`app:`/`user:`/`temp:` state scopes, events read back equal, `num_recent_events` and
`after_timestamp`, stale writers refused with nothing stored, appends to a deleted session;
and what it costs: one request per `append_event` (an `app:` delta included), one per
`get_session` (two the first time), and two turns of `Runner(session_service=...)`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import pytest
from google.adk.agents import LlmAgent
from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

from chat_sessions_client import AsyncChatSessionsClient
from chat_sessions_client.integrations import adk as adk_module
from chat_sessions_client.integrations.adk import ChatSessionsSessionService
from clients.conftest import Service


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
async def adk(
    service: Service, transport: CountingTransport
) -> AsyncIterator[ChatSessionsSessionService]:
    async with AsyncChatSessionsClient(
        service.base_url, service.api_key, transport=transport
    ) as client:
        yield ChatSessionsSessionService(client=client)


def event(
    text: str, *, author: str = "user", timestamp: float | None = None, **delta: Any
) -> Event:
    made = Event(
        invocation_id="inv-1",
        author=author,
        content=types.Content(role=author, parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta),
    )
    if timestamp is not None:
        made.timestamp = timestamp
    return made


async def test_create_get_and_delete(adk: ChatSessionsSessionService) -> None:
    assert await adk.get_session(app_name="my_app", user_id="u", session_id="123") is None
    made = await adk.create_session(app_name="my_app", user_id="u", state={"key": "value"})
    assert made.id and made.state == {"key": "value"}
    assert await adk.get_session(app_name="my_app", user_id="u", session_id=made.id) == made
    # Another service (another process) finds it by its names alone.
    fresh = ChatSessionsSessionService(client=adk._client)
    assert await fresh.get_session(app_name="my_app", user_id="u", session_id=made.id) == made
    await adk.delete_session(app_name="my_app", user_id="u", session_id=made.id)
    assert await fresh.get_session(app_name="my_app", user_id="u", session_id=made.id) is None
    await adk.delete_session(app_name="my_app", user_id="u", session_id=made.id)  # no error


async def test_a_session_id_is_made_once_even_when_raced(adk: ChatSessionsSessionService) -> None:
    await adk.create_session(app_name="a", user_id="u", session_id="s1")
    with pytest.raises(AlreadyExistsError):
        await adk.create_session(app_name="a", user_id="u", session_id="s1")
    outcomes = await asyncio.gather(
        *(adk.create_session(app_name="a", user_id="u", session_id="race") for _ in range(6)),
        return_exceptions=True,
    )
    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert all(isinstance(o, AlreadyExistsError) for o in outcomes if isinstance(o, Exception))


async def test_lists_a_users_sessions_and_an_apps_oldest_update_first(
    adk: ChatSessionsSessionService,
) -> None:
    for user, session_id in (("user1", "s1a"), ("user1", "s1b"), ("user2", "s2a")):
        await adk.create_session(
            app_name="my_app", user_id=user, session_id=session_id, state={"key": session_id}
        )
    await adk.create_session(app_name="other/app", user_id="user1", session_id="elsewhere")
    first = await adk.get_session(app_name="my_app", user_id="user1", session_id="s1a")
    assert first is not None
    await adk.append_event(first, event("latest"))

    mine = (await adk.list_sessions(app_name="my_app", user_id="user1")).sessions
    assert [(s.id, s.state, s.events) for s in mine] == [
        ("s1b", {"key": "s1b"}, []),
        ("s1a", {"key": "s1a"}, []),
    ]
    everyone = (await adk.list_sessions(app_name="my_app")).sessions
    assert [(s.user_id, s.id) for s in everyone] == [
        ("user1", "s1b"),
        ("user2", "s2a"),
        ("user1", "s1a"),
    ]
    assert (await adk.list_sessions(app_name="nobody")).sessions == []


async def test_state_scopes(adk: ChatSessionsSessionService) -> None:
    s1 = await adk.create_session(
        app_name="app", user_id="u1", session_id="s1", state={"app:k1": "v1", "user:name": "Ann"}
    )
    await adk.append_event(s1, event("hi", **{"app:k2": "v2", "user:age": 30, "temp:scratch": 1}))
    assert s1.state["temp:scratch"] == 1  # visible in the running invocation, never stored

    s2 = await adk.create_session(app_name="app", user_id="u2", session_id="s2")
    assert s2.state == {"app:k1": "v1", "app:k2": "v2"}
    s3 = await adk.create_session(app_name="app", user_id="u1", session_id="s3")
    assert s3.state == {"app:k1": "v1", "app:k2": "v2", "user:name": "Ann", "user:age": 30}
    again = await adk.get_session(app_name="app", user_id="u1", session_id="s1")
    assert again is not None and "temp:scratch" not in again.state
    assert again.events[0].actions.state_delta == {"app:k2": "v2", "user:age": 30}
    assert await adk.get_user_state(app_name="app", user_id="u1") == {"name": "Ann", "age": 30}
    assert await adk.get_user_state(app_name="other", user_id="u1") == {}


async def test_a_delta_replaces_values_as_adk_does(adk: ChatSessionsSessionService) -> None:
    made = await adk.create_session(app_name="a", user_id="u", state={"cfg": {"x": 1}, "n": 1})
    await adk.append_event(made, event("e", cfg={"y": 2}, n=None))
    got = await adk.get_session(app_name="a", user_id="u", session_id=made.id)
    assert got is not None and got.state == {"cfg": {"y": 2}, "n": None} == made.state


async def test_events_come_back_equal_and_filtered(adk: ChatSessionsSessionService) -> None:
    made = await adk.create_session(app_name="a", user_id="u")
    call = types.Part(function_call=types.FunctionCall(name="lookup", args={"q": "x"}, id="c1"))
    for n in range(5):
        await adk.append_event(
            made, event(f"e{n}", author="user" if n % 2 else "agent", timestamp=1000.0 + n)
        )
    await adk.append_event(
        made,
        Event(author="agent", timestamp=1005.0, content=types.Content(role="model", parts=[call])),
    )
    got = await adk.get_session(app_name="a", user_id="u", session_id=made.id)
    assert got is not None and got.events == made.events and got == made
    assert got.last_update_time == 1005.0

    async def read(**config: Any) -> list[float]:
        session = await adk.get_session(
            app_name="a", user_id="u", session_id=made.id, config=GetSessionConfig(**config)
        )
        assert session is not None
        return [e.timestamp for e in session.events]

    assert await read(num_recent_events=2) == [1004.0, 1005.0]
    assert await read(num_recent_events=0) == []
    assert await read(after_timestamp=1003.0) == [1003.0, 1004.0, 1005.0]
    assert await read(num_recent_events=2, after_timestamp=1004.5) == [1005.0]


async def test_events_beyond_the_snapshots_page_are_read_page_by_page(
    adk: ChatSessionsSessionService, transport: CountingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adk_module, "HISTORY_PAGE", 2)
    made = await adk.create_session(app_name="a", user_id="u")
    for n in range(5):
        await adk.append_event(made, event(f"e{n}", timestamp=1000.0 + n))
    transport.sent.clear()
    got = await adk.get_session(
        app_name="a", user_id="u", session_id=made.id, config=GetSessionConfig(after_timestamp=1001)
    )
    assert got is not None and [e.timestamp for e in got.events] == [1001.0, 1002.0, 1003.0, 1004.0]
    assert (
        len(transport.sent) == 3
    )  # the snapshot (2 events), 2 more, then the page with the older one
    assert got.events == made.events[1:]


async def test_a_stale_writer_is_refused_and_stores_nothing(
    adk: ChatSessionsSessionService,
) -> None:
    made = await adk.create_session(app_name="a", user_id="u", session_id="s")
    first = await adk.get_session(app_name="a", user_id="u", session_id="s")
    second = await adk.get_session(app_name="a", user_id="u", session_id="s")
    assert first is not None and second is not None
    await adk.append_event(first, event("first", step=1))
    with pytest.raises(StaleSessionError):
        await adk.append_event(second, event("second", step=2, **{"user:x": 1}))
    now = await adk.get_session(app_name="a", user_id="u", session_id="s")
    assert now is not None and [e.content.parts[0].text for e in now.events] == ["first"]  # type: ignore[union-attr, index]
    assert now.state == {"step": 1}
    await adk.append_event(now, event("after reloading"))  # a reloaded session goes on
    await adk.delete_session(app_name="a", user_id="u", session_id="s")
    with pytest.raises(SessionNotFoundError):
        await adk.append_event(now, event("too late"))
    assert made.id == "s"


async def test_requests_per_append_and_per_get(
    adk: ChatSessionsSessionService, transport: CountingTransport
) -> None:
    made = await adk.create_session(app_name="a", user_id="u")
    transport.sent.clear()
    await adk.append_event(made, event("one", k=1, **{"user:u": 1}))
    assert len(transport.sent) == 1
    transport.sent.clear()
    await adk.append_event(made, event("two", **{"app:a": 1}))
    assert len(transport.sent) == 1
    transport.sent.clear()
    got = await adk.get_session(app_name="a", user_id="u", session_id=made.id)
    assert transport.sent == [f"GET /v1/sessions/{adk._ids[f'adk/a/u/{made.id}']}/snapshot"]
    assert got is not None and got.state == {"k": 1, "user:u": 1, "app:a": 1}
    assert len(got.events) == 2
    transport.sent.clear()
    await ChatSessionsSessionService(client=adk._client).get_session(
        app_name="a", user_id="u", session_id=made.id
    )
    assert len(transport.sent) == 2  # by external_id first, then the snapshot


class ScriptedLlm(BaseLlm):
    """Answers each turn with the next scripted text, keeping what it was asked."""

    answers: list[str]
    asked: list[LlmRequest] = []

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.asked.append(llm_request)
        text = self.answers.pop(0)
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


async def test_a_runner_remembers_the_previous_turn(adk: ChatSessionsSessionService) -> None:
    model = ScriptedLlm(model="scripted", answers=["Hi Bob!", "You are Bob."], asked=[])
    agent = LlmAgent(name="helper", model=model, instruction="Be brief.")
    runner = Runner(agent=agent, app_name="demo", session_service=adk)
    session = await adk.create_session(app_name="demo", user_id="bob")

    async def turn(text: str) -> list[str]:
        message = types.Content(role="user", parts=[types.Part(text=text)])
        replies = runner.run_async(user_id="bob", session_id=session.id, new_message=message)
        return [e.content.parts[0].text async for e in replies if e.content and e.content.parts]  # type: ignore[misc]

    assert await turn("I am Bob.") == ["Hi Bob!"]
    assert await turn("Who am I?") == ["You are Bob."]
    texts = [c.parts[0].text for c in model.asked[1].contents if c.parts]
    assert texts == ["I am Bob.", "Hi Bob!", "Who am I?"]
    stored = await adk.get_session(app_name="demo", user_id="bob", session_id=session.id)
    assert stored is not None and len(stored.events) == 4
