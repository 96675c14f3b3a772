"""A service session named by the caller's own id (`external_id`), found or made on first use
and remembered: what the Agents SDK and LangChain adapters share. Reads of a session that does
not exist yet make nothing (they answer empty); the first write makes it, race-free (the
service's get-or-create), so concurrent first writes from anywhere share one session."""

from __future__ import annotations

import asyncio
import threading

from chat_sessions_client.client import AsyncChatSessionsClient, ChatSessionsClient


class KeyedSession:
    def __init__(self, external_id: str, user_id: str | None) -> None:
        self.external_id = external_id
        self.user_id = user_id
        self.service_id: str | None = None
        self._sync_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def find(self, client: ChatSessionsClient) -> str | None:
        """The service's id of the session, if it exists."""
        if self.service_id is None:
            found = client.find_session(self.external_id)
            self.service_id = found.id if found else None
        return self.service_id

    def ensure(self, client: ChatSessionsClient) -> str:
        with self._sync_lock:
            if self.service_id is None:
                made = client.create_session(external_id=self.external_id, user_id=self.user_id)
                self.service_id = made.id
            return self.service_id

    async def afind(self, client: AsyncChatSessionsClient) -> str | None:
        if self.service_id is None:
            found = await client.find_session(self.external_id)
            self.service_id = found.id if found else None
        return self.service_id

    async def aensure(self, client: AsyncChatSessionsClient) -> str:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            if self.service_id is None:
                made = await client.create_session(
                    external_id=self.external_id, user_id=self.user_id
                )
                self.service_id = made.id
            return self.service_id

    def forget(self) -> None:
        """After a 404: the session was deleted meanwhile; find or make it again next time."""
        self.service_id = None


def text_of(content: object) -> str:
    """The text of a message's content, for the service's `content` (what search, previews and
    `/context` read): a string as it is, the text of text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(text for text in texts if text)
    return ""
