"""The OpenAI Agents SDK's session memory on chat-sessions: `ChatSessionsSession` is an
`agents.memory.SessionABC`, for `Runner.run(agent, input, session=...)`.

- `session_id` is your own id for the conversation: the service session with that
  `external_id`, made on the first write (race-free, so concurrent first writes share it).
- Each item is stored verbatim as the message's `item`, and comes back equal; the message's
  `role` and `content` are derived from it (for search, previews and `/context`).
- `get_items(limit)` is one request (the last `limit`, up to 1,000); `add_items` one batch,
  all or nothing (500 items a request); `pop_item` one atomic pop (two concurrent pops never
  answer the same item); `clear_session` one truncation.

Needs the `[openai-agents]` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.memory import SessionABC
from agents.memory.session_settings import SessionSettings, resolve_session_limit

from chat_sessions_client.client import AsyncChatSessionsClient
from chat_sessions_client.errors import NotFoundError
from chat_sessions_client.integrations._keyed import KeyedSession, text_of
from chat_sessions_client.models import Message, NewMessage

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

HISTORY_PAGE = 1000  # the service's largest page of history
BATCH = 500  # the service's largest batch
_ROLES = {"system", "developer", "user", "assistant"}


def to_message(item: TResponseInputItem) -> NewMessage:
    """The message that stores `item`: the item verbatim, role and text derived from it."""
    raw: dict[str, Any] = dict(item)
    kind = raw.get("type", "message")
    if kind == "message" and raw.get("role") in _ROLES:
        return NewMessage(str(raw["role"]), text_of(raw.get("content")), item=raw)
    if kind == "function_call_output" and isinstance(raw.get("call_id"), str):
        output = raw.get("output")
        text = output if isinstance(output, str) else text_of(output)
        return NewMessage("tool", text, tool_call_id=raw["call_id"], item=raw)
    # function calls, reasoning, and every other item the model produced
    return NewMessage("assistant", text_of(raw.get("content")), item=raw)


def to_item(message: Message) -> TResponseInputItem:
    """A stored message as an item: its `item`, or, for a message written without one (through
    the plain API), a message item built from its role and content."""
    if message.item is not None:
        return message.item  # type: ignore[return-value]
    fallback: Any = {"role": message.role, "content": message.content}
    return fallback  # type: ignore[no-any-return]


class ChatSessionsSession(SessionABC):
    def __init__(
        self,
        session_id: str,
        *,
        client: AsyncChatSessionsClient,
        user_id: str | None = None,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_settings = session_settings
        self._client = client
        self._session = KeyedSession(session_id, user_id)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The history in order; with `limit`, its last `limit` items (one request)."""
        limit = resolve_session_limit(limit, self.session_settings)
        service_id = await self._session.afind(self._client)
        if service_id is None or limit == 0:
            return []
        if limit is None:
            history = self._client.iter_messages(service_id, limit=HISTORY_PAGE)
            return [to_item(message) async for message in history]
        newest: list[Message] = []
        async for message in self._client.iter_messages(
            service_id, order="desc", limit=min(limit, HISTORY_PAGE)
        ):
            newest.append(message)
            if len(newest) == limit:
                break
        return [to_item(message) for message in reversed(newest)]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Stored in order, each batch of up to 500 all or nothing."""
        messages = [to_message(item) for item in items]
        for start in range(0, len(messages), BATCH):
            await self._append(messages[start : start + BATCH])

    async def _append(self, batch: list[NewMessage]) -> None:
        service_id = await self._session.aensure(self._client)
        try:
            await self._client.append_messages(service_id, batch)
        except NotFoundError:  # deleted meanwhile (clear_session of another process, erasure)
            self._session.forget()
            await self._client.append_messages(await self._session.aensure(self._client), batch)

    async def pop_item(self) -> TResponseInputItem | None:
        """The last item, removed atomically; None when there is none."""
        service_id = await self._session.afind(self._client)
        if service_id is None:
            return None
        try:
            return to_item(await self._client.pop_message(service_id))
        except NotFoundError:  # no message left (or no session any more)
            return None

    async def clear_session(self) -> None:
        service_id = await self._session.afind(self._client)
        if service_id is not None:
            try:
                await self._client.truncate_messages(service_id, 0)
            except NotFoundError:
                self._session.forget()
