"""The removals (messages/removal.py) called directly, in transactions of the `database`
fixture: removing one message by id (`delete_message`, what the Conversations API's item
deletion calls), and the session row every removal keeps right, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from chat_sessions.db import Database
from chat_sessions.errors import NotFound
from chat_sessions.messages import history, removal, service
from chat_sessions.messages.schemas import MessageCreate, MessageRead
from chat_sessions.models import sessions
from chat_sessions.sessions.schemas import SessionCreate
from chat_sessions.sessions.service import create_session
from support import create_tenant, make_settings

LIMITS = make_settings()


async def new_session(database: Database, tenant_id: str) -> str:
    async with database.transaction() as tx:
        created, _ = await create_session(
            tx, tenant_id=tenant_id, data=SessionCreate(), max_json_bytes=LIMITS.max_json_bytes
        )
    return created.id


async def append(
    database: Database, tenant_id: str, session_id: str, *token_counts: int
) -> list[MessageRead]:
    """One message per token count, appended through the service; the stored messages."""
    new = [
        MessageCreate(role="user", content=f"m{n}", token_count=tokens)
        for n, tokens in enumerate(token_counts, start=1)
    ]
    return await store(database, tenant_id, session_id, new)


async def store(
    database: Database, tenant_id: str, session_id: str, new: list[MessageCreate]
) -> list[MessageRead]:
    async with database.transaction() as tx:
        stored, _ = await service.append_messages(
            tx,
            tenant_id=tenant_id,
            session_id=session_id,
            new=new,
            max_message_bytes=LIMITS.max_message_bytes,
            max_json_bytes=LIMITS.max_json_bytes,
        )
    return stored


async def delete(database: Database, tenant_id: str, session_id: str, message_id: str) -> Any:
    async with database.transaction() as tx:
        return await removal.delete_message(
            tx, tenant_id=tenant_id, session_id=session_id, message_id=message_id
        )


async def session_row(database: Database, session_id: str) -> dict[str, Any]:
    """What a removal must keep right, read from the sessions table itself."""
    counters = (
        sessions.c.message_count,
        sessions.c.token_total,
        sessions.c.last_seq,
        sessions.c.last_message_at,
        sessions.c.updated_at,
        sessions.c.version,
    )
    async with database.transaction(write=False) as tx:
        row = (await tx.execute(select(*counters).where(sessions.c.id == session_id))).one()
    return dict(row._mapping)


async def seqs(database: Database, tenant_id: str, session_id: str) -> list[int]:
    async with database.transaction(write=False) as tx:
        found, _ = await history.list_messages(
            tx,
            tenant_id=tenant_id,
            session_id=session_id,
            order="asc",
            after_seq=None,
            before_seq=None,
            role=None,
            limit=1000,
            cursor=None,
        )
    return [message.seq for message in found]


async def test_delete_message_in_the_middle_answers_it_and_keeps_the_session_row_right(
    database: Database, tenant_id: str
) -> None:
    session_id = await new_session(database, tenant_id)
    _, second, third = await append(database, tenant_id, session_id, 10, 20, 30)
    before = await session_row(database, session_id)

    removed = await delete(database, tenant_id, session_id, second.id)

    assert removed == second
    after = await session_row(database, session_id)
    assert after["message_count"] == 2
    assert after["token_total"] == 40
    assert after["last_seq"] == 3
    assert after["last_message_at"] == third.created_at
    assert after["version"] == before["version"] + 1
    assert after["updated_at"] >= before["updated_at"]
    assert await seqs(database, tenant_id, session_id) == [1, 3]
    assert [m.seq for m in await append(database, tenant_id, session_id, 1)] == [4]


async def test_deleting_the_last_message_lets_the_next_append_take_its_seq(
    database: Database, tenant_id: str
) -> None:
    session_id = await new_session(database, tenant_id)
    _, second, third = await append(database, tenant_id, session_id, 10, 20, 30)

    await delete(database, tenant_id, session_id, third.id)

    after = await session_row(database, session_id)
    assert (after["message_count"], after["token_total"], after["last_seq"]) == (2, 30, 2)
    assert after["last_message_at"] == second.created_at
    assert [m.seq for m in await append(database, tenant_id, session_id, 1)] == [3]


async def test_deleting_the_only_message_leaves_an_empty_session_row(
    database: Database, tenant_id: str
) -> None:
    session_id = await new_session(database, tenant_id)
    (only,) = await append(database, tenant_id, session_id, 5)

    await delete(database, tenant_id, session_id, only.id)

    after = await session_row(database, session_id)
    assert (after["message_count"], after["token_total"], after["last_seq"]) == (0, 0, 0)
    assert after["last_message_at"] is None


async def test_delete_message_answers_content_parts_and_an_item_as_sent(
    database: Database, tenant_id: str
) -> None:
    session_id = await new_session(database, tenant_id)
    parts = [{"type": "input_text", "text": "hi"}, {"type": "future_part", "x": [1, 2]}]
    item = {"type": "reasoning", "encrypted_content": "gAAA", "summary": []}
    new = MessageCreate(role="assistant", content=parts, item=item)
    (sent,) = await store(database, tenant_id, session_id, [new])

    removed = await delete(database, tenant_id, session_id, sent.id)

    assert removed == sent
    assert (removed.content, removed.item) == (parts, item)


@pytest.mark.parametrize("case", ["unknown", "deleted", "other-session", "other-tenant"])
async def test_delete_message_that_is_not_there_is_404_and_changes_nothing(
    client, database: Database, tenant_id: str, case: str
) -> None:
    session_id = await new_session(database, tenant_id)
    other_session = await new_session(database, tenant_id)
    (mine,) = await append(database, tenant_id, session_id, 1)
    (elsewhere,) = await append(database, tenant_id, other_session, 1)
    asked_tenant, message_id = tenant_id, mine.id
    if case == "unknown":
        message_id = "01a249af-0000-7000-8000-000000000000"
    elif case == "deleted":
        await delete(database, tenant_id, session_id, mine.id)
    elif case == "other-session":
        message_id = elsewhere.id
    else:
        asked_tenant = (await create_tenant(client, "globex")).id
    before = [await session_row(database, s) for s in (session_id, other_session)]

    with pytest.raises(NotFound):
        await delete(database, asked_tenant, session_id, message_id)

    assert [await session_row(database, s) for s in (session_id, other_session)] == before
    assert await seqs(database, tenant_id, other_session) == [1]


async def test_delete_message_of_an_unknown_session_is_404(
    database: Database, tenant_id: str
) -> None:
    with pytest.raises(NotFound):
        await delete(database, tenant_id, "no-such-session", "no-such-message")


async def test_a_removal_rolled_back_leaves_the_message_and_the_session_row(
    database: Database, tenant_id: str
) -> None:
    session_id = await new_session(database, tenant_id)
    stored = await append(database, tenant_id, session_id, 10, 20)
    before = await session_row(database, session_id)

    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await removal.pop_last_message(tx, tenant_id=tenant_id, session_id=session_id)
            await removal.delete_message(
                tx, tenant_id=tenant_id, session_id=session_id, message_id=stored[0].id
            )
            raise RuntimeError("the commit never happens")

    assert await session_row(database, session_id) == before
    assert await seqs(database, tenant_id, session_id) == [1, 2]
