"""Tenant isolation: a tenant reaches only its own data, and another tenant's ids answer
exactly as ids that do not exist; requests without a valid key are 401."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from chat_sessions.models import new_id
from support import ADMIN, Tenant, count_rows

# --- tenant A's data ------------------------------------------------------------------------


@dataclass
class World:
    """Tenant A's session, one of its messages (an assistant's tool request) and its tool call."""

    session: str
    message: str
    tool_call: str


async def build_world(client: httpx.AsyncClient, owner: Tenant) -> World:
    response = await client.post(
        "/v1/sessions",
        json={"user_id": "u-shared", "title": "A's chat", "traits": {"plan": "pro"}},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    session = response.json()["id"]
    response = await client.post(
        f"/v1/sessions/{session}/messages",
        json={"role": "user", "content": "secret itinerary to Lisbon"},
        headers={**owner.headers, "Idempotency-Key": "append-1"},
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        f"/v1/sessions/{session}/messages/batch",
        json={
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "search"}}
                    ],
                },
                {"role": "tool", "content": "hotel list", "tool_call_id": "call_1"},
            ]
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    assistant = response.json()["data"][0]["id"]
    response = await client.post(
        f"/v1/sessions/{session}/tool-calls",
        json={"tool_call_id": "call_1", "tool_name": "search", "message_id": assistant},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return World(session=session, message=assistant, tool_call=response.json()["id"])


async def snapshot(
    client: httpx.AsyncClient, database: Database, owner: Tenant, world: World
) -> dict[str, Any]:
    """Everything of A's that B's requests might change, read back as A and from the rows."""
    base = f"/v1/sessions/{world.session}"
    seen: dict[str, Any] = {}
    for path in (
        base,
        f"{base}/messages",
        f"{base}/messages/{world.message}",
        f"{base}/context",
        f"{base}/tool-calls",
        "/v1/sessions",
    ):
        response = await client.get(path, headers=owner.headers)
        assert response.status_code == 200, response.text
        seen[path] = response.json()
    for table in ("sessions", "messages", "tool_calls"):
        seen[table] = await count_rows_of(database, table, owner)
    return seen


async def count_rows_of(database: Database, table: str, owner: Tenant) -> int:
    return await count_rows(database, table, "tenant_id = :t", t=owner.id)


@pytest.fixture
async def world(client: httpx.AsyncClient, tenant: Tenant) -> World:
    return await build_world(client, tenant)


@pytest.fixture
async def own_session(client: httpx.AsyncClient, other_tenant: Tenant) -> str:
    """A session of tenant B's own, to reach A's messages and tool calls through."""
    response = await client.post("/v1/sessions", json={}, headers=other_tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# --- every route that takes an id of tenant data --------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, ids: dict[str, str]) -> dict[str, Any]:
        """The request's parts, with `{session}`, `{message}`, `{tool_call}`, `{own}` filled."""
        return {
            "method": self.method,
            "url": self.path.format(**ids),
            "json": fill(self.body, ids),
            "params": self.params,
            "headers": self.headers,
        }


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, ids) for item in value]
    return value


S = "/v1/sessions/{session}"
TOOL_CALL_BODY = {"tool_call_id": "call_9", "tool_name": "search", "arguments": {"q": "x"}}
ROUTES = [
    Route("get session", "GET", S),
    Route("patch session", "PATCH", S, {"title": "mine now", "traits": {"plan": None}}),
    Route("patch session if match", "PATCH", S, {"title": "x"}, headers={"If-Match": '"1"'}),
    Route("put traits", "PUT", S + "/traits", {"owner": "B"}),
    Route("delete session", "DELETE", S),
    Route("append message", "POST", S + "/messages", {"role": "user", "content": "injected"}),
    Route(
        "append message if last seq",
        "POST",
        S + "/messages",
        {"role": "user", "content": "injected"},
        params={"expected_last_seq": 3},
    ),
    Route(
        "replay A's idempotency key",
        "POST",
        S + "/messages",
        {"role": "user", "content": "secret itinerary to Lisbon"},
        headers={"Idempotency-Key": "append-1"},
    ),
    Route(
        "append batch",
        "POST",
        S + "/messages/batch",
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    ),
    Route("list messages", "GET", S + "/messages"),
    Route("list messages desc", "GET", S + "/messages", params={"order": "desc", "limit": 1}),
    Route("get message", "GET", S + "/messages/{message}"),
    Route("truncate messages", "DELETE", S + "/messages", params={"after_seq": 0}),
    Route(
        "truncate messages if last seq",
        "DELETE",
        S + "/messages",
        params={"after_seq": 0, "expected_last_seq": 3},
    ),
    Route("pop message", "DELETE", S + "/messages/last"),
    Route(
        "pop message if last seq", "DELETE", S + "/messages/last", params={"expected_last_seq": 3}
    ),
    Route("context", "GET", S + "/context"),
    Route("create tool call", "POST", S + "/tool-calls", TOOL_CALL_BODY),
    Route(
        "create tool call on A's message",
        "POST",
        S + "/tool-calls",
        {**TOOL_CALL_BODY, "message_id": "{message}"},
    ),
    Route(
        "patch tool call",
        "PATCH",
        S + "/tool-calls/{tool_call}",
        {"status": "completed", "result": {"ok": True}},
    ),
    Route("list tool calls", "GET", S + "/tool-calls"),
    Route("list tool calls by status", "GET", S + "/tool-calls", params={"status": "pending"}),
    Route("export", "GET", S + "/export"),
    # B's own session, with A's message and tool call ids inside it.
    Route("get A's message through B's session", "GET", "/v1/sessions/{own}/messages/{message}"),
    Route(
        "patch A's tool call through B's session",
        "PATCH",
        "/v1/sessions/{own}/tool-calls/{tool_call}",
        {"status": "failed", "error": "taken over"},
    ),
    Route(
        "link B's tool call to A's message",
        "POST",
        "/v1/sessions/{own}/tool-calls",
        {**TOOL_CALL_BODY, "message_id": "{message}"},
    ),
]


@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
async def test_another_tenants_ids_answer_exactly_as_unknown_ids_and_change_nothing(
    client: httpx.AsyncClient,
    database: Database,
    tenant: Tenant,
    other_tenant: Tenant,
    world: World,
    own_session: str,
    route: Route,
) -> None:
    before = await snapshot(client, database, tenant, world)
    b_rows = {t: await count_rows_of(database, t, other_tenant) for t in ("messages", "tool_calls")}
    real = {
        "session": world.session,
        "message": world.message,
        "tool_call": world.tool_call,
        "own": own_session,
    }
    unknown = {"session": new_id(), "message": new_id(), "tool_call": new_id(), "own": own_session}

    def send(ids: dict[str, str]) -> Any:
        parts = route.request(ids)
        parts["headers"] = {**parts["headers"], **other_tenant.headers}
        return client.request(**parts)

    foreign = await send(real)
    missing = await send(unknown)

    assert foreign.status_code == 404, foreign.text
    assert missing.status_code == 404, missing.text
    assert foreign.json() == missing.json()
    assert foreign.headers["content-type"] == missing.headers["content-type"]
    assert "detail" in foreign.json()

    assert await snapshot(client, database, tenant, world) == before
    assert {
        t: await count_rows_of(database, t, other_tenant) for t in ("messages", "tool_calls")
    } == b_rows


async def test_the_owner_reaches_the_same_ids(
    client: httpx.AsyncClient, tenant: Tenant, world: World
) -> None:
    # The 404s above are about the tenant, not about ids that were never reachable.
    base = f"/v1/sessions/{world.session}"
    for path in (base, f"{base}/messages/{world.message}", f"{base}/export"):
        assert (await client.get(path, headers=tenant.headers)).status_code == 200
    response = await client.patch(
        f"{base}/tool-calls/{world.tool_call}",
        json={"status": "executing"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text


# --- listings, search, stats, erasure -------------------------------------------------------


async def test_session_list_never_shows_another_tenants_sessions(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, world: World
) -> None:
    for _ in range(2):
        response = await client.post(
            "/v1/sessions", json={"user_id": "u-shared"}, headers=tenant.headers
        )
        assert response.status_code == 201
    response = await client.post(
        "/v1/sessions", json={"user_id": "u-shared"}, headers=other_tenant.headers
    )
    mine = response.json()["id"]

    for params in ({}, {"user_id": "u-shared"}, {"status": "active"}, {"limit": 1}):
        listed = await client.get("/v1/sessions", params=params, headers=other_tenant.headers)
        assert listed.status_code == 200
        assert [s["id"] for s in listed.json()["data"]] == [mine]
        assert listed.json()["next_cursor"] is None

    owner_list = await client.get("/v1/sessions", params={"limit": 100}, headers=tenant.headers)
    assert mine not in [s["id"] for s in owner_list.json()["data"]]
    assert len(owner_list.json()["data"]) == 3


async def test_another_tenants_session_list_cursor_is_400(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    for owner in (tenant, tenant, other_tenant, other_tenant):
        assert (await client.post("/v1/sessions", json={}, headers=owner.headers)).is_success
    for params in ({}, {"status": "active"}):
        page = await client.get(
            "/v1/sessions", params={"limit": 1, **params}, headers=tenant.headers
        )
        cursor = page.json()["next_cursor"]
        assert cursor is not None
        response = await client.get(
            "/v1/sessions",
            params={"limit": 1, "cursor": cursor, **params},
            headers=other_tenant.headers,
        )
        assert response.status_code == 400, response.text
        assert "detail" in response.json()


async def test_another_tenants_message_cursor_is_400_on_its_own_session(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, world: World, own_session: str
) -> None:
    page = await client.get(
        f"/v1/sessions/{world.session}/messages", params={"limit": 1}, headers=tenant.headers
    )
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    response = await client.post(
        f"/v1/sessions/{own_session}/messages",
        json={"role": "user", "content": "x"},
        headers=other_tenant.headers,
    )
    assert response.status_code == 201
    response = await client.get(
        f"/v1/sessions/{own_session}/messages",
        params={"limit": 1, "cursor": cursor},
        headers=other_tenant.headers,
    )
    assert response.status_code == 400, response.text


async def test_search_stats_and_user_erasure_see_only_the_callers_tenant(
    client: httpx.AsyncClient,
    database: Database,
    tenant: Tenant,
    other_tenant: Tenant,
    world: World,
) -> None:
    before = await snapshot(client, database, tenant, world)

    found = await client.get("/v1/search", params={"q": "itinerary"}, headers=other_tenant.headers)
    assert found.status_code == 200, found.text
    assert found.json()["data"] == []
    scoped = await client.get(
        "/v1/search",
        params={"q": "itinerary", "session_id": world.session},
        headers=other_tenant.headers,
    )
    assert scoped.status_code == 200
    assert scoped.json()["data"] == []
    owner_found = await client.get("/v1/search", params={"q": "itinerary"}, headers=tenant.headers)
    assert [hit["session_id"] for hit in owner_found.json()["data"]] == [world.session]

    stats = await client.get("/v1/stats", headers=other_tenant.headers)
    assert stats.status_code == 200
    assert stats.json() == {"sessions": 0, "messages": 0, "tokens": 0, "users": 0}

    erased = await client.delete("/v1/users/u-shared", headers=other_tenant.headers)
    assert erased.status_code == 200
    assert erased.json() == {"deleted_sessions": 0}

    assert await snapshot(client, database, tenant, world) == before


# --- authentication -------------------------------------------------------------------------

LISTINGS = [
    Route("list sessions", "GET", "/v1/sessions"),
    Route("create session", "POST", "/v1/sessions", {"title": "x"}),
    Route("search", "GET", "/v1/search", params={"q": "itinerary"}),
    Route("stats", "GET", "/v1/stats"),
    Route("erase user", "DELETE", "/v1/users/u-shared"),
    Route("import", "POST", "/v1/sessions/import", {"format": "chat-sessions.v1"}),
]
ALL_ROUTES = ROUTES[:-3] + LISTINGS


async def bad_credentials(client: httpx.AsyncClient, owner: Tenant) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be refused, by what is wrong with them."""
    created = await client.post(f"/v1/admin/tenants/{owner.id}/keys", headers=ADMIN)
    assert created.status_code == 201, created.text
    revoked = created.json()
    works = await client.get(
        "/v1/sessions", headers={"Authorization": f"Bearer {revoked['api_key']}"}
    )
    assert works.status_code == 200
    gone = await client.delete(f"/v1/admin/tenants/{owner.id}/keys/{revoked['id']}", headers=ADMIN)
    assert gone.status_code == 204
    return {
        "missing": {},
        "empty": {"Authorization": ""},
        "scheme only": {"Authorization": "Bearer"},
        "scheme and blank": {"Authorization": "Bearer   "},
        "other scheme": {"Authorization": f"Basic {owner.key}"},
        "no scheme": {"Authorization": owner.key},
        "unknown key": {"Authorization": "Bearer cs_" + "A" * 43},
        "key with a character more": {"Authorization": f"Bearer {owner.key}x"},
        "key cut short": {"Authorization": f"Bearer {owner.key[:-1]}"},
        "admin token": ADMIN,
        "revoked key": {"Authorization": f"Bearer {revoked['api_key']}"},
        "huge": {"Authorization": "Bearer " + "k" * 10_000},
    }


@pytest.mark.parametrize("route", ALL_ROUTES, ids=[route.name for route in ALL_ROUTES])
async def test_missing_malformed_unknown_or_revoked_key_is_401_with_www_authenticate(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, world: World, route: Route
) -> None:
    before = await snapshot(client, database, tenant, world)
    ids = {"session": world.session, "message": world.message, "tool_call": world.tool_call}
    for problem, headers in (await bad_credentials(client, tenant)).items():
        parts = route.request(ids)
        parts["headers"] = {**parts["headers"], **headers}
        response = await client.request(**parts)
        assert response.status_code == 401, (problem, response.text)
        assert response.headers["www-authenticate"] == "Bearer", problem
        assert "json" in response.headers["content-type"], problem
        assert response.json()["status"] == 401, problem
    assert await snapshot(client, database, tenant, world) == before


async def test_401_comes_before_404_and_before_body_validation(client: httpx.AsyncClient) -> None:
    unknown = {"Authorization": "Bearer cs_unknown"}
    for method, url, body in (
        ("GET", f"/v1/sessions/{new_id()}", None),
        ("POST", "/v1/sessions", {"status": "paused", "extra": 1}),
        ("PATCH", f"/v1/sessions/{new_id()}", {"title": 5}),
    ):
        response = await client.request(method, url, json=body, headers=unknown)
        assert response.status_code == 401, (url, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
