"""An append's `end_user_traits_patches` ({user_id: merge patch}; ADK's `app:` state lives on an
end-user of its own): applied with the message, whole or not at all, never again on a replay,
and in one fixed order of users, so two appends patching the same users never deadlock."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from support import Tenant, assert_problem, count_rows, new_session


@pytest.fixture
async def session_id(client: httpx.AsyncClient, tenant: Tenant) -> str:
    return await new_session(client, tenant, user_id="u-1")


def message(**fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": "hi", **fields}


async def append(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, body: Any, **headers: str
) -> httpx.Response:
    path = f"/v1/sessions/{session_id}/messages" + ("/batch" if "messages" in body else "")
    return await client.post(path, json=body, headers={**tenant.headers, **headers})


async def traits_of(client: httpx.AsyncClient, tenant: Tenant, *user_ids: str) -> dict[str, Any]:
    found = {}
    for user_id in user_ids:
        user = (await client.get(f"/v1/users/{user_id}/traits", headers=tenant.headers)).json()
        found[user_id] = (user["traits"], user["version"])
    return found


@pytest.mark.parametrize("batch", [False, True])
async def test_the_patches_are_applied_with_the_message(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, batch: bool, database: Database
) -> None:
    patches = {
        "user_traits_patch": {"visits": 1},
        "end_user_traits_patches": {"adk:app": {"model": "m1"}, "u-1": {"lang": "pt"}},
    }
    body = {"messages": [message()], **patches} if batch else message(**patches)

    response = await append(client, tenant, session_id, body)

    assert response.status_code == 201, response.text
    assert await traits_of(client, tenant, "adk:app", "u-1") == {
        "adk:app": ({"model": "m1"}, 1),
        # Named twice: the session's own patch first, then the other; each a new version.
        "u-1": ({"visits": 1, "lang": "pt"}, 2),
    }
    assert await count_rows(database, "messages") == 1


@pytest.mark.parametrize(
    ("patches", "status"),
    [
        ({"": {"a": 1}}, 400),  # a user id is 1..256 characters
        ({"x" * 257: {"a": 1}}, 400),
        ({"ok": {"a": 1}, "bad": [1]}, 400),  # a patch is an object
        ({f"user-{n}": {"a": 1} for n in range(11)}, 400),  # at most 10 users
        ({"ok": {"a": 1}, "big": {"a": "x" * 70_000}}, 413),  # past MAX_JSON_BYTES
        ([{"a": 1}], 400),
    ],
)
async def test_a_bad_patch_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    tenant: Tenant,
    session_id: str,
    patches: Any,
    status: int,
    database: Database,
) -> None:
    response = await append(
        client, tenant, session_id, message(end_user_traits_patches=patches, traits_patch={"t": 1})
    )

    assert_problem(response, status)
    assert await traits_of(client, tenant, "ok") == {"ok": ({}, 0)}
    assert await count_rows(database, "messages") == 0


async def test_a_replay_applies_nothing_again_and_another_patch_is_409(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, database: Database
) -> None:
    body = message(end_user_traits_patches={"adk:app": {"n": 1}})
    first = await append(client, tenant, session_id, body, **{"Idempotency-Key": "k"})
    assert first.status_code == 201, first.text
    await client.patch("/v1/users/adk:app/traits", json={"n": 2}, headers=tenant.headers)

    replay = await append(client, tenant, session_id, body, **{"Idempotency-Key": "k"})
    other = message(end_user_traits_patches={"adk:app": {"n": 3}})
    reused = await append(client, tenant, session_id, other, **{"Idempotency-Key": "k"})

    assert replay.status_code == 201, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert_problem(reused, 409)
    assert await traits_of(client, tenant, "adk:app") == {"adk:app": ({"n": 2}, 2)}
    assert await count_rows(database, "messages") == 1


async def test_appends_patching_the_same_users_in_opposite_orders_all_succeed(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Two sessions (so the session rows do not serialize them), each append naming users
    `a` and `b` in the opposite order: on PostgreSQL, a lock order taken from the body would
    deadlock (and fail one); the fixed order makes them queue."""
    first = await new_session(client, tenant)
    second = await new_session(client, tenant)
    rounds = 10

    for n in range(rounds):
        # Keys of their own, so that every patch changes the traits (a new version each).
        forward = {"a": {f"first-{n}": 1}, "b": {f"first-{n}": 1}}
        backward = {"b": {f"second-{n}": 1}, "a": {f"second-{n}": 1}}
        responses = await asyncio.gather(
            append(client, tenant, first, message(end_user_traits_patches=forward)),
            append(client, tenant, second, message(end_user_traits_patches=backward)),
        )
        assert [response.status_code for response in responses] == [201, 201]

    for traits, version in (await traits_of(client, tenant, "a", "b")).values():
        assert (len(traits), version) == (2 * rounds, 2 * rounds)
