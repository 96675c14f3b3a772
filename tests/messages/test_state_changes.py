"""An append that carries state changes (`traits_patch` of the session, `user_traits_patch` of
its end-user): applied in the appending transaction, whole or not at all; one new session
version per request; never again on an idempotent replay; part of the request's identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.messages.schemas import MessageCreate
from chat_sessions.messages.service import request_hash
from support import Tenant, assert_problem, count_rows, new_session


@pytest.fixture
async def session_id(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return await new_session(client, tenant, user_id="u-1", traits={"step": 0, "keep": True})


def message(content: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **fields}


async def append_one(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, body: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        f"/v1/sessions/{session_id}/messages", json=body, headers={**tenant.headers, **headers}
    )


async def append_batch(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, body: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json=body,
        headers={**tenant.headers, **headers},
    )


async def state(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    """What a state change could have changed: the session and its user's traits."""
    session = (await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)).json()
    user = (await client.get("/v1/users/u-1/traits", headers=tenant.headers)).json()
    return {
        "traits": session["traits"],
        "version": session["version"],
        "message_count": session["message_count"],
        "user_traits": user["traits"],
        "user_version": user["version"],
    }


async def test_an_append_applies_both_patches_with_one_new_session_version(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str
) -> None:
    response = await append_one(
        client,
        tenant,
        session_id,
        message(traits_patch={"step": 1, "keep": None}, user_traits_patch={"visits": 1}),
    )

    assert response.status_code == 201, response.text
    assert set(response.json()) >= {"id", "seq", "content"}
    assert "traits_patch" not in response.json()
    assert await state(client, tenant, session_id) == {
        "traits": {"step": 1},
        "version": 2,
        "message_count": 1,
        "user_traits": {"visits": 1},
        "user_version": 1,
    }


async def test_a_batch_applies_both_patches_with_one_new_session_version(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str
) -> None:
    body = {
        "messages": [message("a"), message("b", role="assistant")],
        "traits_patch": {"step": 2, "nested": {"x": 1}},
        "user_traits_patch": {"prefs": {"lang": "pt"}},
    }

    response = await append_batch(client, tenant, session_id, body)

    assert response.status_code == 201, response.text
    assert await state(client, tenant, session_id) == {
        "traits": {"step": 2, "keep": True, "nested": {"x": 1}},
        "version": 2,
        "message_count": 2,
        "user_traits": {"prefs": {"lang": "pt"}},
        "user_version": 1,
    }


async def test_only_the_traits_patch_leaves_the_user_alone(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)  # no user_id: fine without a user patch

    response = await append_one(client, tenant, session_id, message(traits_patch={"a": 1}))

    assert response.status_code == 201, response.text
    session = (await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)).json()
    assert (session["traits"], session["version"]) == ({"a": 1}, 2)
    assert await count_rows(database, "end_users") == 0


async def test_a_patch_that_changes_nothing_still_appends(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str
) -> None:
    response = await append_one(
        client, tenant, session_id, message(traits_patch={}, user_traits_patch={"gone": None})
    )

    assert response.status_code == 201, response.text
    after = await state(client, tenant, session_id)
    assert (after["traits"], after["version"], after["message_count"]) == (
        {"step": 0, "keep": True},
        2,
        1,
    )
    assert after["user_version"] == 0


# --- all or nothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True])
async def test_a_user_traits_patch_on_a_session_without_user_is_400_and_nothing_happens(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, batch: bool
) -> None:
    session_id = await new_session(client, tenant, traits={"t": 1})
    patches = {"traits_patch": {"t": 2}, "user_traits_patch": {"u": 1}}

    if batch:
        response = await append_batch(
            client, tenant, session_id, {"messages": [message()], **patches}
        )
    else:
        response = await append_one(client, tenant, session_id, message(**patches))

    assert_problem(response, 400)
    session = (await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)).json()
    assert (session["traits"], session["version"], session["message_count"]) == ({"t": 1}, 1, 0)
    assert await count_rows(database, "messages") == 0
    assert await count_rows(database, "end_users") == 0


async def test_a_stale_expected_last_seq_is_412_and_applies_no_patch(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str
) -> None:
    await append_one(client, tenant, session_id, message())
    before = await state(client, tenant, session_id)
    patches = {"traits_patch": {"step": 9}, "user_traits_patch": {"u": 9}}

    one = await client.post(
        f"/v1/sessions/{session_id}/messages?expected_last_seq=0",
        json=message(**patches),
        headers=tenant.headers,
    )
    batch = await client.post(
        f"/v1/sessions/{session_id}/messages/batch?expected_last_seq=0",
        json={"messages": [message()], **patches},
        headers=tenant.headers,
    )

    assert_problem(one, 412)
    assert_problem(batch, 412)
    assert await state(client, tenant, session_id) == before


async def test_a_bad_message_in_a_batch_is_400_and_applies_no_patch(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str
) -> None:
    before = await state(client, tenant, session_id)
    body = {
        "messages": [message(), {"role": "tool", "content": "no tool_call_id"}],
        "traits_patch": {"step": 9},
        "user_traits_patch": {"u": 9},
    }

    assert_problem(await append_batch(client, tenant, session_id, body), 400)
    assert await state(client, tenant, session_id) == before


@pytest.mark.parametrize("field", ["traits_patch", "user_traits_patch"])
async def test_a_patch_that_would_pass_max_json_bytes_is_413_and_nothing_happens(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, field: str
) -> None:
    before = await state(client, tenant, session_id)
    big = {field: {"blob": "x" * (64 * 1024)}}

    assert_problem(await append_one(client, tenant, session_id, message(**big)), 413)
    assert await state(client, tenant, session_id) == before


@pytest.mark.parametrize("field", ["traits_patch", "user_traits_patch"])
@pytest.mark.parametrize("bad", [[1], "text", 5, True, None])
async def test_a_patch_that_is_not_an_object_is_400_and_nothing_happens(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, field: str, bad: Any
) -> None:
    before = await state(client, tenant, session_id)

    one = await append_one(client, tenant, session_id, message(**{field: bad}))
    batch = await append_batch(client, tenant, session_id, {"messages": [message()], field: bad})

    assert_problem(one, 400)
    assert_problem(batch, 400)
    assert await state(client, tenant, session_id) == before


@pytest.fixture
async def failing_message_insert(database: Database) -> AsyncIterator[None]:
    """Every message insert fails, in the database, after the patches have been written."""
    if database.is_sqlite:
        create = [
            "CREATE TRIGGER test_refuse BEFORE INSERT ON messages"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
        drop = ["DROP TRIGGER test_refuse"]
    else:
        create = [
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
            "CREATE TRIGGER test_refuse BEFORE INSERT ON messages"
            " FOR EACH ROW EXECUTE FUNCTION test_refuse()",
        ]
        drop = ["DROP TRIGGER test_refuse ON messages", "DROP FUNCTION test_refuse()"]
    async with database.transaction() as tx:
        for statement in create:
            await tx.execute(text(statement))
    try:
        yield
    finally:
        async with database.transaction() as tx:
            for statement in drop:
                await tx.execute(text(statement))


async def test_a_failure_after_the_patches_were_written_rolls_them_back(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, failing_message_insert: None
) -> None:
    before = await state(client, tenant, session_id)
    patches = {"traits_patch": {"step": 9}, "user_traits_patch": {"u": 9}}

    one = await append_one(client, tenant, session_id, message(**patches))
    batch = await append_batch(client, tenant, session_id, {"messages": [message()], **patches})

    for response in (one, batch):
        assert response.status_code >= 400, response.text
        assert "Traceback" not in response.text
    assert await state(client, tenant, session_id) == before


# --- idempotency ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True])
async def test_a_replay_applies_no_patch_again(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, batch: bool
) -> None:
    patches = {"traits_patch": {"step": 1}, "user_traits_patch": {"step": 1}}
    send = append_batch if batch else append_one
    body = {"messages": [message()], **patches} if batch else message(**patches)
    first = await send(client, tenant, session_id, body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    # Meanwhile the state moves on; a replay must not bring the patched values back.
    await client.patch(
        f"/v1/sessions/{session_id}", json={"traits": {"step": 2}}, headers=tenant.headers
    )
    await client.patch("/v1/users/u-1/traits", json={"step": 2}, headers=tenant.headers)
    before = await state(client, tenant, session_id)

    replay = await send(client, tenant, session_id, body, **{"Idempotency-Key": "k-1"})

    assert replay.status_code == 201, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert await state(client, tenant, session_id) == before


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize(
    "other",
    [
        {"traits_patch": {"step": 2}},
        {"user_traits_patch": {"step": 1}},
        {"traits_patch": {"step": 1}, "user_traits_patch": {"step": 1}},
    ],
)
async def test_the_same_key_with_another_patch_is_409_and_nothing_happens(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_id: str,
    batch: bool,
    other: dict[str, Any],
) -> None:
    send = append_batch if batch else append_one

    def body(patches: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [message()], **patches} if batch else message(**patches)

    first = await send(
        client, tenant, session_id, body({"traits_patch": {"step": 1}}), **{"Idempotency-Key": "k"}
    )
    assert first.status_code == 201, first.text
    before = await state(client, tenant, session_id)

    response = await send(client, tenant, session_id, body(other), **{"Idempotency-Key": "k"})

    assert_problem(response, 409)
    assert await state(client, tenant, session_id) == before


async def test_a_keyed_append_without_patches_keeps_its_request_digest(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, database: Database
) -> None:
    """The digest of a plain message's body is what it was before appends could carry
    patches, so a retry across the upgrade is still a replay, not a 409."""
    body = message("kept digest")
    await append_one(client, tenant, session_id, body, **{"Idempotency-Key": "old"})

    async with database.transaction() as tx:
        stored = (
            await tx.execute(
                text("SELECT request_hash FROM messages WHERE idempotency_key = 'old'")
            )
        ).scalar_one()
    assert stored == request_hash("one", [MessageCreate(**body)])
