"""The client's event stream against a running service: typed events as they happen, a stream
that goes on after its connection is cut mid-answer (resumed with `Last-Event-ID`: nothing
repeated, nothing lost), and the end of the stream when the session is deleted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from chat_sessions_client import AsyncChatSessionsClient, ChatSessionsClient, NotFoundError
from chat_sessions_client.events import (
    Event,
    MessageCreated,
    MessageDelta,
    MessageUpdated,
    SessionDeleted,
)
from clients.conftest import Service


class _CuttableStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, transport: CuttingTransport) -> None:
        self.inner = inner
        self.transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.transport.chunk_arrived.set()
            if self.transport.cut_next:
                # The chunk that came is lost with the connection, as in a real drop.
                self.transport.cut_next = False
                await self.inner.aclose()
                raise httpx.ReadError("connection cut by the test")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CuttingTransport(httpx.AsyncHTTPTransport):
    """A real HTTP transport whose open response the test can cut: the next chunk to arrive is
    dropped with the connection. It records each request's `Last-Event-ID`, and sets
    `chunk_arrived` when a chunk comes (then, `cut_next` applies to the one after it)."""

    def __init__(self) -> None:
        super().__init__()
        self.cut_next = False
        self.chunk_arrived = asyncio.Event()
        self.last_event_ids: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            self.last_event_ids.append(request.headers.get("Last-Event-ID"))
        response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CuttableStream(response.stream, self)
        return response


async def _until(events: AsyncIterator[Event], done: Callable[[Event], bool]) -> list[Event]:
    taken: list[Event] = []
    async for event in events:
        taken.append(event)
        if done(event):
            return taken
    raise AssertionError(f"the stream ended before the awaited event: {taken}")


def _render(events: list[Event]) -> dict[str, dict[str, Any]]:
    """What a frontend shows, by message id: a message as sent, its deltas added."""
    shown: dict[str, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, (MessageCreated, MessageUpdated)):
            message = event.message
            shown[message.id] = {"content": message.content, "status": message.status}
        elif isinstance(event, MessageDelta):
            shown[event.message_id]["content"] += event.delta
    return shown


def test_two_events_then_the_end_on_deletion(service: Service) -> None:
    with ChatSessionsClient(service.base_url, service.api_key) as client:
        session = client.create_session()
        client.append_message(session.id, "user", "Find me a hotel")
        client.append_message(session.id, "assistant", "Here are three.")
        events: Iterator[Event] = client.events(session.id, after_seq=0)
        created: list[MessageCreated] = []
        for event in events:
            if isinstance(event, MessageCreated):
                created.append(event)
            if len(created) == 2:
                break
        assert [(e.message.seq, e.message.content) for e in created] == [
            (1, "Find me a hotel"),
            (2, "Here are three."),
        ]
        client.delete_session(session.id)
        rest = list(events)  # the same stream, still open, ends with the deletion
        assert isinstance(rest[-1], SessionDeleted) and rest[-1].session_id == session.id


async def test_a_cut_mid_answer_resumes_without_repeating_or_losing(service: Service) -> None:
    cutter = CuttingTransport()
    async with (
        AsyncChatSessionsClient(service.base_url, service.api_key) as writer,
        AsyncChatSessionsClient(service.base_url, service.api_key, transport=cutter) as reader,
    ):
        session = await writer.create_session()
        await writer.append_message(session.id, "user", "Where to stay?")
        answer = await writer.append_message(session.id, "assistant", "", status="in_progress")
        await writer.append_delta(session.id, answer.id, "Alfama ")
        events = reader.events(session.id, after_seq=0)

        def is_answer(event: Event) -> bool:
            return isinstance(event, MessageCreated) and event.message.id == answer.id

        before = await _until(events, is_answer)
        cutter.cut_next = True  # the next event is lost with the connection
        await writer.append_delta(session.id, answer.id, "is the old town.")
        await writer.close_message(session.id, answer.id, token_count=6)

        def is_closed(event: Event) -> bool:
            return isinstance(event, MessageUpdated) or (
                is_answer(event) and event.message.status == "completed"  # type: ignore[union-attr]
            )

        after = await _until(events, is_closed)
        ids = [event.id for event in before + after]
        resumed_from = cutter.last_event_ids[1:]  # the first connection had none
        assert len(resumed_from) == 1 and resumed_from[0] in ids
        assert len(set(ids)) == len(ids)
        shown = _render(before + after)
        assert shown[answer.id] == {"content": "Alfama is the old town.", "status": "completed"}

        await writer.delete_session(session.id)
        end = await _until(events, lambda event: isinstance(event, SessionDeleted))
        assert isinstance(end[-1], SessionDeleted) and end[-1].session_id == session.id
        with pytest.raises(StopAsyncIteration):
            await anext(events)


async def test_a_cut_before_the_first_event_of_a_stream_from_now_loses_nothing(
    service: Service,
) -> None:
    cutter = CuttingTransport()
    async with (
        AsyncChatSessionsClient(service.base_url, service.api_key) as writer,
        AsyncChatSessionsClient(service.base_url, service.api_key, transport=cutter) as reader,
    ):
        session = await writer.create_session()
        await writer.append_message(session.id, "user", "Already there")
        events = reader.events(session.id)  # from now: no after_seq, no Last-Event-ID
        first = asyncio.ensure_future(anext(events))
        async with asyncio.timeout(20):  # only a bound against a hung test
            await cutter.chunk_arrived.wait()  # the stream's opening: its position
        cutter.cut_next = True  # the first real event is lost with the connection
        await writer.append_message(session.id, "user", "While the line was down")
        async with asyncio.timeout(20):
            event = await first
        assert isinstance(event, MessageCreated)
        assert event.message.content == "While the line was down"
        assert cutter.last_event_ids[0] is None and cutter.last_event_ids[1] is not None
        await events.aclose()


async def test_an_unknown_session_is_an_error_not_a_retry(service: Service) -> None:
    async with AsyncChatSessionsClient(service.base_url, service.api_key) as client:
        with pytest.raises(NotFoundError):
            await anext(client.events("no-such-session"))
