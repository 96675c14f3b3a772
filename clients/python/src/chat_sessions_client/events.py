"""The event stream of a session (`GET /v1/sessions/{id}/events`, server-sent events) as typed
events, and `Follow`: what both clients' `events()` iterators share to resume it. The iterators
themselves (client.py) only open the connection and wait, the sync or the async way.

Resumption: every event's `id` is kept; when the connection drops (a network error, a read
silent for longer than `read_timeout` though the server pings every 15 s, or the server ending
the response, as it does to a reader that fell too far behind), `Follow` opens it again with
`Last-Event-ID`, and the service sends what was missed, then goes on live: no event is repeated
and none is lost. A stream started from now opens with its position (an id with no data), so a
drop before the first event resumes from there too. The stream ends after `session.deleted`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from chat_sessions_client.calls import Call, Retries, segment
from chat_sessions_client.errors import error_for
from chat_sessions_client.models import Message, Session

# A quiet stream gets a `: ping` every EVENTS_PING_SECONDS (15 by default): no byte for this
# long means the connection is gone, though no error said so.
DEFAULT_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class MessageCreated:
    """A message appended, or one the client missed, sent as it is now (an answer still
    streaming with its text so far; its deltas follow)."""

    id: str
    message: Message


@dataclass(frozen=True)
class MessageDelta:
    """Text added to the `in_progress` message `message_id`."""

    id: str
    message_id: str
    seq: int
    delta: str


@dataclass(frozen=True)
class MessageUpdated:
    """An `in_progress` message closed (`completed`, or `interrupted` by the idle sweep)."""

    id: str
    message: Message


@dataclass(frozen=True)
class MessagesDeleted:
    """Every message above `after_seq` is gone (a truncation, a pop)."""

    id: str
    after_seq: int


@dataclass(frozen=True)
class SessionUpdated:
    id: str
    session: Session


@dataclass(frozen=True)
class SessionDeleted:
    """The session was deleted; the stream ends with it."""

    id: str
    session_id: str


@dataclass(frozen=True)
class UnknownEvent:
    """An event type this client does not know (a newer service), kept as it came."""

    id: str
    type: str
    data: Any


Event = (
    MessageCreated
    | MessageDelta
    | MessageUpdated
    | MessagesDeleted
    | SessionUpdated
    | SessionDeleted
    | UnknownEvent
)


def typed_event(kind: str, event_id: str, data: Any) -> Event:
    if kind == "message.created":
        return MessageCreated(event_id, Message.from_json(data))
    if kind == "message.delta":
        return MessageDelta(event_id, data["id"], data["seq"], data["delta"])
    if kind == "message.updated":
        return MessageUpdated(event_id, Message.from_json(data))
    if kind == "messages.deleted":
        return MessagesDeleted(event_id, data["after_seq"])
    if kind == "session.updated":
        return SessionUpdated(event_id, Session.from_json(data))
    if kind == "session.deleted":
        return SessionDeleted(event_id, data["id"])
    return UnknownEvent(event_id, kind, data)


class EventDecoder:
    """The event-stream format, incrementally: text in, complete events out. Lines end with
    `\\r\\n`, `\\n` or `\\r`; a blank line ends an event; `:` lines are comments (pings)."""

    def __init__(self) -> None:
        self._pending = ""
        self._fields: dict[str, list[str]] = {}

    def feed(self, text: str) -> list[tuple[str, str, str | None]]:
        """The `(event, id, data)` of each block completed by `text` that has an event's data
        or an id; data None: an id alone, which moves the last event id and dispatches no
        event (the service opens a stream from now with one: its position)."""
        self._pending += text
        complete: list[tuple[str, str, str | None]] = []
        while True:
            cut = _line_end(self._pending)
            if cut is None:
                return complete
            line, self._pending = self._pending[: cut[0]], self._pending[cut[1] :]
            if line:
                name, _, value = line.partition(":")
                if name:  # a line starting with ":" is a comment
                    self._fields.setdefault(name, []).append(value.removeprefix(" "))
                continue
            fields, self._fields = self._fields, {}
            if "data" in fields or "id" in fields:
                kind = fields.get("event", ["message"])[-1]
                data = "\n".join(fields["data"]) if "data" in fields else None
                complete.append((kind, fields.get("id", [""])[-1], data))


def _line_end(text: str) -> tuple[int, int] | None:
    """Where the first line of `text` ends, and where the next one starts (None: not yet known;
    a `\\r` at the very end may be the first half of `\\r\\n`)."""
    for index, char in enumerate(text):
        if char == "\n":
            return index, index + 1
        if char == "\r":
            if index + 1 == len(text):
                return None
            return index, index + (2 if text[index + 1] == "\n" else 1)
    return None


class StreamEnded(httpx.TransportError):
    """The server ended the response before `session.deleted` (a reader it dropped for falling
    behind, or its shutdown): a dropped connection like any other."""


class Follow:
    """One `events()` iteration: where it is in the stream, and after a drop, whether and when
    to open it again. `Retries` bounds the attempts in a row that bring no byte: a connection
    that brought something (an event, a ping) starts the count again."""

    def __init__(
        self,
        session_id: str,
        retries: Retries,
        *,
        after_seq: int | None,
        last_event_id: str | None,
        read_timeout: float,
    ) -> None:
        self.path = f"/v1/sessions/{segment(session_id)}/events"
        self.retries = retries
        self.after_seq = after_seq
        self.last_event_id = last_event_id
        self.read_timeout = read_timeout
        self.ended = False
        self._failures = 0
        self._decoder = EventDecoder()
        self._call: Call[None] = Call("GET", self.path, parse=lambda answer: None)

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The next connection's request: after the last event seen, or where the caller said
        to start (`after_seq`), or live from now."""
        self._decoder = EventDecoder()  # a block cut by the drop is sent again whole
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        params: dict[str, Any] = {}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        elif self.after_seq is not None:
            params["after_seq"] = self.after_seq
        base = http.timeout
        timeout = httpx.Timeout(
            connect=base.connect, read=self.read_timeout, write=base.write, pool=base.pool
        )
        return http.build_request("GET", self.path, params=params, headers=headers, timeout=timeout)

    def take(self, text: str) -> list[Event]:
        """The events `text` completes; after `session.deleted`, none more."""
        self._failures = 0
        events: list[Event] = []
        for kind, event_id, data in self._decoder.feed(text):
            if self.ended:
                break
            if event_id:
                self.last_event_id = event_id
            if data is None:
                continue
            events.append(typed_event(kind, event_id, json.loads(data)))
            self.ended = kind == "session.deleted"
        return events

    def delay_after_status(self, response: httpx.Response) -> float:
        """An error answer (its body read): seconds to wait before trying again (a 429, a 5xx),
        or the error raised (a 404, a 401, a bad `Last-Event-ID`)."""
        self._failures += 1
        delay = self.retries.delay_after_status(self._call, response, self._failures)
        if delay is None:
            raise error_for(response)
        return delay

    def delay_after_drop(self, error: httpx.TransportError) -> float | None:
        """Seconds to wait before connecting again, or None to give up (`error` re-raised)."""
        self._failures += 1
        return self.retries.delay_after_error(self._call, error, self._failures)
