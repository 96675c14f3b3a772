"""Safe retries, proven by losing answers: a transport that lets a request reach the real
service, lets the service store it, and then drops the answer as a broken connection would.
An append is retried under the Idempotency-Key the client made, so it is stored once; a call
that is not safe to send twice (a pop) is not retried once it may have arrived. Backoff is
set to 0: the tests wait on nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from chat_sessions_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncChatSessionsClient,
    ChatSessionsClient,
    NewMessage,
    Retries,
    ServerError,
)
from clients.conftest import Service

NO_WAIT = Retries(backoff_seconds=0)
Matches = Callable[[httpx.Request], bool]


def is_append(request: httpx.Request) -> bool:
    return request.method == "POST" and "/messages" in request.url.path


class LosesAnswers(httpx.BaseTransport):
    """Forwards to the service; the first answer to each matching request (by its
    Idempotency-Key, if any) is read, so the service has done its work, and then lost."""

    def __init__(self, matches: Matches) -> None:
        self.inner = httpx.HTTPTransport()
        self.matches = matches
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.matches(request):
            key = request.headers.get("Idempotency-Key")
            first_time = key is None or key not in self.keys
            self.keys.append(key)
            if first_time:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


class AsyncLosesAnswers(httpx.AsyncBaseTransport):
    def __init__(self, matches: Matches) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.matches = matches
        self.lost = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.matches(request) and not self.lost:
            self.lost = True
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


class Answers(httpx.BaseTransport):
    """Answers every request with the next of `statuses` (the last one repeats), without a
    service: for what the client does with statuses a service sends rarely."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        body = {"status": status, "title": "x", "detail": f"answer {self.sent}"}
        if status < 400:
            body = {"sessions": 1, "messages": 2, "tokens": 3, "users": 4}
        return httpx.Response(status, json=body, headers=self.headers)


def test_an_append_whose_answer_was_lost_is_stored_once(service: Service) -> None:
    transport = LosesAnswers(is_append)
    with ChatSessionsClient(
        service.base_url, service.api_key, transport=transport, retries=NO_WAIT
    ) as client:
        session = client.create_session()
        message = client.append_message(session.id, "user", "only once")
        batch = client.append_messages(
            session.id, [NewMessage("user", "a"), NewMessage("user", "b")]
        )

        assert message.replayed and message.seq == 1
        assert [m.seq for m in batch] == [2, 3] and batch[0].replayed
        assert [m.content for m in client.iter_messages(session.id)] == ["only once", "a", "b"]
    # Each append was sent twice, under one key the client made for it.
    first, retried, second, retried_second = transport.keys
    assert first == retried and second == retried_second and first != second


async def test_the_async_client_retries_a_lost_append_without_storing_twice(
    service: Service,
) -> None:
    async with AsyncChatSessionsClient(
        service.base_url, service.api_key, transport=AsyncLosesAnswers(is_append), retries=NO_WAIT
    ) as client:
        session = await client.create_session()
        message = await client.append_message(session.id, "user", "once", idempotency_key="k-1")
        assert message.replayed
        assert (await client.get_session(session.id)).message_count == 1


def test_a_pop_whose_answer_was_lost_is_not_sent_again(service: Service) -> None:
    def is_pop(request: httpx.Request) -> bool:
        return request.method == "DELETE" and request.url.path.endswith("/messages/last")

    with ChatSessionsClient(
        service.base_url, service.api_key, transport=LosesAnswers(is_pop), retries=NO_WAIT
    ) as client:
        session = client.create_session()
        client.append_messages(session.id, [NewMessage("user", "a"), NewMessage("user", "b")])
        with pytest.raises(APIConnectionError):
            client.pop_message(session.id)
        # Popped once, by the one request the service received: "a" is still there.
        assert [m.content for m in client.iter_messages(session.id)] == ["a"]


def test_busy_and_failing_answers_are_retried_then_raised_with_their_problem() -> None:
    busy = Answers(503, 429, 200, headers={"Retry-After": "0"})
    with ChatSessionsClient("http://service", "key", transport=busy, retries=NO_WAIT) as client:
        assert client.get_stats().messages == 2
    assert busy.sent == 3

    failing = Answers(500)
    client = ChatSessionsClient("http://service", "key", transport=failing, retries=NO_WAIT)
    with client, pytest.raises(ServerError) as error:
        client.get_stats()
    assert failing.sent == NO_WAIT.attempts
    assert error.value.problem["detail"] == f"answer {NO_WAIT.attempts}"

    refused = Answers(500)
    client = ChatSessionsClient("http://service", "key", transport=refused, retries=NO_WAIT)
    with client, pytest.raises(ServerError):
        client.pop_message("s-1")  # it may have popped: a 5xx is no reason to pop again
    assert refused.sent == 1


def test_a_service_that_never_answers_is_a_timeout_after_the_attempts() -> None:
    attempts = 0

    def never_answers(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ReadTimeout("timed out", request=request)

    transport = httpx.MockTransport(never_answers)
    retries = Retries(attempts=2, backoff_seconds=0)
    with (
        ChatSessionsClient("http://service", "key", transport=transport, retries=retries) as client,
        pytest.raises(APITimeoutError),
    ):
        client.get_session("s-1")
    assert attempts == 2
