"""Operator routes over HTTP: tenants, their keys, the admin token, and per-tenant rate limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.app import create_app
from chat_sessions.auth import KeyCache
from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import ADMIN, Clock, Tenant, app_client, client_of, count_rows, create_tenant

TENANT_OWNED = ("api_keys", "sessions", "messages", "tool_calls")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def key_works(client: httpx.AsyncClient, key: str) -> bool:
    response = await client.get("/v1/sessions", headers=bearer(key))
    assert response.status_code in (200, 401), response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    return response.status_code == 200


async def owned_rows(database: Database, tenant_id: str) -> dict[str, int]:
    return {
        table: await count_rows(database, table, "tenant_id = :tenant_id", tenant_id=tenant_id)
        for table in TENANT_OWNED
    }


async def populate(client: httpx.AsyncClient, tenant: Tenant, sessions: int, messages: int) -> None:
    """`sessions` sessions, the last with `messages` messages and one tool call."""
    for _ in range(sessions):
        response = await client.post("/v1/sessions", json={}, headers=tenant.headers)
        assert response.status_code == 201, response.text
    session_id = response.json()["id"]
    for number in range(messages):
        response = await client.post(
            f"/v1/sessions/{session_id}/messages",
            json={"role": "user", "content": f"m{number}"},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
    response = await client.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={"tool_call_id": "call_1", "tool_name": "search"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text


# --- tenants ----------------------------------------------------------------------------


async def test_create_tenant_returns_the_tenant_and_a_key_that_works_at_once(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/admin/tenants",
        json={"name": "acme", "max_sessions": 50, "retention_days": 30},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"tenant", "api_key"}
    tenant = body["tenant"]
    assert tenant["name"] == "acme"
    assert tenant["max_sessions"] == 50
    assert tenant["retention_days"] == 30
    assert tenant["rate_limit_per_minute"] is None
    assert tenant["session_count"] == 0
    assert tenant["message_count"] == 0
    assert tenant["created_at"].endswith(("Z", "+00:00"))
    key = body["api_key"]
    assert await key_works(client, key)
    created = await client.post("/v1/sessions", json={}, headers=bearer(key))
    assert created.status_code == 201


async def test_api_keys_are_long_random_and_distinct(client: httpx.AsyncClient) -> None:
    first = await create_tenant(client, "acme")
    second = await create_tenant(client, "globex")
    assert first.key != second.key
    # 128 bits at least: more than 22 characters of URL-safe base64 after any prefix.
    assert len(first.key) >= 22 + 3


async def test_a_duplicate_tenant_name_is_409_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    before = (await count_rows(database, "tenants"), await count_rows(database, "api_keys"))
    response = await client.post("/v1/admin/tenants", json={"name": tenant.name}, headers=ADMIN)
    assert response.status_code == 409, response.text
    assert response.json()["status"] == 409
    assert response.json()["detail"]
    assert (await count_rows(database, "tenants"), await count_rows(database, "api_keys")) == before


async def test_list_tenants_carries_session_and_message_counts(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await populate(client, tenant, sessions=3, messages=4)
    response = await client.get("/v1/admin/tenants", headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    counts = {item["name"]: (item["session_count"], item["message_count"]) for item in body["data"]}
    assert counts == {tenant.name: (3, 4), other_tenant.name: (0, 0)}
    assert {item["id"] for item in body["data"]} == {tenant.id, other_tenant.id}


async def test_list_tenants_pages_through_every_tenant_once(client: httpx.AsyncClient) -> None:
    created = {(await create_tenant(client, f"tenant-{number}")).id for number in range(7)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/admin/tenants", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 3
        seen += [item["id"] for item in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


async def test_patch_tenant_changes_name_and_limits_and_leaves_absent_fields(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.patch(
        f"/v1/admin/tenants/{tenant.id}",
        json={
            "name": "acme-renamed",
            "max_sessions": 10,
            "retention_days": 7,
            "rate_limit_per_minute": 600,
        },
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["name"]) == (tenant.id, "acme-renamed")
    assert (body["max_sessions"], body["retention_days"], body["rate_limit_per_minute"]) == (
        10,
        7,
        600,
    )

    response = await client.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"retention_days": 90}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "acme-renamed"
    assert (body["max_sessions"], body["retention_days"], body["rate_limit_per_minute"]) == (
        10,
        90,
        600,
    )

    # And the change is stored, not only echoed.
    listed = (await client.get("/v1/admin/tenants", headers=ADMIN)).json()["data"]
    assert [(item["name"], item["retention_days"]) for item in listed] == [("acme-renamed", 90)]


async def test_patch_tenant_with_null_clears_a_limit(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    limits = {"max_sessions": 10, "retention_days": 7, "rate_limit_per_minute": 600}
    response = await client.patch(f"/v1/admin/tenants/{tenant.id}", json=limits, headers=ADMIN)
    assert response.status_code == 200
    for field in limits:
        response = await client.patch(
            f"/v1/admin/tenants/{tenant.id}", json={field: None}, headers=ADMIN
        )
        assert response.status_code == 200, response.text
        assert response.json()[field] is None
    listed = (await client.get("/v1/admin/tenants", headers=ADMIN)).json()["data"][0]
    assert (listed["max_sessions"], listed["retention_days"], listed["rate_limit_per_minute"]) == (
        None,
        None,
        None,
    )


async def test_patch_tenant_to_another_tenants_name_is_409(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await client.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"name": other_tenant.name}, headers=ADMIN
    )
    assert response.status_code == 409, response.text
    # Keeping its own name is no conflict.
    response = await client.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"name": tenant.name}, headers=ADMIN
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v1/admin/tenants/{missing}"),
        ("DELETE", "/v1/admin/tenants/{missing}"),
        ("POST", "/v1/admin/tenants/{missing}/keys"),
        ("DELETE", "/v1/admin/tenants/{tenant}/keys/{missing}"),
        ("DELETE", "/v1/admin/tenants/{missing}/keys/{missing}"),
    ],
)
async def test_unknown_tenants_and_keys_are_404(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str
) -> None:
    missing = "0192f6c5-0000-7000-8000-000000000000"
    url = path.format(missing=missing, tenant=tenant.id)
    body = {"name": "x"} if method == "PATCH" else None
    response = await client.request(method, url, json=body, headers=ADMIN)
    assert response.status_code == 404, response.text
    assert response.json()["status"] == 404


async def test_delete_tenant_removes_everything_it_owns_and_nothing_else(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    await populate(client, tenant, sessions=2, messages=3)
    await populate(client, other_tenant, sessions=1, messages=2)
    extra_key = await client.post(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)
    assert extra_key.status_code == 201
    assert await owned_rows(database, tenant.id) == {
        "api_keys": 2,
        "sessions": 2,
        "messages": 3,
        "tool_calls": 1,
    }
    others_before = await owned_rows(database, other_tenant.id)
    assert all(others_before.values())

    response = await client.delete(f"/v1/admin/tenants/{tenant.id}", headers=ADMIN)
    assert response.status_code == 204
    assert response.content == b""

    assert await owned_rows(database, tenant.id) == dict.fromkeys(TENANT_OWNED, 0)
    assert await count_rows(database, "tenants", "id = :id", id=tenant.id) == 0
    assert await owned_rows(database, other_tenant.id) == others_before
    assert not await key_works(client, tenant.key)
    assert not await key_works(client, extra_key.json()["api_key"])
    assert await key_works(client, other_tenant.key)
    again = await client.delete(f"/v1/admin/tenants/{tenant.id}", headers=ADMIN)
    assert again.status_code == 404


# --- keys -------------------------------------------------------------------------------


async def test_create_key_returns_a_new_key_that_works_beside_the_old_one(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    response = await client.post(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    new_key = body["api_key"]
    assert new_key != tenant.key
    assert body["tenant_id"] == tenant.id
    assert new_key.startswith(body["prefix"])
    assert len(body["prefix"]) < len(new_key) // 2
    assert await key_works(client, new_key)
    assert await key_works(client, tenant.key)
    # The new key reaches the same tenant's data.
    created = await client.post("/v1/sessions", json={}, headers=tenant.headers)
    session_id = created.json()["id"]
    seen = await client.get(f"/v1/sessions/{session_id}", headers=bearer(new_key))
    assert seen.status_code == 200
    assert await count_rows(database, "api_keys", "tenant_id = :t", t=tenant.id) == 2


async def test_a_revoked_key_answers_401_from_then_on_and_other_keys_still_work(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await client.post(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)
    second = created.json()
    assert await key_works(client, second["api_key"])

    response = await client.delete(
        f"/v1/admin/tenants/{tenant.id}/keys/{second['id']}", headers=ADMIN
    )
    assert response.status_code == 204, response.text

    for _ in range(2):  # not a one-off: every later request
        assert not await key_works(client, second["api_key"])
        refused = await client.post("/v1/sessions", json={}, headers=bearer(second["api_key"]))
        assert refused.status_code == 401
    assert await key_works(client, tenant.key)
    assert await key_works(client, other_tenant.key)


async def revoke_in_the_database(database: Database, tenant_id: str) -> None:
    """A revocation made by another process: the CLI, or another worker."""
    async with database.transaction() as tx:
        await tx.execute(
            text("UPDATE api_keys SET revoked_at = created_at WHERE tenant_id = :tenant_id"),
            {"tenant_id": tenant_id},
        )


async def test_a_key_revoked_by_another_process_stops_working_within_the_cache_time(
    settings: Settings, database: Database
) -> None:
    clock = Clock()
    app = create_app(settings, database)
    app.state.key_cache = KeyCache(0.3, clock=clock)
    async with client_of(app) as client:
        tenant = await create_tenant(client, "cached")
        assert await key_works(client, tenant.key)

        await revoke_in_the_database(database, tenant.id)
        assert await key_works(client, tenant.key)  # this process still trusts what it saw
        clock.now += 0.35

        assert not await key_works(client, tenant.key)


async def test_with_no_cache_time_a_revocation_by_another_process_counts_at_once(
    settings: Settings, database: Database
) -> None:
    async with app_client(settings, database, api_key_cache_seconds=0) as client:
        tenant = await create_tenant(client, "uncached")
        assert await key_works(client, tenant.key)

        await revoke_in_the_database(database, tenant.id)

        assert not await key_works(client, tenant.key)


async def test_a_key_cannot_be_revoked_through_another_tenant(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    created = await client.post(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)
    key = created.json()
    response = await client.delete(
        f"/v1/admin/tenants/{other_tenant.id}/keys/{key['id']}", headers=ADMIN
    )
    assert response.status_code == 404
    assert await key_works(client, key["api_key"])


async def test_the_stored_key_hash_is_not_the_key(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    second = (await client.post(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)).json()
    async with database.transaction() as tx:
        rows = (await tx.execute(text("SELECT * FROM api_keys"))).mappings().all()
    assert len(rows) == 2
    for key in (tenant.key, second["api_key"]):
        for row in rows:
            assert row["key_hash"]
            for value in row.values():
                # No column holds the key, nor the secret part after its display prefix.
                assert key not in str(value)
                assert key[len(row["prefix"]) :] not in str(value)


async def test_responses_never_carry_key_hashes(
    client: httpx.AsyncClient, database: Database
) -> None:
    answers = [await client.post("/v1/admin/tenants", json={"name": "acme"}, headers=ADMIN)]
    tenant_id = answers[0].json()["tenant"]["id"]
    answers.append(await client.post(f"/v1/admin/tenants/{tenant_id}/keys", headers=ADMIN))
    answers.append(await client.get("/v1/admin/tenants", headers=ADMIN))
    answers.append(
        await client.patch(f"/v1/admin/tenants/{tenant_id}", json={"name": "b"}, headers=ADMIN)
    )
    async with database.transaction() as tx:
        hashes = (await tx.execute(text("SELECT key_hash FROM api_keys"))).scalars().all()
    assert len(hashes) == 2
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        assert "key_hash" not in answer.text
        for key_hash in hashes:
            assert key_hash not in answer.text


# --- the admin token --------------------------------------------------------------------

ADMIN_ROUTES = [
    ("POST", "/v1/admin/tenants", {"name": "intruder"}),
    ("GET", "/v1/admin/tenants", None),
    ("PATCH", "/v1/admin/tenants/{tenant}", {"name": "intruder"}),
    ("DELETE", "/v1/admin/tenants/{tenant}", None),
    ("POST", "/v1/admin/tenants/{tenant}/keys", None),
    ("DELETE", "/v1/admin/tenants/{tenant}/keys/{key}", None),
]


async def admin_targets(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    key = await client.post(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)
    assert key.status_code == 201
    return {"tenant": tenant.id, "key": key.json()["id"]}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": "Basic dGVzdC1hZG1pbi10b2tlbg=="},
        {"Authorization": "Bearer"},
        "a tenant's key",
    ],
    ids=["none", "wrong", "basic", "empty", "tenant key"],
)
async def test_admin_routes_with_a_wrong_token_are_401_and_change_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, headers: Any
) -> None:
    if headers == "a tenant's key":
        headers = tenant.headers
    ids = await admin_targets(client, tenant)
    before = {table: await count_rows(database, table) for table in ("tenants", "api_keys")}
    for method, path, body in ADMIN_ROUTES:
        response = await client.request(method, path.format(**ids), json=body, headers=headers)
        assert response.status_code == 401, f"{method} {path}: {response.text}"
        assert response.json()["status"] == 401
    after = {table: await count_rows(database, table) for table in ("tenants", "api_keys")}
    assert after == before
    listed = (await client.get("/v1/admin/tenants", headers=ADMIN)).json()["data"]
    assert [item["name"] for item in listed] == [tenant.name]
    assert await key_works(client, tenant.key)


async def test_without_admin_token_every_admin_route_is_404(
    client: httpx.AsyncClient, settings: Settings, database: Database, tenant: Tenant
) -> None:
    ids = await admin_targets(client, tenant)
    before = {table: await count_rows(database, table) for table in ("tenants", "api_keys")}
    async with app_client(settings, database, admin_token=None) as closed:
        for headers in ({}, ADMIN, {"Authorization": "Bearer "}, tenant.headers):
            for method, path, body in ADMIN_ROUTES:
                response = await closed.request(
                    method, path.format(**ids), json=body, headers=headers
                )
                assert response.status_code == 404, f"{method} {path}: {response.text}"
                assert response.json()["status"] == 404
        # Only the operator's routes are gone.
        assert (await closed.get("/v1/sessions", headers=tenant.headers)).status_code == 200
    after = {table: await count_rows(database, table) for table in ("tenants", "api_keys")}
    assert after == before


# --- rate limits ------------------------------------------------------------------------


async def test_a_tenant_over_its_rate_limit_gets_429_with_retry_after(
    client: httpx.AsyncClient, database: Database, other_tenant: Tenant
) -> None:
    limited = await create_tenant(client, "limited", rate_limit_per_minute=3)
    for _ in range(3):
        response = await client.get("/v1/sessions", headers=limited.headers)
        assert response.status_code == 200, response.text

    refused = await client.post("/v1/sessions", json={}, headers=limited.headers)
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["status"] == 429
    assert refused.json()["detail"]
    assert await count_rows(database, "sessions") == 0  # the refused write did nothing

    # Another tenant is unaffected, well past three requests.
    for _ in range(5):
        response = await client.get("/v1/sessions", headers=other_tenant.headers)
        assert response.status_code == 200


async def test_a_rate_limit_set_by_patch_applies(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"rate_limit_per_minute": 2}, headers=ADMIN
    )
    assert response.status_code == 200
    statuses = [
        (await client.get("/v1/sessions", headers=tenant.headers)).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
