"""Tenant stats follow every change, for this tenant only."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import bindparam, text

from chat_sessions.app import create_app
from chat_sessions.db import Database
from chat_sessions.models import UTCDateTime
from support import (
    ADMIN,
    Tenant,
    append,
    new_session,
    stats,
)
from support import EMPTY_STATS as EMPTY

# --- stats ----------------------------------------------------------------------------------


async def test_stats_of_a_new_tenant_are_all_zero(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    assert await stats(client, tenant) == EMPTY


async def test_stats_count_sessions_messages_tokens_and_distinct_users(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    alice_1 = await new_session(client, tenant, user_id="alice")
    alice_2 = await new_session(client, tenant, user_id="alice")
    bob = await new_session(client, tenant, user_id="bob")
    await new_session(client, tenant)  # no user: not counted among users
    await append(client, tenant, alice_1, token_count=10)
    await append(client, tenant, alice_1, role="assistant", token_count=32)
    await append(client, tenant, alice_2, token_count=5)
    await append(client, tenant, bob)  # no token_count: counts as 0 tokens

    assert await stats(client, tenant) == {"sessions": 4, "messages": 4, "tokens": 47, "users": 2}


async def test_stats_follow_appends_batches_truncation_deletion_and_import(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant, user_id="u1")
    assert await stats(client, tenant) == {"sessions": 1, "messages": 0, "tokens": 0, "users": 1}

    await append(client, tenant, session_id, token_count=7)
    assert await stats(client, tenant) == {"sessions": 1, "messages": 1, "tokens": 7, "users": 1}

    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={
            "messages": [
                {"role": "assistant", "content": "a", "token_count": 100},
                {"role": "user", "content": "b", "token_count": 20},
                {"role": "assistant", "content": "c", "token_count": 3},
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    assert await stats(client, tenant) == {"sessions": 1, "messages": 4, "tokens": 130, "users": 1}

    response = await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 2}, headers=tenant.headers
    )
    assert response.json() == {"deleted": 2}
    assert await stats(client, tenant) == {"sessions": 1, "messages": 2, "tokens": 107, "users": 1}

    response = await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    assert response.status_code == 200, response.text
    document = response.json()
    document["session"]["user_id"] = "u2"
    response = await client.post("/v1/sessions/import", json=document, headers=tenant.headers)
    assert response.status_code == 201, response.text
    imported = response.json()["id"]
    assert await stats(client, tenant) == {"sessions": 2, "messages": 4, "tokens": 214, "users": 2}

    response = await client.delete(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert response.status_code == 204
    assert await stats(client, tenant) == {"sessions": 1, "messages": 2, "tokens": 107, "users": 1}

    response = await client.delete(f"/v1/sessions/{imported}", headers=tenant.headers)
    assert response.status_code == 204
    assert await stats(client, tenant) == EMPTY


async def test_stats_follow_a_user_changing_on_a_session(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant, user_id="u1")
    await new_session(client, tenant, user_id="u1")
    assert (await stats(client, tenant))["users"] == 1

    response = await client.patch(
        f"/v1/sessions/{session_id}", json={"user_id": "u2"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert (await stats(client, tenant))["users"] == 2


async def test_stats_are_for_the_callers_tenant_only(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await new_session(client, tenant, user_id="same-user")
    await append(client, tenant, mine, token_count=11)
    theirs = await new_session(client, other_tenant, user_id="same-user")
    await new_session(client, other_tenant, user_id="another-user")
    await append(client, other_tenant, theirs, token_count=1000)
    await append(client, other_tenant, theirs, token_count=1000)

    assert await stats(client, tenant) == {"sessions": 1, "messages": 1, "tokens": 11, "users": 1}
    assert await stats(client, other_tenant) == {
        "sessions": 2,
        "messages": 2,
        "tokens": 2000,
        "users": 2,
    }


async def test_stats_need_an_api_key(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/stats")
    assert response.status_code == 401


async def test_stats_count_tokens_of_messages_stored_before_the_token_totals_migration(
    fresh_database: Database,
) -> None:
    database = fresh_database
    await database.migrate("0002")
    now = bindparam("now", datetime.now(UTC), type_=UTCDateTime())
    async with database.transaction() as tx:
        await tx.execute(
            text(
                "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', :now)"
            ).bindparams(now)
        )
        for session_id, tokens in (("s-1", (4, None, 6)), ("s-2", (30,))):
            await tx.execute(
                text(
                    "INSERT INTO sessions (id, tenant_id, user_id, traits, status,"
                    " message_count, last_seq, created_at, updated_at, version)"
                    " VALUES (:id, 't-old', 'u', '{}', 'active', :n, :n, :now, :now, 1)"
                ).bindparams(now),
                {"id": session_id, "n": len(tokens)},
            )
            for seq, token_count in enumerate(tokens, start=1):
                await tx.execute(
                    text(
                        "INSERT INTO messages (id, tenant_id, session_id, seq, role, content,"
                        " token_count, created_at)"
                        " VALUES (:id, 't-old', :sid, :seq, 'user', 'x', :tokens, :now)"
                    ).bindparams(now),
                    {
                        "id": f"{session_id}-{seq}",
                        "sid": session_id,
                        "seq": seq,
                        "tokens": token_count,
                    },
                )

    await database.migrate()

    app = create_app(database.settings, database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/v1/admin/tenants/t-old/keys", headers=ADMIN)
        assert response.status_code == 201, response.text
        headers = {"Authorization": f"Bearer {response.json()['api_key']}"}
        response = await client.get("/v1/stats", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"sessions": 2, "messages": 4, "tokens": 40, "users": 1}

        # and the totals keep up after the migration
        response = await client.delete(
            "/v1/sessions/s-1/messages", params={"after_seq": 1}, headers=headers
        )
        assert response.json() == {"deleted": 2}
        response = await client.get("/v1/stats", headers=headers)
        assert response.json() == {"sessions": 2, "messages": 2, "tokens": 34, "users": 1}
