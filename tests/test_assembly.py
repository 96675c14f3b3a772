"""How app.py wires request checking into Litestar (issue 11, item 2): through public hooks
only (`request_class`, each router's `before_request`), and every route gets the checks.

Litestar runs only the closest layer's `before_request`; the app sets none, so a route that
no router hook covered would silently skip the checks. These tests make that fail.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.routes import HTTPRoute

from chat_sessions.bodies import StrictRequest, check_request
from chat_sessions.db import Database
from chat_sessions.errors import EXCEPTION_HANDLERS
from support import ADMIN, assert_problem, stored


class Shape(msgspec.Struct, forbid_unknown_fields=True):
    count: int


@post("/shape", before_request=check_request)
async def receives_the_decoded_body(data: JSONBody[Shape], request: Request[Any, Any, Any]) -> bool:
    return data is await request.json()


async def test_the_handler_receives_the_value_strict_request_decoded_not_a_second_decode() -> None:
    """The hand-over the append hot path counts on: Litestar gives the handler what
    `StrictRequest.json()` returned (the same object, so the body was not decoded again).
    Fails if Litestar stops reading the body through `Request.json()`."""
    app = Litestar(
        [receives_the_decoded_body],
        request_class=StrictRequest,
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"handler_shapes": {}}),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/shape", json={"count": 1})
        assert response.status_code == 201, response.text
        assert response.json() is True
        # Strict: Litestar's own (lax) conversion would take "1" for 1.
        assert_problem(await client.post("/shape", json={"count": "1"}), 400)


async def test_every_route_has_a_before_request_hook_and_the_app_sets_none(
    client: httpx.AsyncClient,
) -> None:
    app: Any = client._transport.app  # type: ignore[attr-defined]
    assert app.before_request is None
    handlers = [
        handler
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
    ]
    assert len(handlers) > 20
    unchecked = [
        handler.handler_name for handler in handlers if handler.resolve_before_request() is None
    ]
    assert unchecked == []


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b'{"name": "a", "name": "b"}', 400),
        ("application/json", b'{"name": 5}', 400),
        ("application/json", b'{"name": "x\\u0000"}', 400),
        ("application/json", b"", 400),
        ("text/plain", b'{"name": "a"}', 415),
    ],
    ids=["duplicate key", "wrong type", "NUL", "no body", "not JSON"],
)
async def test_an_admin_post_gets_the_body_checks_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, content_type: str, body: bytes, status: int
) -> None:
    """The admin router is no tenant route: its own `before_request` checks its bodies."""
    before = await stored(database)
    response = await client.post(
        "/v1/admin/tenants", content=body, headers={**ADMIN, "Content-Type": content_type}
    )
    assert_problem(response, status)
    assert await stored(database) == before


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/schema/openapi.json"])
async def test_operations_and_openapi_routes_get_the_query_checks(
    client: httpx.AsyncClient, path: str
) -> None:
    body = assert_problem(await client.get(f"{path}?x=%00"), 400)
    assert "NUL" in body["detail"]
