"""What `chat-sessions serve` adds to uvicorn: a read deadline on every request, an access log
without query strings, and two hooks for event streams (events/): a shutdown that ends them
first (uvicorn's graceful shutdown waits for open responses, and a stream never ends by
itself), and, in each request's scope, what aborts its connection (a stream whose client
stopped reading is dropped as a lost client is: no error logged, no buffer kept).

uvicorn bounds only the idle time between two requests of a connection (`timeout_keep_alive`);
nothing bounds how long a client takes to send a request, so a client trickling bytes holds a
connection (and, mid-body, a handler waiting for its body) for as long as it likes.
`ReadTimeoutProtocol` gives every request REQUEST_READ_TIMEOUT_SECONDS from its first byte
(from the connection's opening, for the first one) to its last: past it the client gets a
`408` when no response has begun, and the connection is closed. The application sees a
disconnect: a handler still waiting for the body never runs, so nothing is stored. This
reaches into uvicorn's request cycle (`cycle.disconnected`, `cycle.message_event`), which is
not public: pyproject.toml bounds uvicorn to the tested minor, and tests/http/test_edges.py
fails when the cycle changes.

The access log's request line names the path without the query string: a query can carry an
API key (`?api_key=...`) or what a user searched for (`/v1/search?q=...`).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chat_sessions.events.hub import end_all_streams
from chat_sessions.events.stream import ABORT_EXTENSION
from chat_sessions.settings import Settings

log = logging.getLogger("chat_sessions")

# uvicorn's import path for the protocol class: each worker process imports it.
HTTP_PROTOCOL = "chat_sessions.server:ReadTimeoutProtocol"


class AccessLogWithoutQuery(logging.Filter):
    """uvicorn logs `(client, method, path?query, http version, status)`: keep the path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].partition("?")[0], args[3], args[4])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging set-up, its access log passed through `AccessLogWithoutQuery`."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["path_only"] = {"()": AccessLogWithoutQuery}
    config["loggers"]["uvicorn.access"]["filters"] = ["path_only"]
    return config


@functools.cache
def read_timeout_seconds() -> float:
    """From the settings of this process (a worker imports the protocol by name)."""
    return Settings().request_read_timeout_seconds


def request_timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Request Timeout",
            "status": 408,
            "detail": f"the request was not received in full within {seconds:g} s",
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class ReadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on reading each request (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout_seconds()
        self.read_deadline: asyncio.TimerHandle | None = None
        self.headers_pending = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.headers_pending = True
        if self.read_deadline is None:  # the first request's deadline runs from connect
            self._start_deadline()

    def on_headers_complete(self) -> None:
        self.headers_pending = False
        # An event stream whose client stopped reading is dropped as a lost client is: the
        # buffered bytes discarded, the application told of a disconnect (events/stream.py).
        extensions: Any = self.scope.setdefault("extensions", {})
        extensions[ABORT_EXTENSION] = self.transport.abort
        super().on_headers_complete()

    def shutdown(self) -> None:
        # uvicorn waits for every open response before it shuts the application down, and an
        # event stream never ends by itself: end them as the shutdown begins.
        end_all_streams()
        super().shutdown()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_deadline()

    def _start_deadline(self) -> None:
        self.read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _cancel_deadline(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _read_timed_out(self) -> None:
        self.read_deadline = None
        if self.transport.is_closing():
            return
        cycle = None if self.headers_pending else self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(request_timeout_response(self.read_timeout))
        if cycle is not None and not cycle.response_complete:
            # What uvicorn does on a lost connection, at once: the application's `receive`
            # answers a disconnect, and its `send` is dropped (the 408 is the answer).
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        log.info(
            "%s did not send its request within %g s: answered 408, connection closed",
            client,
            self.read_timeout,
        )
