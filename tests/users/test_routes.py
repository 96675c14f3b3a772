"""Erasing an end-user removes every session of theirs in this tenant, with its messages and
tool calls, and nothing else."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from chat_sessions.db import Database
from support import EMPTY_STATS as EMPTY
from support import Tenant, add_tool_call, append, count_rows, new_session, stats


async def populate_user(client: httpx.AsyncClient, tenant: Tenant, user_id: str | None) -> str:
    """A session of `user_id` with two messages and two tool calls (one tied to a message)."""
    session_id = await new_session(client, tenant, user_id=user_id)
    await append(client, tenant, session_id, f"hi from {user_id}", token_count=3)
    assistant = await append(
        client,
        tenant,
        session_id,
        "",
        role="assistant",
        tool_calls=[
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    )
    await add_tool_call(client, tenant, session_id, assistant["id"])
    await add_tool_call(client, tenant, session_id)
    return session_id


async def rows_of(database: Database, session_ids: list[str]) -> tuple[int, int, int]:
    marks = ", ".join(f":s{n}" for n in range(len(session_ids)))
    params = {f"s{n}": session_id for n, session_id in enumerate(session_ids)}
    return (
        await count_rows(database, "sessions", f"id IN ({marks})", **params),
        await count_rows(database, "messages", f"session_id IN ({marks})", **params),
        await count_rows(database, "tool_calls", f"session_id IN ({marks})", **params),
    )


async def test_erasing_a_user_deletes_all_their_sessions_with_messages_and_tool_calls(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    erased = [await populate_user(client, tenant, "erase-me") for _ in range(3)]
    assert await rows_of(database, erased) == (3, 6, 6)

    response = await client.delete("/v1/users/erase-me", headers=tenant.headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"deleted_sessions": 3}
    assert await rows_of(database, erased) == (0, 0, 0)
    for session_id in erased:
        response = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
        assert response.status_code == 404


async def test_erasing_a_user_leaves_other_users_and_sessions_without_user_alone(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    await populate_user(client, tenant, "erase-me")
    kept = [
        await populate_user(client, tenant, "keep-me"),
        await populate_user(client, tenant, "erase-me-not"),
        await populate_user(client, tenant, None),
    ]

    response = await client.delete("/v1/users/erase-me", headers=tenant.headers)

    assert response.json() == {"deleted_sessions": 1}
    assert await rows_of(database, kept) == (3, 6, 6)
    assert await count_rows(database, "sessions") == 3


async def test_erasing_a_user_leaves_the_same_user_id_in_another_tenant_alone(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    await populate_user(client, tenant, "shared-id")
    theirs = await populate_user(client, other_tenant, "shared-id")

    response = await client.delete("/v1/users/shared-id", headers=tenant.headers)

    assert response.json() == {"deleted_sessions": 1}
    assert await rows_of(database, [theirs]) == (1, 2, 2)
    assert await stats(client, other_tenant) == {
        "sessions": 1,
        "messages": 2,
        "tokens": 3,
        "users": 1,
    }
    assert await stats(client, tenant) == EMPTY


async def test_erasing_an_unknown_user_deletes_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    await populate_user(client, tenant, "someone")

    response = await client.delete("/v1/users/nobody", headers=tenant.headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"deleted_sessions": 0}
    assert await count_rows(database, "sessions") == 1


async def test_erasing_a_user_twice_deletes_nothing_the_second_time(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await populate_user(client, tenant, "twice")

    first = await client.delete("/v1/users/twice", headers=tenant.headers)
    second = await client.delete("/v1/users/twice", headers=tenant.headers)

    assert first.json() == {"deleted_sessions": 1}
    assert second.status_code == 200
    assert second.json() == {"deleted_sessions": 0}


@pytest.mark.parametrize("user_id", ["ana@example.com", "user 42", "Zoë-ünï", "a%b+c"])
async def test_erasing_a_user_whose_id_needs_url_escaping(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, user_id: str
) -> None:
    await populate_user(client, tenant, user_id)
    await populate_user(client, tenant, "bystander")

    response = await client.delete(f"/v1/users/{quote(user_id, safe='')}", headers=tenant.headers)

    assert response.json() == {"deleted_sessions": 1}
    assert await count_rows(database, "sessions", "user_id = :u", u=user_id) == 0
    assert await count_rows(database, "sessions", "user_id = 'bystander'") == 1


async def test_erasing_a_user_needs_an_api_key(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await populate_user(client, tenant, "u")
    response = await client.delete("/v1/users/u")
    assert response.status_code == 401
    assert (await stats(client, tenant))["sessions"] == 1
