"""`ChatSessionsClient` (sync) and `AsyncChatSessionsClient`: each operation of
`operations.py` is a method of both (the `Operation` descriptor binds it to the client's way of
sending), so the two cannot drift apart; what differs is only how a call is sent and waited
on, and how listings are walked page by page.

Phase 2's branches and fork slot in the same way: an operation function per route
(`message_operations.py`, `operations.py`) and one line here. The event stream is `events()`, an
`Iterator` on the sync client and an `AsyncIterator` on the async one; what they share (the
format, typed events, resuming with `Last-Event-ID`) is events.py's `Follow`."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, ParamSpec, TypeVar, overload

import httpx

from chat_sessions_client import message_operations as mop
from chat_sessions_client import operations as op
from chat_sessions_client.calls import Answer, Call, Retries
from chat_sessions_client.errors import APIConnectionError, APITimeoutError, error_for
from chat_sessions_client.events import DEFAULT_READ_TIMEOUT, Event, Follow, StreamEnded
from chat_sessions_client.models import Message, Page, Session, ToolCall

P = ParamSpec("P")
T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "chat-sessions-client/0.1.0"


class Operation(Generic[P, T]):
    """An operation as a method: `client.append_message(...)` builds the call and sends it,
    returning the result (sync client) or an awaitable of it (async client)."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: None, owner: type) -> Operation[P, T]: ...
    @overload
    def __get__(self, client: ChatSessionsClient, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, client: AsyncChatSessionsClient, owner: type
    ) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self

        @functools.wraps(self.build)
        def method(*args: P.args, **kwargs: P.kwargs) -> Any:
            return client._send(self.build(*args, **kwargs))

        return method


class _Operations:
    """The tenant API (operations.py and message_operations.py document each operation)."""

    create_session = Operation(op.create_session)
    get_session = Operation(op.get_session)
    get_snapshot = Operation(op.get_snapshot)
    find_session = Operation(op.find_session)
    list_sessions = Operation(op.list_sessions)
    update_session = Operation(op.update_session)
    replace_traits = Operation(op.replace_traits)
    delete_session = Operation(op.delete_session)
    fork = Operation(op.fork)
    append_message = Operation(mop.append_message)
    append_messages = Operation(mop.append_messages)
    list_messages = Operation(mop.list_messages)
    get_message = Operation(mop.get_message)
    truncate_messages = Operation(mop.truncate_messages)
    pop_message = Operation(mop.pop_message)
    append_delta = Operation(mop.append_delta)
    close_message = Operation(mop.close_message)
    get_context = Operation(mop.get_context)
    create_tool_call = Operation(op.create_tool_call)
    update_tool_call = Operation(op.update_tool_call)
    list_tool_calls = Operation(op.list_tool_calls)
    search = Operation(op.search)
    export_session = Operation(op.export_session)
    import_session = Operation(op.import_session)
    get_stats = Operation(op.get_stats)
    get_user_traits = Operation(op.get_user_traits)
    patch_user_traits = Operation(op.patch_user_traits)
    replace_user_traits = Operation(op.replace_user_traits)
    erase_user = Operation(op.erase_user)


def _settings(base_url: str, api_key: str, timeout: float | httpx.Timeout | None) -> dict[str, Any]:
    return {
        "base_url": base_url.rstrip("/"),
        "headers": {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
        "timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
    }


def _request(http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
    return http.build_request(
        call.method,
        call.path,
        params=call.params,
        json=call.json if call.method in ("POST", "PATCH", "PUT") else None,
        headers=dict(call.headers),
    )


def _result(call: Call[T], response: httpx.Response) -> T:
    body = response.json() if response.content else None
    return call.parse(Answer(response.status_code, response.headers, body))


def _gave_up(error: httpx.TransportError) -> APIConnectionError:
    kind = APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
    # The error's text names the address, never the request's headers (the API key).
    return kind(f"no answer from the service: {type(error).__name__}: {error}")


class ChatSessionsClient(_Operations):
    """The tenant API over HTTP, blocking. `with ChatSessionsClient(...) as client:` closes
    its connections at the end (or call `close()`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        retries: Retries | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retries = retries or Retries()
        self._http = httpx.Client(transport=transport, **_settings(base_url, api_key, timeout))

    def _send(self, call: Call[T]) -> T:
        request = _request(self._http, call)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.send(request)
            except httpx.TransportError as error:
                delay = self.retries.delay_after_error(call, error, attempt)
                if delay is None:
                    raise _gave_up(error) from error
            else:
                if response.is_success:
                    return _result(call, response)
                delay = self.retries.delay_after_status(call, response, attempt)
                if delay is None:
                    raise error_for(response)
            time.sleep(delay)

    def _pages(self, first: Callable[[str | None], Call[Page[T]]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = self._send(first(cursor))
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def iter_messages(self, session_id: str, **filters: Any) -> Iterator[Message]:
        """Every message (with `list_messages`'s filters), page after page by cursor."""
        return self._pages(lambda cursor: mop.list_messages(session_id, cursor=cursor, **filters))

    def iter_sessions(self, **filters: Any) -> Iterator[Session]:
        return self._pages(lambda cursor: op.list_sessions(cursor=cursor, **filters))

    def iter_tool_calls(self, session_id: str, **filters: Any) -> Iterator[ToolCall]:
        return self._pages(lambda cursor: op.list_tool_calls(session_id, cursor=cursor, **filters))

    def events(
        self,
        session_id: str,
        *,
        after_seq: int | None = None,
        last_event_id: str | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> Iterator[Event]:
        """The session's events as they happen (from after `last_event_id`, or after seq
        `after_seq`, or from now), reconnecting with `Last-Event-ID` after a dropped connection;
        it ends after `SessionDeleted`. Closing the iterator closes the connection."""
        follow = Follow(
            session_id,
            self.retries,
            after_seq=after_seq,
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )
        while not follow.ended:
            try:
                response = self._http.send(follow.request(self._http), stream=True)
                try:
                    if not response.is_success:
                        response.read()
                        time.sleep(follow.delay_after_status(response))
                        continue
                    for text in response.iter_text():
                        yield from follow.take(text)
                        if follow.ended:
                            return
                finally:
                    response.close()
                raise StreamEnded("the server ended the event stream")
            except httpx.TransportError as error:
                delay = follow.delay_after_drop(error)
                if delay is None:
                    raise _gave_up(error) from error
            time.sleep(delay)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatSessionsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncChatSessionsClient(_Operations):
    """The tenant API over HTTP, for asyncio: every method is awaited. `async with` closes its
    connections at the end (or `await aclose()`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout | None = None,
        retries: Retries | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retries = retries or Retries()
        self._http = httpx.AsyncClient(transport=transport, **_settings(base_url, api_key, timeout))

    async def _send(self, call: Call[T]) -> T:
        request = _request(self._http, call)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.send(request)
            except httpx.TransportError as error:
                delay = self.retries.delay_after_error(call, error, attempt)
                if delay is None:
                    raise _gave_up(error) from error
            else:
                if response.is_success:
                    return _result(call, response)
                delay = self.retries.delay_after_status(call, response, attempt)
                if delay is None:
                    raise error_for(response)
            await asyncio.sleep(delay)

    async def _pages(self, first: Callable[[str | None], Call[Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            page = await self._send(first(cursor))
            for item in page.data:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def iter_messages(self, session_id: str, **filters: Any) -> AsyncIterator[Message]:
        """Every message (with `list_messages`'s filters), page after page by cursor."""
        return self._pages(lambda cursor: mop.list_messages(session_id, cursor=cursor, **filters))

    def iter_sessions(self, **filters: Any) -> AsyncIterator[Session]:
        return self._pages(lambda cursor: op.list_sessions(cursor=cursor, **filters))

    def iter_tool_calls(self, session_id: str, **filters: Any) -> AsyncIterator[ToolCall]:
        return self._pages(lambda cursor: op.list_tool_calls(session_id, cursor=cursor, **filters))

    async def events(
        self,
        session_id: str,
        *,
        after_seq: int | None = None,
        last_event_id: str | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> AsyncIterator[Event]:
        """The session's events as they happen (from after `last_event_id`, or after seq
        `after_seq`, or from now), reconnecting with `Last-Event-ID` after a dropped connection;
        it ends after `SessionDeleted`. Closing the iterator closes the connection."""
        follow = Follow(
            session_id,
            self.retries,
            after_seq=after_seq,
            last_event_id=last_event_id,
            read_timeout=read_timeout,
        )
        while not follow.ended:
            try:
                response = await self._http.send(follow.request(self._http), stream=True)
                try:
                    if not response.is_success:
                        await response.aread()
                        await asyncio.sleep(follow.delay_after_status(response))
                        continue
                    async for text in response.aiter_text():
                        for event in follow.take(text):
                            yield event
                        if follow.ended:
                            return
                finally:
                    await response.aclose()
                raise StreamEnded("the server ended the event stream")
            except httpx.TransportError as error:
                delay = follow.delay_after_drop(error)
                if delay is None:
                    raise _gave_up(error) from error
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncChatSessionsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
