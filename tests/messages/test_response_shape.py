"""A message reads back under its own field names, whichever way it is read: the history's
rows build `MessageRead` positionally, so its select list must be the shape's fields in order,
then the content parts (wire.columns derives it from the shape; these tests fail if the two
ever part)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.messages.history import _history_statement
from chat_sessions.messages.schemas import MessageRead
from chat_sessions.messages.service import MESSAGE_COLUMNS
from chat_sessions.tool_calls.schemas import ToolCallRead
from chat_sessions.tool_calls.service import TOOL_CALL_COLUMNS
from support import Tenant, new_session

# Every field a different value, so two fields swapped cannot go unnoticed.
SENT: dict[str, Any] = {
    "role": "assistant",
    "content": "the content",
    "name": "the-name",
    "tool_calls": [{"id": "call-1", "type": "function"}],
    "tool_call_id": "the-tool-call-id",
    "metadata": {"model": "m"},
    "token_count": 7,
    "item": {"type": "function_call", "call_id": "call-1", "z": 1, "a": [2.5, None]},
}
# The same with content parts: they come back as the content, whichever way it is read.
PARTS = [
    {"type": "text", "text": "look"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    {"type": "text", "text": "here"},
]
STORED_BY_NAME = "id", "session_id", "seq", "role", "content", "name", "tool_call_id", "token_count"


def test_history_statements_select_the_fields_of_messageread_in_its_order() -> None:
    fields = [*MessageRead.__struct_fields__, "content_parts"]
    assert [column.key for column in MESSAGE_COLUMNS] == fields
    for flags in itertools.product((False, True), repeat=5):
        statement = _history_statement(*flags).statement
        assert [column.key for column in statement.selected_columns] == fields


def test_tool_call_reads_select_the_fields_of_toolcallread_in_its_order() -> None:
    assert [column.key for column in TOOL_CALL_COLUMNS] == list(ToolCallRead.__struct_fields__)


async def _stored(database: Database, message_id: str) -> dict[str, Any]:
    columns = ", ".join(STORED_BY_NAME)
    async with database.transaction() as tx:
        result = await tx.execute(
            text(f"SELECT {columns} FROM messages WHERE id = :id"), {"id": message_id}
        )
        return dict(result.mappings().one())


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("content", ["string", "parts"])
async def test_every_read_of_a_message_answers_each_stored_column_under_its_name(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, order: str, content: str
) -> None:
    session_id = await new_session(client, tenant)
    base = f"/v1/sessions/{session_id}"
    sent = SENT if content == "string" else {**SENT, "content": PARTS}
    appended = await client.post(f"{base}/messages", json=sent, headers=tenant.headers)
    assert appended.status_code == 201, appended.text
    message_id = appended.json()["id"]
    history = await client.get(f"{base}/messages?order={order}", headers=tenant.headers)
    one = await client.get(f"{base}/messages/{message_id}", headers=tenant.headers)
    exported = await client.get(f"{base}/export", headers=tenant.headers)
    reads = [
        appended.json(),
        history.json()["data"][0],
        one.json(),
        exported.json()["messages"][0],
    ]
    stored = await _stored(database, message_id)
    if content == "parts":
        # The text column holds the text of the text parts; reads answer the parts.
        assert stored.pop("content") == "look\nhere"
    for read in reads:
        assert list(read) == list(MessageRead.__struct_fields__)
        assert read["content"] == sent["content"]
        assert read["item"] == SENT["item"]
        assert list(read["item"]) == list(SENT["item"])  # key order as sent
        assert {name: read[name] for name in stored} == stored
        assert read["tool_calls"] == SENT["tool_calls"]
        assert read["metadata"] == SENT["metadata"]
        assert read["created_at"] == reads[0]["created_at"]
