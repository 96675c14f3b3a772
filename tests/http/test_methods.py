"""HTTP details of RFC 9110 Litestar 2 leaves to the application: HEAD on every GET route,
an `Allow` header that lists every method of the path, and an encoded slash (`%2F`) that
never becomes a route separator."""

from __future__ import annotations

import re

import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute

from support import ADMIN, Tenant, new_session


async def _every_get_path(client: httpx.AsyncClient, app: Litestar, tenant: Tenant) -> list[str]:
    """Every GET route of the app, its path parameters filled with ids that exist."""
    session_id = await new_session(client, tenant, user_id="u-1")
    message = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "hello there"},
        headers=tenant.headers,
    )
    tool_call = await client.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={"tool_call_id": "call_1", "tool_name": "search"},
        headers=tenant.headers,
    )
    values = {
        "session_id": session_id,
        "message_id": message.json()["id"],
        "conversation_id": session_id,  # a conversation is a session
        "item_id": message.json()["id"],
        "tool_call_pk": tool_call.json()["id"],
        "path": "openapi.json",
        "tenant_id": tenant.id,
        "user_id": "u-1",
    }
    queries = {"/v1/search": "?q=hello"}
    paths = []
    for route in app.routes:
        if isinstance(route, HTTPRoute) and "GET" in route.methods:
            path = re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], route.path)
            paths.append(path + queries.get(route.path, ""))
    return paths


def _headers_for(path: str, tenant: Tenant) -> dict[str, str]:
    return ADMIN if path.startswith("/v1/admin/") else tenant.headers


async def test_head_on_every_get_route_answers_like_get_without_a_body(
    client: httpx.AsyncClient, app: Litestar, tenant: Tenant
) -> None:
    paths = await _every_get_path(client, app, tenant)
    assert "/v1/sessions" in paths and "/schema/openapi.json" in paths
    for path in paths:
        headers = _headers_for(path, tenant)
        head = await client.head(path, headers=headers)
        if path.endswith("/events"):  # a stream: its GET never ends (tests/events/ reads it)
            assert head.status_code == 200 and head.content == b"", path
            assert head.headers["content-type"].startswith("text/event-stream"), path
            continue
        got = await client.get(path, headers=headers)
        assert got.status_code == 200, (path, got.text)
        assert head.status_code == 200, (path, head.text)
        assert head.content == b"", path
        assert head.headers.get("content-type") == got.headers.get("content-type"), path
        assert head.headers.get("etag") == got.headers.get("etag"), path


async def test_head_of_a_missing_resource_is_404_without_a_body(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.head("/v1/sessions/no-such-session", headers=tenant.headers)
    assert response.status_code == 404
    assert response.content == b""


async def test_head_where_the_path_has_no_get_is_405(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.head(f"/v1/sessions/{session_id}/traits", headers=tenant.headers)
    assert response.status_code == 405
    assert response.content == b""
    assert _methods(response) == {"OPTIONS", "PUT"}


def _methods(response: httpx.Response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


async def test_options_lists_every_method_of_the_path(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # GET and POST of /v1/sessions are two handlers: Litestar 2's own OPTIONS answer listed
    # only the one registered first (litestar#4169).
    response = await client.options("/v1/sessions", headers=tenant.headers)
    assert response.status_code == 204
    assert _methods(response) == {"GET", "HEAD", "OPTIONS", "POST"}
    response = await client.options("/v1/sessions/some-id", headers=tenant.headers)
    assert _methods(response) == {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH"}


async def test_options_on_every_route_matches_its_methods(
    client: httpx.AsyncClient, app: Litestar, tenant: Tenant
) -> None:
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        path = re.sub(r"\{\w+:\w+\}", "x", route.path)
        response = await client.options(path, headers=_headers_for(path, tenant))
        expected = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
        assert response.status_code == 204, path
        assert _methods(response) == expected, path


async def test_a_wrong_method_answers_405_with_every_method_of_the_path(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.put("/v1/sessions", headers=tenant.headers, json={})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert _methods(response) == {"GET", "HEAD", "OPTIONS", "POST"}


async def test_an_encoded_slash_is_not_a_route_separator(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant, user_id="team/alice")
    for path in ("/v1/sessions/%2F", "/v1/sessions/%2f", f"/v1/sessions/{session_id}%2Fmessages"):
        response = await client.get(path, headers=tenant.headers)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404
    # Not the route /v1/users/team with something after it, and nothing erased.
    response = await client.delete("/v1/users/team%2Falice", headers=tenant.headers)
    assert response.status_code == 404
    kept = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert kept.status_code == 200
