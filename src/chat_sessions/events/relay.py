"""PostgreSQL: the changes one process commits reach the event streams of every other, by
LISTEN/NOTIFY on one channel, over one connection of each process's own (not the pool's).

The payload is a pointer, not the event: the ids of the sessions that changed (and, for a
removal, the seq it cut after), one per line, as many as fit under NOTIFY's 8,000 bytes. A
stream that hears of its session catches up from the database (follow.py), so the events it
sends follow the stored history whatever order the notifications arrive in.

Off the request's path: a request's changes are handed over after its commit (the hub's
after-commit hook) and it does not wait; the relay sends whatever has gathered meanwhile, in one
`pg_notify` per batch, from its own connection. So an append costs no round trip more. The
price: a process that dies between a commit and its NOTIFY never announces that change. Every
stream also catches up at each keep-alive (EVENTS_PING_SECONDS, at most 15 s), so such a change
reaches the other processes' streams by then, or sooner with the session's next change.

A lost connection is opened again (after 0.1 s, doubling to 5 s while it fails), and then
every stream of the process catches up: whatever was notified meanwhile is read from the
database, so nothing is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from chat_sessions.db.transaction import SessionChange

log = logging.getLogger(__name__)

CHANNEL = "chat_sessions_events"
# How the relay's connections show in pg_stat_activity (the process id tells them apart).
APPLICATION_NAME = f"chat-sessions events {os.getpid()}"
# NOTIFY refuses payloads of 8,000 bytes or more.
MAX_PAYLOAD_BYTES = 7_900
# Changes kept while the connection is down; past it the oldest go (the streams catch up on
# reconnect anyway, which is all a lost announcement costs).
MAX_PENDING = 10_000
FIRST_RETRY_SECONDS = 0.1
LAST_RETRY_SECONDS = 5.0


def encode_batches(changes: Sequence[SessionChange]) -> list[str]:
    """The payloads announcing `changes`: a line each, `<session id>[ <truncated after>]`."""
    batches: list[str] = []
    lines: list[str] = []
    size = 0
    for change in changes:
        line = (
            change.session_id
            if change.truncated_after is None
            else f"{change.session_id} {change.truncated_after}"
        )
        if lines and size + len(line) + 1 > MAX_PAYLOAD_BYTES:
            batches.append("\n".join(lines))
            lines, size = [], 0
        lines.append(line)
        size += len(line) + 1
    if lines:
        batches.append("\n".join(lines))
    return batches


def decode_payload(payload: str) -> list[SessionChange]:
    changes = []
    for line in payload.splitlines():
        session_id, _, after = line.partition(" ")
        if session_id:
            changes.append(SessionChange(session_id, int(after) if after.isdigit() else None))
    return changes


class NotifyRelay:
    """One process's LISTEN/NOTIFY connection (see the module's notes)."""

    def __init__(
        self,
        url: str,
        deliver: Callable[[Sequence[SessionChange]], None],
        catch_up_all: Callable[[], None],
    ) -> None:
        # asyncpg takes the URL without SQLAlchemy's driver name.
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._deliver = deliver
        self._catch_up_all = catch_up_all
        self._pending: list[SessionChange] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        """Connect (waiting briefly, so a stream opened at once hears the other processes)."""
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._connected.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def send(self, changes: Sequence[SessionChange]) -> None:
        """Announce `changes` to the other processes, soon; never waits."""
        self._pending.extend(changes)
        if len(self._pending) > MAX_PENDING:
            del self._pending[: len(self._pending) - MAX_PENDING]
        self._wake.set()

    async def _run(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": APPLICATION_NAME}
                )
                if delay > FIRST_RETRY_SECONDS:
                    log.info("the event relay's PostgreSQL connection is back")
                delay = FIRST_RETRY_SECONDS
                await self._relay_on(connection)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning(
                    "the event relay lost PostgreSQL (%s); connecting again in %.1f s",
                    type(error).__name__,
                    delay,
                )
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY_SECONDS)

    async def _relay_on(self, connection: Any) -> None:
        """Listen and send on `connection` until it is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        own_pid = connection.get_server_pid()

        def heard(_connection: Any, pid: int, _channel: str, payload: str) -> None:
            if pid != own_pid:  # its own NOTIFYs come back too
                self._deliver(decode_payload(payload))

        await connection.add_listener(CHANNEL, heard)
        self._connected.set()
        self._catch_up_all()  # what was notified while it was not listening
        await self._send_while_connected(connection, lost)

    async def _send_while_connected(self, connection: Any, lost: asyncio.Event) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                waiting = asyncio.ensure_future(self._wake.wait())
                dropped = asyncio.ensure_future(lost.wait())
                try:
                    await asyncio.wait({waiting, dropped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiting.cancel()
                    dropped.cancel()
                if lost.is_set():
                    raise ConnectionResetError("the LISTEN connection was terminated")
                continue
            changes, self._pending = self._pending, []
            for payload in encode_batches(changes):
                try:
                    await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                except BaseException:
                    self._pending[:0] = changes  # announced again once reconnected
                    raise
