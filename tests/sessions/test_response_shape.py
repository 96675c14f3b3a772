"""A session reads back under its own field names, whichever way it is read: its reads build
`SessionRead` (`SessionListItem`) positionally, so their select lists must be the shape's
fields in order (wire.columns derives them from the shape; these tests fail if they part)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.sessions.listing import _exact_statement, _list_statement, _prefix_statement
from chat_sessions.sessions.schemas import SessionListItem, SessionRead
from chat_sessions.sessions.service import SESSION_COLUMNS
from support import Tenant, append

# Every field a different value, so two fields swapped cannot go unnoticed.
SENT: dict[str, Any] = {
    "user_id": "the-user",
    "external_id": "the-external-id",
    "title": "the title",
    "traits": {"plan": "pro"},
    "status": "running",
    "result": "the result",
    "error": "the error",
}
STORED_BY_NAME = (
    "id",
    "user_id",
    "external_id",
    "title",
    "status",
    "result",
    "error",
    "message_count",
    "version",
)


def test_session_reads_select_the_fields_of_their_shapes_in_order() -> None:
    assert [column.key for column in SESSION_COLUMNS] == list(SessionRead.__struct_fields__)
    listings = [
        *(_list_statement(*flags) for flags in itertools.product((False, True), repeat=3)),
        *(_prefix_statement(*flags) for flags in itertools.product((False, True), repeat=4)),
        *(_exact_statement(*flags) for flags in itertools.product((False, True), repeat=2)),
    ]
    for listing in listings:
        keys = [column.key for column in listing.statement.selected_columns]
        assert keys == list(SessionListItem.__struct_fields__)


async def _stored(database: Database, session_id: str) -> dict[str, Any]:
    columns = ", ".join(STORED_BY_NAME)
    async with database.transaction() as tx:
        result = await tx.execute(
            text(f"SELECT {columns} FROM sessions WHERE id = :id"), {"id": session_id}
        )
        return dict(result.mappings().one())


async def test_every_read_of_a_session_answers_each_stored_column_under_its_name(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    created = await client.post("/v1/sessions", json=SENT, headers=tenant.headers)
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    await append(client, tenant, session_id, "the last words")
    path = f"/v1/sessions/{session_id}"
    one = await client.get(path, headers=tenant.headers)
    listed = await client.get("/v1/sessions", headers=tenant.headers)
    exported = await client.get(f"{path}/export", headers=tenant.headers)
    stored = await _stored(database, session_id)
    reads = [one.json(), exported.json()["session"]]
    for read in reads:
        assert list(read) == list(SessionRead.__struct_fields__)
        assert {name: read[name] for name in STORED_BY_NAME} == stored
        assert read["traits"] == SENT["traits"]
    (item,) = listed.json()["data"]
    assert list(item) == list(SessionListItem.__struct_fields__)
    assert {name: item[name] for name in STORED_BY_NAME} == stored
    assert item["preview"] == "the last words"
    assert item["updated_at"] == one.json()["updated_at"] == reads[1]["updated_at"]
