"""LangChain's chat history on chat-sessions: `ChatSessionsChatMessageHistory` is a
`BaseChatMessageHistory`, for `RunnableWithMessageHistory(..., get_session_history)`.

- `session_id` is your own id for the conversation: the service session with that
  `external_id`, made on the first write (race-free). Nothing is sent before the first read or
  write (no request in `__init__`), so making one per call is free.
- Each message is stored as the message's `item`, in LangChain's own dict form
  (`message_to_dict`), so every message type comes back equal: content blocks, tool calls,
  ids, `usage_metadata`, a `ChatMessage`'s own role, a `ToolMessage`'s `artifact` (when it is
  JSON). The service's `role` and `content` are derived from it, for search and `/context`.
- Sync methods take a `ChatSessionsClient`, async ones an `AsyncChatSessionsClient`; pass
  either or both. With only a sync client, the async methods run the sync ones in a thread
  (LangChain's default); with only an async client, the sync methods raise `TypeError`.

Needs the `[langchain]` extra."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from chat_sessions_client.client import AsyncChatSessionsClient, ChatSessionsClient
from chat_sessions_client.errors import NotFoundError
from chat_sessions_client.integrations._keyed import KeyedSession, text_of
from chat_sessions_client.models import Message, NewMessage

HISTORY_PAGE = 1000
BATCH = 500
_ROLES = {"human": "user", "ai": "assistant", "system": "system"}
_CHAT_ROLES = {"system", "developer", "user", "assistant"}


def to_message(message: BaseMessage) -> NewMessage:
    stored = message_to_dict(message)
    text = text_of(message.content)
    kind = message.type.removesuffix("MessageChunk").lower()  # AIMessageChunk: "ai"
    if kind == "tool" and getattr(message, "tool_call_id", None):
        return NewMessage("tool", text, tool_call_id=message.tool_call_id, item=stored)  # type: ignore[attr-defined]
    role = _ROLES.get(message.type) or _ROLES.get(kind)
    if role is None and kind == "chat":  # a ChatMessage: its own role if the service has it
        own = getattr(message, "role", "")
        role = own if own in _CHAT_ROLES else "assistant"
    return NewMessage(role or "assistant", text, item=stored)


def to_langchain(message: Message) -> BaseMessage:
    item = message.item
    if isinstance(item, dict) and "type" in item and "data" in item:
        return messages_from_dict([item])[0]
    # A message written without an item (through the plain API).
    kind = {"user": "human", "assistant": "ai"}.get(message.role, "system")
    data: dict[str, Any] = {"content": message.content}
    if message.role == "tool":
        kind, data["tool_call_id"] = "tool", message.tool_call_id
    return messages_from_dict([{"type": kind, "data": data}])[0]


class ChatSessionsChatMessageHistory(BaseChatMessageHistory):
    def __init__(
        self,
        session_id: str,
        *,
        client: ChatSessionsClient | AsyncChatSessionsClient,
        async_client: AsyncChatSessionsClient | None = None,
        user_id: str | None = None,
    ) -> None:
        self.session_id = session_id
        self._client = client if isinstance(client, ChatSessionsClient) else None
        self._async_client = client if isinstance(client, AsyncChatSessionsClient) else async_client
        self._session = KeyedSession(session_id, user_id)

    def _sync(self) -> ChatSessionsClient:
        if self._client is None:
            raise TypeError("this history has an async client only: use its a* methods")
        return self._client

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        client = self._sync()
        service_id = self._session.find(client)
        if service_id is None:
            return []
        return [to_langchain(m) for m in client.iter_messages(service_id, limit=HISTORY_PAGE)]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        client = self._sync()
        stored = [to_message(message) for message in messages]
        for start in range(0, len(stored), BATCH):
            batch = stored[start : start + BATCH]
            try:
                client.append_messages(self._session.ensure(client), batch)
            except NotFoundError:  # the session was deleted meanwhile: make it again
                self._session.forget()
                client.append_messages(self._session.ensure(client), batch)

    def clear(self) -> None:
        client = self._sync()
        service_id = self._session.find(client)
        if service_id is not None:
            try:
                client.truncate_messages(service_id, 0)
            except NotFoundError:
                self._session.forget()

    async def aget_messages(self) -> list[BaseMessage]:
        if self._async_client is None:
            return await super().aget_messages()
        client = self._async_client
        service_id = await self._session.afind(client)
        if service_id is None:
            return []
        history = client.iter_messages(service_id, limit=HISTORY_PAGE)
        return [to_langchain(message) async for message in history]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if self._async_client is None:
            return await super().aadd_messages(messages)
        client = self._async_client
        stored = [to_message(message) for message in messages]
        for start in range(0, len(stored), BATCH):
            batch = stored[start : start + BATCH]
            try:
                await client.append_messages(await self._session.aensure(client), batch)
            except NotFoundError:
                self._session.forget()
                await client.append_messages(await self._session.aensure(client), batch)
        return None

    async def aclear(self) -> None:
        if self._async_client is None:
            return await super().aclear()
        service_id = await self._session.afind(self._async_client)
        if service_id is not None:
            try:
                await self._async_client.truncate_messages(service_id, 0)
            except NotFoundError:
                self._session.forget()
        return None
