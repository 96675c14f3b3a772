"""OpenAI's own SDKs, unmodified, on the test's app: over HTTP (httpx2, the SDK's HTTP client,
with the app mounted as its transport), so every test runs on each engine like the other
HTTP tests (conftest.py's `app`).

The synchronous `openai.OpenAI` is driven from a worker thread (`asyncio.to_thread`); its
transport hands each request to the app on the test's event loop, where the database's
connections belong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import httpx2
import openai
from litestar import Litestar

BASE_URL = "http://testserver/v1"
T = TypeVar("T")


class AppOnLoopTransport(httpx2.BaseTransport):
    """A synchronous transport to an ASGI app that runs on an event loop in another thread."""

    def __init__(self, app: Litestar, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = httpx2.ASGITransport(app=app)
        self._loop = loop

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()

        async def send() -> httpx2.Response:
            response = await self._transport.handle_async_request(request)
            body = await response.aread()
            return httpx2.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run_coroutine_threadsafe(send(), self._loop).result()


def sync_openai(app: Litestar, api_key: str) -> openai.OpenAI:
    """`openai.OpenAI` as a user makes it (base_url, api_key), on the app; no retries, so a
    test sees every answer."""
    transport = AppOnLoopTransport(app, asyncio.get_running_loop())
    return openai.OpenAI(
        base_url=BASE_URL,
        api_key=api_key,
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def async_openai(app: Litestar, api_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=BASE_URL,
        api_key=api_key,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)),
    )


async def in_thread(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A call of the synchronous SDK, off the event loop that serves it."""
    return await asyncio.to_thread(call, *args, **kwargs)


def answered(item: dict[str, Any]) -> dict[str, Any]:
    """`item` as the Conversations routes answer it: a message's string content as one text
    part (`output_text` for the assistant, `input_text` otherwise), as OpenAI answers it."""
    content = item.get("content")
    if item.get("type", "message") != "message" or not isinstance(content, str):
        return item
    kind = "output_text" if item.get("role") == "assistant" else "input_text"
    return {**item, "content": [{"type": kind, "text": content}]}
