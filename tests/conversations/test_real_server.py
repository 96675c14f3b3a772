"""OpenAI's SDKs exactly as a user sets them up, `base_url` and `api_key` only (their own HTTP
clients, real sockets), against `chat-sessions serve`: what the other tests here prove on the
app in-process holds over a network connection too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest
from agents.memory import OpenAIConversationsSession

from service_process import ServiceProcess
from support import ADMIN


@pytest.mark.sqlite_only
def test_the_sdks_unmodified_against_a_running_server(tmp_path: Path) -> None:
    server = ServiceProcess(tmp_path, "--migrate", DATABASE_PATH=str(tmp_path / "sessions.db"))
    try:
        created = httpx.post(
            f"{server.base_url}/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN
        )
        key = created.json()["api_key"]
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key)
        conversation = client.conversations.create(
            metadata={"topic": "lisbon"}, items=[{"role": "user", "content": "Plan a trip"}]
        )
        client.conversations.items.create(
            conversation.id, items=[{"role": "assistant", "content": "Sure."}]
        )
        listed = list(client.conversations.items.list(conversation.id, order="asc", limit=1))
        assert [item.content[0].text for item in listed] == ["Plan a trip", "Sure."]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong").conversations.create()

        async def agent_memory() -> list[str]:
            store = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=key)
            session = OpenAIConversationsSession(openai_client=store)
            await session.add_items([{"role": "user", "content": f"m{n}"} for n in range(25)])
            popped = await session.pop_item()
            kept = await session.get_items(limit=3)
            await session.clear_session()
            await store.close()
            return [item["content"][0]["text"] for item in [*kept, popped or {}]]

        assert asyncio.run(agent_memory()) == ["m21", "m22", "m23", "m24"]
        client.conversations.delete(conversation.id)
    finally:
        log = server.stop()
    assert "Traceback" not in log
