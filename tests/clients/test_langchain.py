"""`ChatSessionsChatMessageHistory` against a running service, checking what LangChain's own
chat-history tests check (libs/core tests/unit_tests/chat_history: add one, add many, order,
clear, and the async interface), plus what a store must keep: every message type round-trips
equal, nothing is sent from `__init__`, concurrent first writes share one session, and
`RunnableWithMessageHistory` gives the model the earlier turns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from chat_sessions_client import AsyncChatSessionsClient, ChatSessionsClient
from chat_sessions_client.integrations.langchain import ChatSessionsChatMessageHistory
from clients.conftest import Service

EVERY_KIND: list[BaseMessage] = [
    SystemMessage("Be brief.", id="sys-1"),
    HumanMessage(
        content=[
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
        id="h-1",
        name="alice",
    ),
    AIMessage(
        content="",
        id="ai-1",
        tool_calls=[{"name": "lookup", "args": {"q": "png"}, "id": "call_1", "type": "tool_call"}],
        usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
        response_metadata={"model_name": "fake"},
    ),
    ToolMessage(
        "a 1x1 image", tool_call_id="call_1", artifact={"bytes": 67}, status="success", id="t-1"
    ),
    ChatMessage(content="Looks fine to me.", role="critic", id="c-1"),
    FunctionMessage(content="42", name="answer"),
    AIMessageChunk(content="partial", id="chunk-1"),
    AIMessage(content=[{"type": "text", "text": "A pixel."}], additional_kwargs={"refusal": None}),
]


@pytest.fixture
def client(service: Service) -> Iterator[ChatSessionsClient]:
    with ChatSessionsClient(service.base_url, service.api_key) as client:
        yield client


@pytest.fixture
async def async_client(service: Service) -> AsyncIterator[AsyncChatSessionsClient]:
    async with AsyncChatSessionsClient(service.base_url, service.api_key) as client:
        yield client


def test_adds_one_and_many_in_order_and_clears(client: ChatSessionsClient) -> None:
    history = ChatSessionsChatMessageHistory("chat-1", client=client)
    assert isinstance(history, BaseChatMessageHistory)
    assert history.messages == []
    history.add_message(HumanMessage("Hello"))
    history.add_user_message("World")
    history.add_ai_message("Hi!")
    history.add_messages([HumanMessage("one"), AIMessage("two")])
    assert [m.content for m in history.messages] == ["Hello", "World", "Hi!", "one", "two"]
    other = ChatSessionsChatMessageHistory("chat-2", client=client)
    other.add_user_message("elsewhere")
    history.clear()
    assert history.messages == []
    assert [m.content for m in other.messages] == ["elsewhere"]


def test_every_message_type_round_trips_equal(client: ChatSessionsClient) -> None:
    history = ChatSessionsChatMessageHistory("kinds", client=client)
    history.add_messages(EVERY_KIND)
    fresh = ChatSessionsChatMessageHistory("kinds", client=client)
    assert fresh.messages == EVERY_KIND
    assert [type(m) for m in fresh.messages] == [type(m) for m in EVERY_KIND]
    # Stored as the message's item, with a role and text the service reads.
    service_id = client.find_session("kinds").id  # type: ignore[union-attr]
    stored = list(client.iter_messages(service_id))
    assert [m.role for m in stored] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "assistant",
        "assistant",
        "assistant",
    ]
    assert stored[1].content == "What is in this picture?" and stored[3].tool_call_id == "call_1"
    assert stored[0].item == {"type": "system", "data": EVERY_KIND[0].model_dump()}


async def test_the_async_interface(
    async_client: AsyncChatSessionsClient, client: ChatSessionsClient
) -> None:
    for history in (
        ChatSessionsChatMessageHistory("async-only", client=async_client),
        ChatSessionsChatMessageHistory("sync-in-thread", client=client),
    ):
        await history.aadd_messages([HumanMessage("Hello"), HumanMessage("World")])
        await history.aadd_messages([HumanMessage("!")])
        assert await history.aget_messages() == [
            HumanMessage("Hello"),
            HumanMessage("World"),
            HumanMessage("!"),
        ]
        await history.aclear()
        assert await history.aget_messages() == []
    with pytest.raises(TypeError, match="async client only"):
        _ = ChatSessionsChatMessageHistory("async-only", client=async_client).messages


def test_nothing_is_sent_before_the_first_read_or_write() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent {request.method} {request.url.path}")

    offline = ChatSessionsClient("http://service", "key", transport=httpx.MockTransport(refuse))
    ChatSessionsChatMessageHistory("quiet", client=offline, user_id="u-1")


def test_concurrent_first_writes_share_one_session(client: ChatSessionsClient) -> None:
    def write(n: int) -> None:
        ChatSessionsChatMessageHistory("race", client=client).add_user_message(f"w{n}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    history = ChatSessionsChatMessageHistory("race", client=client)
    assert sorted(m.content for m in history.messages) == [f"w{n}" for n in range(8)]  # type: ignore[type-var]
    assert len(client.list_sessions(external_id_prefix="race").data) == 1


# LangChain 1.x deprecates it for LangGraph's persistence, but it is what people use today.
@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history_sees_the_earlier_turns(
    client: ChatSessionsClient,
) -> None:
    model = FakeMessagesListChatModel(responses=[AIMessage("Hi Bob!"), AIMessage("You are Bob.")])
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{question}")]
    )
    seen: list[list[BaseMessage]] = []

    def remember(value: object) -> object:
        seen.append(list(value.to_messages()))  # type: ignore[attr-defined]
        return value

    chain = RunnableWithMessageHistory(
        prompt | remember | model,
        lambda session_id: ChatSessionsChatMessageHistory(session_id, client=client),
        input_messages_key="question",
        history_messages_key="history",
    )
    config = {"configurable": {"session_id": "bob"}}
    chain.invoke({"question": "I am Bob."}, config=config)  # type: ignore[arg-type]
    answer = chain.invoke({"question": "Who am I?"}, config=config)  # type: ignore[arg-type]

    assert answer.content == "You are Bob."
    assert [m.content for m in seen[1]] == ["I am Bob.", "Hi Bob!", "Who am I?"]
    stored = ChatSessionsChatMessageHistory("bob", client=client).messages
    assert [m.content for m in stored] == ["I am Bob.", "Hi Bob!", "Who am I?", "You are Bob."]
