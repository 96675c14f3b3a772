"""Strict query strings (API.md, version 1.1; issue 12, item 1): every route answers 400 to a
query parameter it does not know, naming it and never its value, and changes nothing; a route
that opts in with `opt={LENIENT_QUERY: True}` (the OpenAI-compatible ones) accepts and ignores
what it does not know."""

from __future__ import annotations

import re
from typing import Annotated, Any

import httpx
import pytest
from litestar import Controller, Litestar, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import (
    CookieParameter,
    FromPath,
    FromQuery,
    HeaderParameter,
    QueryParameter,
)
from litestar.routes import HTTPRoute

from chat_sessions.app import check_tenant_request
from chat_sessions.bodies import LENIENT_QUERY, StrictRequest, check_request
from chat_sessions.db import Database
from chat_sessions.errors import EXCEPTION_HANDLERS
from support import ADMIN, Tenant, append, assert_problem, client_of, new_session, stored

UNKNOWN = "expected_last_sq"  # the misspelt precondition
SECRET = "s3cret-value"  # its value, which no answer may repeat
NOW = "2026-11-22T10:00:00Z"
# A body each write route accepts: the request would change something but for the parameter.
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/sessions"): {"title": "t"},
    ("PATCH", "/v1/sessions/{session_id:str}"): {"title": "t2"},
    ("PUT", "/v1/sessions/{session_id:str}/traits"): {"plan": "free"},
    ("POST", "/v1/sessions/{session_id:str}/fork"): {"title": "forked"},
    ("POST", "/v1/sessions/{session_id:str}/messages"): {"role": "user", "content": "hi"},
    ("POST", "/v1/sessions/{session_id:str}/messages/batch"): {
        "messages": [{"role": "user", "content": "hi"}]
    },
    ("POST", "/v1/sessions/{session_id:str}/messages/{message_id:str}/deltas"): {"content": "x"},
    ("PATCH", "/v1/sessions/{session_id:str}/messages/{message_id:str}"): {"status": "completed"},
    ("POST", "/v1/sessions/{session_id:str}/tool-calls"): {
        "tool_call_id": "call_2",
        "tool_name": "search",
    },
    ("PATCH", "/v1/sessions/{session_id:str}/tool-calls/{tool_call_pk:str}"): {
        "status": "executing"
    },
    ("POST", "/v1/sessions/import"): {
        "format": "chat-sessions.v1",
        "session": {"title": "imported"},
        "messages": [{"seq": 1, "role": "user", "content": "hi", "created_at": NOW}],
    },
    ("PATCH", "/v1/users/{user_id:str}/traits"): {"tier": "gold"},
    ("PUT", "/v1/users/{user_id:str}/traits"): {"tier": "gold"},
    ("POST", "/v1/admin/tenants"): {"name": "initech"},
    ("PATCH", "/v1/admin/tenants/{tenant_id:str}"): {"name": "acme2"},
    ("POST", "/v1/admin/tenants/{tenant_id:str}/keys"): None,
}

REQUIRED_QUERY = {
    ("GET", "/v1/search"): "q=hello&",
    ("DELETE", "/v1/sessions/{session_id:str}/messages"): "after_seq=1&",
}


def assert_unknown_parameter(response: httpx.Response, name: str = UNKNOWN) -> None:
    body = assert_problem(response, 400)
    assert body["detail"].startswith(f"unknown query parameter: {name} "), body["detail"]
    assert SECRET not in response.text


async def _path_values(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, str]:
    """An existing id for every path parameter of the app."""
    session_id = await new_session(client, tenant, user_id="u-1")
    message = await append(client, tenant, session_id)
    tool_call = await client.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={"tool_call_id": "call_1", "tool_name": "search"},
        headers=tenant.headers,
    )
    keys = await client.get(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)
    return {
        "session_id": session_id,
        "conversation_id": session_id,  # a conversation is a session
        "message_id": message["id"],
        "item_id": message["id"],
        "tool_call_pk": tool_call.json()["id"],
        "tenant_id": tenant.id,
        "key_id": keys.json()["data"][0]["id"],
        "user_id": "u-1",
        "path": "openapi.json",
    }


async def test_every_route_answers_400_naming_an_unknown_query_parameter_and_changes_nothing(
    client: httpx.AsyncClient, app: Litestar, database: Database, tenant: Tenant
) -> None:
    values = await _path_values(client, tenant)
    before = await stored(database)
    sent = []
    lenient = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{(\w+):\w+\}", lambda m: values[m.group(1)], route.path)
        headers = ADMIN if path.startswith("/v1/admin/") else tenant.headers
        for method in sorted(route.methods - {"OPTIONS"}):
            if route.route_handler_map[method][0].opt.get(LENIENT_QUERY):
                lenient.add(route.path)
                continue
            # A required parameter too, where the route has one: only the unknown one is wrong.
            required = REQUIRED_QUERY.get((method, route.path), "")
            url = f"{path}?{required}{UNKNOWN}={SECRET}"
            if method in {"POST", "PATCH", "PUT"}:
                assert (method, route.path) in VALID_BODIES, f"a valid body for {route.path}?"
            body = VALID_BODIES.get((method, route.path))
            response = await client.request(method, url, json=body, headers=headers)
            assert_unknown_parameter(response)
            sent.append(f"{method} {route.path}")
            if method == "GET":
                head = await client.head(url, headers=headers)
                assert head.status_code == 400 and head.content == b"", url
    assert len(sent) > 30
    assert {"GET /health", "GET /ready", "GET /metrics", "GET /schema/openapi.json"} <= set(sent)
    assert "DELETE /v1/admin/tenants/{tenant_id:str}/keys/{key_id:str}" in sent
    # Only OpenAI's Conversations API accepts what it does not read (API.md).
    assert lenient and all(path.startswith("/v1/conversations") for path in lenient)
    assert await stored(database) == before


async def test_a_truncation_with_a_misspelt_precondition_is_400_and_deletes_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    """The issue's own case: `expected_last_sq` was ignored, and the truncation deleted."""
    session_id = await new_session(client, tenant)
    for _ in range(3):
        await append(client, tenant, session_id)
    before = await stored(database)
    url = f"/v1/sessions/{session_id}/messages?after_seq=1"
    response = await client.delete(f"{url}&{UNKNOWN}=5", headers=tenant.headers)
    body = assert_problem(response, 400)
    assert body["detail"].startswith(f"unknown query parameter: {UNKNOWN} "), body
    assert "after_seq" in body["detail"]  # what the route does take
    assert await stored(database) == before
    # The control: without it, the same request truncates.
    response = await client.delete(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2}


async def test_known_query_parameters_still_work(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant, user_id="u-1")
    for _ in range(3):
        await append(client, tenant, session_id, content="hello there")
    messages = f"/v1/sessions/{session_id}/messages"
    for url in [
        f"{messages}?order=desc&after_seq=0&before_seq=3&role=user&limit=1",
        f"/v1/sessions/{session_id}/context?max_messages=2&max_tokens=1000",
        f"/v1/sessions/{session_id}/tool-calls?status=pending&limit=5",
        "/v1/sessions?user_id=u-1&status=active&limit=5",
        f"/v1/search?q=hello&session_id={session_id}&user_id=u-1&role=user&limit=5",
        f"{messages}?li%6Dit=2",  # a name percent-encoded is the name
        f"{messages}?",
        f"{messages}?&",
    ]:
        response = await client.get(url, headers=tenant.headers)
        assert response.status_code == 200, (url, response.text)
    listed = await client.get("/v1/admin/tenants?limit=1", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    appended = await client.post(
        f"{messages}?expected_last_seq=3",
        json={"role": "user", "content": "hi"},
        headers=tenant.headers,
    )
    assert appended.status_code == 201, appended.text


async def test_a_parameter_given_twice_is_read_as_before_and_an_unknown_one_twice_is_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Repeating a known parameter is not what this check is about: it stays accepted, the
    last value read. A repeated unknown one is refused like a single one."""
    session_id = await new_session(client, tenant)
    for _ in range(3):
        await append(client, tenant, session_id)
    messages = f"/v1/sessions/{session_id}/messages"
    for query, count in [("limit=1&limit=3", 3), ("limit=3&limit=1", 1)]:
        response = await client.get(f"{messages}?{query}", headers=tenant.headers)
        assert response.status_code == 200, (query, response.text)
        assert len(response.json()["data"]) == count, query
    for query in ["order=asc&order=desc", "after_seq=1&after_seq=2"]:
        response = await client.get(f"{messages}?{query}", headers=tenant.headers)
        assert response.status_code == 200, (query, response.text)
    response = await client.get(
        f"{messages}?{UNKNOWN}={SECRET}&{UNKNOWN}={SECRET}", headers=tenant.headers
    )
    assert_unknown_parameter(response)


async def test_a_route_without_query_parameters_says_so_and_the_name_is_case_sensitive(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    body = assert_problem(
        await client.get(f"/v1/sessions/{session_id}?x=1", headers=tenant.headers), 400
    )
    assert body["detail"] == "unknown query parameter: x (this route takes: none)"
    response = await client.get(
        f"/v1/sessions/{session_id}/messages?Limit=5", headers=tenant.headers
    )
    assert_unknown_parameter(response, "Limit")


async def test_without_an_api_key_a_tenant_route_is_401_whatever_its_query_holds(
    client: httpx.AsyncClient,
) -> None:
    """A tenant route checks the key first: without one it is 401, whatever the query holds."""
    response = await client.get(f"/v1/sessions?{UNKNOWN}={SECRET}")
    assert_problem(response, 401)


async def test_a_very_long_unknown_name_is_shortened_in_the_answer(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    name = "z" * 5000
    body = assert_problem(await client.get(f"/v1/sessions?{name}=1", headers=tenant.headers), 400)
    assert len(body["detail"]) < 300


async def test_options_accepts_any_query_string(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """OPTIONS reads no parameter, and a CORS preflight carries the query string of the
    request it asks about."""
    response = await client.options(f"/v1/sessions?limit=5&{UNKNOWN}=1", headers=tenant.headers)
    assert response.status_code == 204, response.text


# --- What counts as known, and the opt-out, on an app of the test's own ----------------------


async def provide_page(page_token: FromQuery[str | None] = None) -> str | None:
    return page_token


@get("/items/{item_id:str}", dependencies={"page": Provide(provide_page)})
async def read_item(
    item_id: FromPath[str],
    page: NamedDependency[str | None],
    size: Annotated[int, QueryParameter(name="page-size")] = 10,
    trace: Annotated[str | None, HeaderParameter(name="X-Trace")] = None,
    theme: Annotated[str | None, CookieParameter(name="theme")] = None,
) -> dict[str, Any]:
    return {"item_id": item_id, "page": page, "size": size}


@get("/lenient-handler", opt={LENIENT_QUERY: True})
async def lenient_handler(limit: FromQuery[int] = 20) -> dict[str, int]:
    return {"limit": limit}


@get("/lenient-handler")
async def strict_handler(limit: FromQuery[int] = 20) -> dict[str, int]:
    return {"limit": limit}


class ConversationItems(Controller):
    """Stands for the OpenAI-compatible routes: lenient through their router's `opt`."""

    path = "/conversations/{conversation_id:str}/items"

    @get("/")
    async def list_items(
        self, conversation_id: FromPath[str], limit: FromQuery[int] = 20
    ) -> dict[str, Any]:
        return {"conversation_id": conversation_id, "limit": limit}


def own_app() -> Litestar:
    return Litestar(
        [
            Router(
                "/strict",
                route_handlers=[read_item],
                before_request=check_request,
                parameters={"locale": QueryParameter(annotation=str | None, required=False)},
            ),
            Router(
                "/v1",
                route_handlers=[ConversationItems, lenient_handler],
                before_request=check_request,
                opt={LENIENT_QUERY: True},
            ),
            Router("/strict", route_handlers=[strict_handler], before_request=check_request),
        ],
        request_class=StrictRequest,
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"handler_shapes": {}}),
    )


async def test_the_known_names_are_what_litestar_reads_from_the_query_string() -> None:
    """A parameter's query name (`QueryParameter(name=...)`), a dependency's own query
    parameter, a layer's `parameters`; not a path, header or cookie parameter's name, nor a
    Python name that differs from its query name."""
    async with client_of(own_app()) as client:
        response = await client.get("/strict/items/a?page-size=5&page_token=t&locale=fr")
        assert response.status_code == 200, response.text
        assert response.json() == {"item_id": "a", "page": "t", "size": 5}
        for name in ["size", "item_id", "X-Trace", "trace", "theme", "page", "data"]:
            body = assert_problem(await client.get(f"/strict/items/a?{name}=1"), 400)
            assert body["detail"] == (
                f"unknown query parameter: {name} (this route takes: locale, page-size, page_token)"
            )
        # The query name of an integer keeps the integer check.
        assert_problem(await client.get("/strict/items/a?page-size=1e3"), 400)


async def test_a_lenient_route_accepts_and_ignores_unknown_parameters_and_checks_its_own() -> None:
    async with client_of(own_app()) as client:
        for url in ["/v1/conversations/c-1/items", "/v1/lenient-handler"]:
            response = await client.get(f"{url}?include=a&include[]=b&include[]=c&limit=3")
            assert response.status_code == 200, response.text
            assert response.json()["limit"] == 3
            assert_problem(await client.get(f"{url}?limit=1e3&include=a"), 400)
            assert_problem(await client.get(f"{url}?include=%00"), 400)
        # The same handler without the `opt`: strict.
        response = await client.get("/strict/lenient-handler?include=a")
        assert_unknown_parameter(response, "include")


@pytest.mark.parametrize("opt", [{LENIENT_QUERY: True}, {}])
async def test_create_app_with_a_lenient_router_added(
    client: httpx.AsyncClient, app: Litestar, tenant: Tenant, opt: dict[str, Any]
) -> None:
    """What the OpenAI-compatible routes will do: a router of the app with `opt`, behind the
    tenant routes' own checks (the key first)."""
    app.register(
        Router(
            "/v1/compat",
            route_handlers=[ConversationItems],
            before_request=check_tenant_request,
            opt=opt,
        )
    )
    url = "/v1/compat/conversations/c-1/items?include[]=message.output_text.logprobs&limit=2"
    response = await client.get(url, headers=tenant.headers)
    if opt:
        assert response.status_code == 200, response.text
    else:
        assert_unknown_parameter(response, "include[]")
    assert_problem(await client.get(url), 401)
