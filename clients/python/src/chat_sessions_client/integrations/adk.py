"""Google ADK's session service on chat-sessions: `ChatSessionsSessionService` is a
`BaseSessionService`, for `Runner(agent=..., app_name=..., session_service=...)`. How ADK's
apps, users, sessions and state scopes are laid onto the service: adk_storage.py.

- `append_event` is one request: the event is stored as a message (the event whole as its
  `item`, under an Idempotency-Key made from the event's id, so a retried event is stored
  once), and its session, `user:` and `app:` state deltas ride on it (`traits_patch`,
  `user_traits_patch`, `end_user_traits_patches` for the app's end-user), in the same
  transaction. `expected_last_seq` is the last seq this session object saw: a session object
  that another writer got ahead of is refused with ADK's `StaleSessionError`, and nothing is
  stored.
- `get_session` is one request (`GET .../snapshot`: the session, its newest events, its
  user's and its app's state), two the first time this object meets the session (found by
  its external_id first). It reads the newest events only (`num_recent_events`, or back to
  `after_timestamp`, page by page from the newest), never the whole history unless asked.
- `list_sessions` walks one index range (`external_id_prefix`); like ADK's own contract says,
  the listed sessions carry no events, and their state is the session's own (not `user:` and
  `app:`, which would cost a request per user).

Needs the `[adk]` extra."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session

from chat_sessions_client.client import AsyncChatSessionsClient
from chat_sessions_client.errors import NotFoundError, PreconditionFailedError
from chat_sessions_client.integrations import adk_storage as storage
from chat_sessions_client.models import Message, Page
from chat_sessions_client.models import Session as StoredSession

HISTORY_PAGE = 1000
LIST_PAGE = 100


def _marker(session: Session) -> int | None:
    """The last seq a session object saw. ADK's own storage services keep their revision
    marker in this private attribute of `Session` (made for that); a session built by hand
    has none, and is not checked."""
    marker = session._storage_update_marker
    return int(marker) if marker is not None and marker.isdigit() else None


def _mark(session: Session, last_seq: int) -> None:
    session._storage_update_marker = str(last_seq)


class ChatSessionsSessionService(BaseSessionService):
    def __init__(self, *, client: AsyncChatSessionsClient) -> None:
        self._client = client
        # external_id -> service id, as learnt (an ADK session's service id never changes;
        # a session deleted and made again elsewhere is looked up again after a 404).
        self._ids: dict[str, str] = {}

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        session_id = (session_id or "").strip() or str(uuid.uuid4())
        app_delta, user_delta, session_state = storage.scoped(state or {})
        now = time.time()
        external = storage.external_id(app_name, user_id, session_id)
        made = await self._client.create_session(
            external_id=external,
            user_id=storage.end_user(app_name, user_id),
            traits={**session_state, **storage.bookkeeping(now)},
        )
        if not made.created:
            raise AlreadyExistsError(f"Session with id {session_id} already exists.")
        self._ids[external] = made.id
        user_traits, app_traits = await asyncio.gather(
            self._user_state(storage.end_user(app_name, user_id), user_delta),
            self._user_state(storage.app_end_user(app_name), app_delta),
        )
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=storage.merged_state(made.traits, user_traits, app_traits),
            last_update_time=now,
        )
        _mark(session, 0)
        return session

    async def _user_state(self, end_user: str, delta: dict[str, Any]) -> dict[str, Any]:
        if delta:
            return (await self._client.patch_user_traits(end_user, delta)).traits
        return (await self._client.get_user_traits(end_user)).traits

    async def _stored(self, external: str) -> StoredSession | None:
        """The service session, by its remembered id or by its external_id."""
        service_id = self._ids.get(external)
        if service_id is not None:
            try:
                return await self._client.get_session(service_id)
            except NotFoundError:
                del self._ids[external]
        found = await self._client.find_session(external)
        if found is not None:
            self._ids[external] = found.id
        return found

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """One request for a session this object has met (its snapshot: the session, its
        newest events, its user's and its app's state), two for one it has not (found by
        external_id first); more only for events beyond the first page of 1,000."""
        session_id = session_id.strip()
        external = storage.external_id(app_name, user_id, session_id)
        config = config or GetSessionConfig()
        service_id = self._ids.get(external)
        remembered = service_id is not None
        if service_id is None:
            found = await self._client.find_session(external)
            if found is None:
                return None
            service_id = self._ids[external] = found.id
        wanted = config.num_recent_events
        page = HISTORY_PAGE if wanted is None else max(1, min(wanted, HISTORY_PAGE))
        try:
            snapshot = await self._client.get_snapshot(
                service_id,
                messages=page,
                user_traits=[storage.end_user(app_name, user_id), storage.app_end_user(app_name)],
            )
        except NotFoundError:  # deleted (and perhaps made again) since it was found
            del self._ids[external]
            if not remembered:
                return None
            return await self.get_session(
                app_name=app_name, user_id=user_id, session_id=session_id, config=config
            )
        stored, (user_traits, app_traits) = snapshot.session, snapshot.user_traits
        events, last_seq = await self._events(service_id, snapshot.messages, page, config)
        session = Session(
            id=session_id,
            app_name=app_name,
            user_id=user_id,
            state=storage.merged_state(stored.traits, user_traits.traits, app_traits.traits),
            events=events,
            last_update_time=storage.last_update_time(stored.traits),
        )
        _mark(session, last_seq)
        return session

    async def _newest_first(
        self, service_id: str, first: Page[Message], page: int
    ) -> AsyncIterator[Message]:
        """The messages from the newest back: the snapshot's page, then the pages after it."""
        while True:
            for message in first.data:
                yield message
            if first.next_cursor is None:
                return
            first = await self._client.list_messages(
                service_id, order="desc", limit=page, cursor=first.next_cursor
            )

    async def _events(
        self, service_id: str, first: Page[Message], page: int, config: GetSessionConfig
    ) -> tuple[list[Event], int]:
        """The events `config` asks for, oldest first, and the session's last seq: read from
        the newest back, as far as the count or the timestamp needs and no further."""
        wanted = config.num_recent_events
        newest: list[Message] = []
        last_seq = 0
        async for message in self._newest_first(service_id, first, page):
            last_seq = max(last_seq, message.seq)
            if wanted is not None and len(newest) >= wanted:
                break
            event = storage.message_event(message)
            if config.after_timestamp is not None and event.timestamp < config.after_timestamp:
                break
            newest.append(message)
        return [storage.message_event(m) for m in reversed(newest)], last_seq

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        listed = self._client.iter_sessions(
            external_id_prefix=storage.sessions_prefix(app_name, user_id), limit=LIST_PAGE
        )
        sessions: list[Session] = []
        async for stored in listed:
            _, owner, session_id = storage.names_of(stored.external_id or "")
            self._ids[stored.external_id or ""] = stored.id
            sessions.append(
                Session(
                    id=session_id,
                    app_name=app_name,
                    user_id=owner,
                    state=storage.unwrap(stored.traits),
                    last_update_time=storage.last_update_time(stored.traits),
                )
            )
        # ADK's order: oldest update first, so the last is the most recently active.
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        external = storage.external_id(app_name, user_id, session_id.strip())
        stored = await self._stored(external)
        if stored is not None:
            with contextlib.suppress(NotFoundError):  # deleted meanwhile: done all the same
                await self._client.delete_session(stored.id)
            self._ids.pop(external, None)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        traits = await self._client.get_user_traits(storage.end_user(app_name, user_id))
        return storage.unwrap(traits.traits)

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        delta = event.actions.state_delta if event.actions else {}
        app_delta, user_delta, session_delta = storage.scoped(delta or {})
        external = storage.external_id(session.app_name, session.user_id, session.id)
        service_id = self._ids.get(external) or await self._service_id(external, session)
        message = storage.event_message(event)
        try:
            stored = await self._client.append_message(
                service_id,
                message.role,
                message.content,
                item=message.item,
                traits_patch={**session_delta, **storage.bookkeeping(event.timestamp)},
                user_traits_patch=user_delta or None,
                end_user_traits_patches=(
                    {storage.app_end_user(session.app_name): app_delta} if app_delta else None
                ),
                expected_last_seq=_marker(session),
                idempotency_key=f"adk-event-{event.id}",
            )
        except PreconditionFailedError as error:
            raise StaleSessionError(
                "The session has been modified in storage since it was loaded. "
                "Please reload the session before appending more events."
            ) from error
        except NotFoundError as error:
            self._ids.pop(external, None)
            raise SessionNotFoundError(f"Session {session.id} not found.") from error
        _mark(session, stored.seq)
        session.last_update_time = event.timestamp
        return self._commit_event_to_session(session, event)

    async def _service_id(self, external: str, session: Session) -> str:
        stored = await self._stored(external)
        if stored is None:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        return stored.id
