"""A client of the event stream for tests: reads Server-Sent Events from a real server as a
frontend would (one HTTP connection of its own per stream), with the `Last-Event-ID` it saw."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

# Only a bound against a hung test: no assertion is about how long anything takes.
WAIT_SECONDS = 20.0


@dataclass
class Event:
    kind: str
    data: Any
    id: str | None


@dataclass
class Stream:
    response: httpx.Response
    lines: AsyncIterator[str]
    last_event_id: str | None = None
    pings: int = 0
    ended: bool = False
    events: list[Event] = field(default_factory=list)

    async def next_event(self) -> Event:
        """The next event (comments counted in `pings`); AssertionError at the stream's end."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(WAIT_SECONDS):
            async for line in self.lines:
                if line == "":
                    block, fields = fields, {}
                    if block.get("id"):  # an id sets the last event id, with data or without
                        self.last_event_id = block["id"]
                    if "event" in block or "data" in block:
                        event = Event(
                            block.get("event", "message"),
                            json.loads(block.get("data", "null")),
                            block.get("id"),
                        )
                        self.events.append(event)
                        return event
                    continue
                if line.startswith(":"):
                    self.pings += line.strip() == ": ping"
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        self.ended = True
        raise AssertionError("the stream ended")

    async def position(self) -> str:
        """The id a stream from now opens with (an event with no data: nothing dispatched)."""
        async with asyncio.timeout(WAIT_SECONDS):
            async for line in self.lines:
                name, _, value = line.partition(":")
                if name == "id":
                    self.last_event_id = value.removeprefix(" ")
                elif line == "" and self.last_event_id is not None:
                    return self.last_event_id
                elif line and not line.startswith(":"):
                    raise AssertionError(f"an event came before the position: {line}")
        raise AssertionError("the stream ended")

    async def take(self, count: int) -> list[Event]:
        return [await self.next_event() for _ in range(count)]

    async def until(self, kind: str) -> list[Event]:
        """Events up to and including the next one of `kind`."""
        taken = [await self.next_event()]
        while taken[-1].kind != kind:
            taken.append(await self.next_event())
        return taken

    async def wait_for_ping(self) -> None:
        pings = self.pings
        async with asyncio.timeout(WAIT_SECONDS):
            async for line in self.lines:
                if line.startswith(":"):
                    self.pings += line.strip() == ": ping"
                if self.pings > pings:
                    return
        raise AssertionError("the stream ended")

    async def read_to_end(self) -> list[Event]:
        """Every event until the server ends the stream."""
        events = []
        try:
            while True:
                events.append(await self.next_event())
        except AssertionError:
            return events


@asynccontextmanager
async def follow(
    base_url: str, session_id: str, headers: dict[str, str], *, query: str = ""
) -> AsyncIterator[Stream]:
    """A stream of the session on a connection of its own; 200 asserted."""
    path = f"/v1/sessions/{session_id}/events{query}"
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        yield Stream(response, response.aiter_lines())
