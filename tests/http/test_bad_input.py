"""Whatever a client sends, the answer is a JSON problem with `detail` and `status`, never an
HTML page, a stack trace or a 5xx, and a rejected write stores nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import ADMIN, Tenant, app_client, assert_problem, count_rows, stored


@dataclass
class Target:
    """A tenant's session holding one message and one tool call: something to write to."""

    tenant: Tenant
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def target(client: httpx.AsyncClient, tenant: Tenant) -> Target:
    headers = tenant.headers
    session = await client.post("/v1/sessions", json={"traits": {"plan": "pro"}}, headers=headers)
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    message = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "hello"},
        headers=headers,
    )
    assert message.status_code == 201, message.text
    call = await client.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={"tool_call_id": "call_1", "tool_name": "search"},
        headers=headers,
    )
    assert call.status_code == 201, call.text
    return Target(
        tenant,
        {"session_id": session_id, "tool_call_pk": call.json()["id"], "tenant_id": tenant.id},
    )


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    valid: Any  # a body this route accepts: the control that the route itself is right
    admin: bool = False

    def url(self, target: Target) -> str:
        return self.path.format(**target.ids)

    def headers(self, target: Target, content_type: str | None = "application/json") -> dict:
        headers = dict(ADMIN if self.admin else target.tenant.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


SESSIONS = Route("POST", "/v1/sessions", {"title": "t"})
PATCH_SESSION = Route("PATCH", "/v1/sessions/{session_id}", {"title": "t"})
PUT_TRAITS = Route("PUT", "/v1/sessions/{session_id}/traits", {"plan": "free"})
MESSAGES = Route("POST", "/v1/sessions/{session_id}/messages", {"role": "user", "content": "hi"})
BATCH = Route("POST", "/v1/sessions/{session_id}/messages/batch", {"messages": [MESSAGES.valid]})
TOOL_CALLS = Route(
    "POST", "/v1/sessions/{session_id}/tool-calls", {"tool_call_id": "c2", "tool_name": "s"}
)
PATCH_TOOL_CALL = Route(
    "PATCH", "/v1/sessions/{session_id}/tool-calls/{tool_call_pk}", {"status": "executing"}
)
PATCH_USER_TRAITS = Route("PATCH", "/v1/users/u-1/traits", {"plan": "pro"})
PUT_USER_TRAITS = Route("PUT", "/v1/users/u-1/traits", {"plan": "free"})
TENANTS = Route("POST", "/v1/admin/tenants", {"name": "initech"}, admin=True)
PATCH_TENANT = Route("PATCH", "/v1/admin/tenants/{tenant_id}", {"name": "acme2"}, admin=True)
WRITE_ROUTES = [
    SESSIONS,
    PATCH_SESSION,
    PUT_TRAITS,
    MESSAGES,
    BATCH,
    TOOL_CALLS,
    PATCH_TOOL_CALL,
    PATCH_USER_TRAITS,
    PUT_USER_TRAITS,
    TENANTS,
    PATCH_TENANT,
]
by_route = pytest.mark.parametrize("route", WRITE_ROUTES, ids=str)


async def send(
    client: httpx.AsyncClient,
    route: Route,
    target: Target,
    body: bytes,
    content_type: str | None = "application/json",
) -> httpx.Response:
    return await client.request(
        route.method, route.url(target), content=body, headers=route.headers(target, content_type)
    )


async def assert_rejected_and_nothing_stored(
    client: httpx.AsyncClient,
    database: Database,
    target: Target,
    cases: list[tuple[Route, bytes]],
    status: int,
    content_type: str | None = "application/json",
) -> None:
    """Send every case; each must be a `status` problem that changed nothing. All cases run,
    and the failure lists every one that did not hold."""
    failures = []
    for route, body in cases:
        before = await stored(database)
        response = await send(client, route, target, body, content_type)
        try:
            assert_problem(response, status)
            assert await stored(database) == before, "the rejected write changed the database"
        except AssertionError as error:
            failures.append(f"{route} {body[:80]!r} -> {response.status_code}: {error}")
    assert not failures, "\n".join(failures)


async def assert_each_problem(
    client: httpx.AsyncClient, requests: list[tuple[str, str, dict[str, str]]], status: int
) -> None:
    """Every (method, url, headers) answers a `status` problem; the failure lists all that
    did not."""
    failures = []
    for method, url, headers in requests:
        response = await client.request(method, url, headers=headers)
        try:
            assert_problem(response, status)
        except AssertionError as error:
            failures.append(f"{method} {url[:100]} -> {response.status_code}: {error}")
    assert not failures, "\n".join(failures)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested_object(levels: int, leaf: str = "1") -> str:
    """`levels` objects, each the only value of the one before: {"a": {"a": ... 1}}."""
    return '{"a":' * levels + leaf + "}" * levels


# --- the control ------------------------------------------------------------------------


@by_route
async def test_every_write_route_accepts_its_valid_body(
    client: httpx.AsyncClient, target: Target, route: Route
) -> None:
    response = await send(client, route, target, encode(route.valid))
    assert response.status_code in (200, 201), response.text


# --- malformed, mistyped, unknown -------------------------------------------------------


MALFORMED = [
    b"{",
    b'{"title": "a"',
    b'{"a": }',
    b"{'a': 1}",
    b'{"a": 1,}',
    b'{"a": 1} trailing',
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b"\xff\xfe{}",
    b'{"a": "\\ud800"}',
]


@by_route
async def test_malformed_json_is_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, target: Target, route: Route
) -> None:
    cases = [(route, body) for body in MALFORMED]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 400)


WRONG_TYPES = [
    (SESSIONS, {"title": 5}),
    (SESSIONS, {"user_id": 42}),
    (SESSIONS, {"traits": "plan=pro"}),
    (SESSIONS, {"traits": ["a", "b"]}),
    (SESSIONS, ["title"]),
    (SESSIONS, "title"),
    (SESSIONS, None),
    (SESSIONS, {"user_id": ""}),
    (PATCH_SESSION, {"title": ["a"]}),
    (PATCH_SESSION, {"traits": [1, 2]}),
    (PATCH_SESSION, {"traits": "x"}),
    (PUT_TRAITS, ["plan", "pro"]),
    (PUT_TRAITS, 7),
    (MESSAGES, {"role": "user", "content": 5}),
    (MESSAGES, {"role": "user"}),
    (MESSAGES, {"role": "user", "content": "x", "token_count": "many"}),
    (MESSAGES, {"role": "user", "content": "x", "token_count": -1}),
    (MESSAGES, {"role": "user", "content": "x", "token_count": "5"}),
    (MESSAGES, {"role": "user", "content": "x", "metadata": [1]}),
    (MESSAGES, {"role": "user", "content": "x", "tool_calls": {"id": "c"}}),
    (MESSAGES, {"role": "tool", "content": "x"}),
    (BATCH, {"messages": {"role": "user", "content": "x"}}),
    (BATCH, {"messages": []}),
    (BATCH, {"messages": [MESSAGES.valid, {"role": "user", "content": 1}]}),
    (TOOL_CALLS, {"tool_call_id": 1, "tool_name": "search"}),
    (TOOL_CALLS, {"tool_name": "search"}),
    (PATCH_TOOL_CALL, {"status": "completed", "duration_ms": "fast"}),
    (PATCH_TOOL_CALL, {}),
    (TENANTS, {"name": 5}),
    (TENANTS, {"name": ""}),
    (TENANTS, {"name": "x", "max_sessions": "ten"}),
    (TENANTS, {"name": "x", "retention_days": 0}),
    (PATCH_TENANT, {"name": None}),
    (PATCH_TENANT, {"retention_days": "30"}),
]


async def test_wrong_types_are_400_and_store_nothing(
    client: httpx.AsyncClient, database: Database, target: Target
) -> None:
    cases = [(route, encode(body)) for route, body in WRONG_TYPES]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 400)


UNKNOWN_ENUMS = [
    (SESSIONS, {"status": "paused"}),
    (PATCH_SESSION, {"status": "ACTIVE"}),
    (MESSAGES, {"role": "bot", "content": "x"}),
    (BATCH, {"messages": [MESSAGES.valid, {"role": "moderator", "content": "x"}]}),
    (PATCH_TOOL_CALL, {"status": "cancelled"}),
]


async def test_unknown_enum_values_are_400_and_store_nothing(
    client: httpx.AsyncClient, database: Database, target: Target
) -> None:
    cases = [(route, encode(body)) for route, body in UNKNOWN_ENUMS]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 400)


async def test_unknown_enum_values_in_queries_are_400(
    client: httpx.AsyncClient, target: Target
) -> None:
    queries = [
        "/v1/sessions?status=paused",
        "/v1/sessions/{session_id}/messages?order=sideways",
        "/v1/sessions/{session_id}/messages?role=bot",
        "/v1/sessions/{session_id}/tool-calls?status=cancelled",
    ]
    requests = [("GET", query.format(**target.ids), target.tenant.headers) for query in queries]
    await assert_each_problem(client, requests, 400)


UNKNOWN_FIELDS = [
    (SESSIONS, {"tenant_id": "someone-else"}),
    (SESSIONS, {"id": "0192f6c5-0000-7000-8000-000000000000"}),
    (SESSIONS, {"version": 9, "title": "t"}),
    (SESSIONS, {"message_count": 100}),
    (PATCH_SESSION, {"version": 9}),
    (PATCH_SESSION, {"title": "t", "tenant_id": "x"}),
    (MESSAGES, {"role": "user", "content": "x", "seq": 1}),
    (MESSAGES, {"role": "user", "content": "x", "session_id": "x"}),
    (BATCH, {"messages": [MESSAGES.valid], "atomic": False}),
    (BATCH, {"messages": [{**MESSAGES.valid, "id": "x"}]}),
    (TOOL_CALLS, {**TOOL_CALLS.valid, "status": "completed"}),
    (PATCH_TOOL_CALL, {"status": "executing", "tool_name": "other"}),
    (TENANTS, {"name": "x", "api_key": "cs_chosen"}),
    (PATCH_TENANT, {"id": "x"}),
]


async def test_unknown_fields_are_400_and_store_nothing(
    client: httpx.AsyncClient, database: Database, target: Target
) -> None:
    cases = [(route, encode(body)) for route, body in UNKNOWN_FIELDS]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 400)


async def test_nul_characters_are_400_on_every_engine(
    client: httpx.AsyncClient, database: Database, target: Target
) -> None:
    cases = [
        (MESSAGES, b'{"role": "user", "content": "a\\u0000b"}'),
        (SESSIONS, b'{"traits": {"k\\u0000": 1}}'),
        (SESSIONS, b'{"traits": {"k": ["\\u0000"]}}'),
        (PUT_TRAITS, b'{"k": "\\u0000"}'),
    ]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 400)


# --- sizes ------------------------------------------------------------------------------


SMALL_BODY = 4096


@by_route
async def test_body_over_max_body_bytes_is_413_and_stores_nothing(
    settings: Settings, database: Database, target: Target, route: Route
) -> None:
    # Whitespace padding keeps the body valid JSON within every other limit: only its size
    # is wrong.
    padding = " " * SMALL_BODY
    oversized = encode(route.valid)[:-1] + padding.encode() + encode(route.valid)[-1:]
    async with app_client(settings, database, max_body_bytes=SMALL_BODY) as client:
        await assert_rejected_and_nothing_stored(
            client, database, target, [(route, oversized)], 413
        )
        # The same body without the padding passes: the limit is the configured one.
        assert (await send(client, route, target, encode(route.valid))).status_code < 300


async def test_chunked_body_over_max_body_bytes_is_413(
    settings: Settings, database: Database, target: Target
) -> None:
    """A body without Content-Length is counted as it arrives."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}'

    async with app_client(settings, database, max_body_bytes=SMALL_BODY) as client:
        before = await stored(database)
        response = await client.post(
            "/v1/sessions",
            content=chunks(),
            headers={**target.tenant.headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 413)
        assert await stored(database) == before


async def test_message_content_over_max_message_bytes_is_413_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, settings: Settings, target: Target
) -> None:
    limit = settings.max_message_bytes
    ascii_over = {"role": "user", "content": "x" * (limit + 1)}
    # Fewer characters than the limit, more bytes: the limit is in bytes of UTF-8.
    multibyte_over = {"role": "user", "content": "é" * (limit // 2 + 1)}
    in_batch = {"messages": [MESSAGES.valid, ascii_over]}
    cases = [(MESSAGES, ascii_over), (MESSAGES, multibyte_over), (BATCH, in_batch)]
    encoded = [(route, encode(body)) for route, body in cases]
    await assert_rejected_and_nothing_stored(client, database, target, encoded, 413)


async def test_message_content_of_exactly_max_message_bytes_is_stored(
    client: httpx.AsyncClient, database: Database, settings: Settings, target: Target
) -> None:
    body = {"role": "user", "content": "x" * settings.max_message_bytes}
    response = await send(client, MESSAGES, target, encode(body))
    assert response.status_code == 201, response.text
    assert await count_rows(database, "messages") == 2


async def test_traits_and_metadata_over_max_json_bytes_are_413_and_store_nothing(
    client: httpx.AsyncClient, database: Database, settings: Settings, target: Target
) -> None:
    big = {"blob": "x" * settings.max_json_bytes}
    cases = [
        (SESSIONS, {"traits": big}),
        (PATCH_SESSION, {"traits": big}),
        (PUT_TRAITS, big),
        (MESSAGES, {"role": "user", "content": "x", "metadata": big}),
        (TOOL_CALLS, {**TOOL_CALLS.valid, "arguments": big}),
        (PATCH_TOOL_CALL, {"status": "completed", "result": big}),
    ]
    encoded = [(route, encode(body)) for route, body in cases]
    await assert_rejected_and_nothing_stored(client, database, target, encoded, 413)


async def test_a_merge_patch_that_grows_traits_over_max_json_bytes_is_413(
    client: httpx.AsyncClient, database: Database, settings: Settings, target: Target
) -> None:
    """Each half fits; the merged traits would not."""
    half = "x" * (settings.max_json_bytes // 2 + 16)
    first = await send(client, PATCH_SESSION, target, encode({"traits": {"a": half}}))
    assert first.status_code == 200, first.text
    cases = [(PATCH_SESSION, encode({"traits": {"b": half}}))]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 413)


# --- depth ------------------------------------------------------------------------------


async def test_a_body_nested_5000_deep_is_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, target: Target
) -> None:
    bodies = ["[" * 5000 + "]" * 5000, nested_object(5000)]
    cases = [(route, body.encode()) for route in WRITE_ROUTES for body in bodies]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 400)


def deep_bodies(levels: int) -> list[tuple[Route, str]]:
    deep = nested_object(levels)
    return [
        (SESSIONS, f'{{"traits": {deep}}}'),
        (PATCH_SESSION, f'{{"traits": {deep}}}'),
        (PUT_TRAITS, deep),
        (MESSAGES, f'{{"role": "user", "content": "x", "metadata": {deep}}}'),
        (TOOL_CALLS, f'{{"tool_call_id": "c", "tool_name": "t", "arguments": {deep}}}'),
        (PATCH_TOOL_CALL, f'{{"status": "completed", "result": {deep}}}'),
    ]


async def test_traits_and_other_json_nested_past_64_levels_are_400_and_store_nothing(
    client: httpx.AsyncClient, database: Database, target: Target
) -> None:
    cases = [
        (route, body.encode()) for levels in (5000, 100, 65) for route, body in deep_bodies(levels)
    ]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 400)


async def test_traits_nested_64_levels_are_stored(
    client: httpx.AsyncClient, database: Database, target: Target
) -> None:
    for route, body in deep_bodies(64):
        response = await send(client, route, target, body.encode())
        assert response.status_code in (200, 201), f"{route}: {response.text}"
    created = await send(client, SESSIONS, target, f'{{"traits": {nested_object(64)}}}'.encode())
    assert created.json()["traits"] == json.loads(nested_object(64))


# --- media types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data",
        None,
    ],
)
async def test_a_body_that_is_not_declared_json_is_415_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, target: Target, content_type: str | None
) -> None:
    # Valid JSON bodies: only the declared type is wrong.
    cases = [(route, encode(route.valid)) for route in WRITE_ROUTES]
    await assert_rejected_and_nothing_stored(client, database, target, cases, 415, content_type)


@pytest.mark.parametrize(
    "content_type", ["application/merge-patch+json", "application/json; charset=utf-8"]
)
async def test_patch_accepts_merge_patch_json(
    client: httpx.AsyncClient, target: Target, content_type: str
) -> None:
    body = encode({"traits": {"plan": None, "locale": "pt-PT"}})
    response = await send(client, PATCH_SESSION, target, body, content_type)
    assert response.status_code == 200, response.text
    assert response.json()["traits"] == {"locale": "pt-PT"}


# --- query parameters -------------------------------------------------------------------

LIST_ROUTES = [
    ("/v1/sessions", 100, False),
    ("/v1/sessions/{session_id}/messages", 1000, False),
    ("/v1/sessions/{session_id}/tool-calls", 100, False),
    ("/v1/admin/tenants", 100, True),
]
by_list_route = pytest.mark.parametrize(
    ("path", "largest", "admin"), LIST_ROUTES, ids=[path for path, _, _ in LIST_ROUTES]
)


def list_headers(target: Target, admin: bool) -> dict[str, str]:
    return ADMIN if admin else target.tenant.headers


@by_list_route
async def test_limits_out_of_range_or_not_integers_are_400(
    client: httpx.AsyncClient, target: Target, path: str, largest: int, admin: bool
) -> None:
    for limit in ["0", str(largest + 1), "-1", "x", "1.5", "99999999999999999999999"]:
        response = await client.get(
            path.format(**target.ids),
            params={"limit": limit},
            headers=list_headers(target, admin),
        )
        assert_problem(response, 400)


@by_list_route
async def test_limits_at_both_ends_of_the_range_are_accepted(
    client: httpx.AsyncClient, target: Target, path: str, largest: int, admin: bool
) -> None:
    for limit in (1, largest):
        response = await client.get(
            path.format(**target.ids),
            params={"limit": limit},
            headers=list_headers(target, admin),
        )
        assert response.status_code == 200, response.text


async def test_other_query_parameters_out_of_range_are_400(
    client: httpx.AsyncClient, target: Target
) -> None:
    queries = [
        "/v1/sessions/{session_id}/messages?after_seq=-1",
        "/v1/sessions/{session_id}/messages?before_seq=x",
        "/v1/sessions/{session_id}/context?max_messages=0",
        "/v1/sessions/{session_id}/context?max_tokens=-5",
        "/v1/sessions?user_id=" + "u" * 257,
    ]
    requests = [("GET", query.format(**target.ids), target.tenant.headers) for query in queries]
    await assert_each_problem(client, requests, 400)


@pytest.mark.parametrize(
    "query",
    [
        "/v1/sessions/{session_id}/messages?after_seq=-1",
        "/v1/sessions/{session_id}/messages?after_seq=many",
        "/v1/sessions/{session_id}/messages",  # after_seq is required: no accidental wipe
    ],
)
async def test_a_truncation_with_a_bad_after_seq_is_400_and_deletes_nothing(
    client: httpx.AsyncClient, database: Database, target: Target, query: str
) -> None:
    before = await stored(database)
    response = await client.delete(query.format(**target.ids), headers=target.tenant.headers)
    assert_problem(response, 400)
    assert await stored(database) == before


@pytest.mark.parametrize("expected", ["-1", "x"])
async def test_a_bad_expected_last_seq_is_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, target: Target, expected: str
) -> None:
    before = await stored(database)
    response = await client.post(
        MESSAGES.url(target),
        params={"expected_last_seq": expected},
        json=MESSAGES.valid,
        headers=target.tenant.headers,
    )
    assert_problem(response, 400)
    assert await stored(database) == before


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


GARBAGE_CURSORS = [
    "garbage",
    "!!!!",
    "=",
    "💥",
    "A" * 600,
    b64(b"not json"),
    b64(b'{"a": 1}'),
    b64(b"[]"),
    b64(b'["0000000000000000", "2026-01-01T00:00:00Z", "x"]'),
    b64(b'["0000000000000000", 1, 2]'),
    b64(b"[null, null, null]"),
]


@by_list_route
async def test_garbage_cursors_are_400(
    client: httpx.AsyncClient, target: Target, path: str, largest: int, admin: bool
) -> None:
    for cursor in GARBAGE_CURSORS:
        response = await client.get(
            path.format(**target.ids),
            params={"cursor": cursor},
            headers=list_headers(target, admin),
        )
        assert_problem(response, 400)


async def next_cursor(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str:
    response = await client.get(url, params={"limit": 1}, headers=headers)
    assert response.status_code == 200, response.text
    cursor = response.json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


async def fill(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """A session with two messages and two tool calls, so every listing has a second page.
    Returns its id; the tenant then has two sessions or more."""
    headers = tenant.headers
    for _ in range(2):
        response = await client.post("/v1/sessions", json={}, headers=headers)
        assert response.status_code == 201
    session_id = response.json()["id"]
    for number in range(2):
        await client.post(
            f"/v1/sessions/{session_id}/messages", json=MESSAGES.valid, headers=headers
        )
        await client.post(
            f"/v1/sessions/{session_id}/tool-calls",
            json={"tool_call_id": f"c{number}", "tool_name": "t"},
            headers=headers,
        )
    return session_id


@pytest.mark.parametrize("cut", ["last two characters", "half"])
async def test_truncated_cursors_are_400(
    client: httpx.AsyncClient, tenant: Tenant, cut: str
) -> None:
    session_id = await fill(client, tenant)
    for url, headers in [
        ("/v1/sessions", tenant.headers),
        (f"/v1/sessions/{session_id}/messages", tenant.headers),
        (f"/v1/sessions/{session_id}/tool-calls", tenant.headers),
        ("/v1/admin/tenants", ADMIN),
    ]:
        if url == "/v1/admin/tenants":
            await client.post(url, json={"name": "second"}, headers=ADMIN)
        cursor = await next_cursor(client, url, headers)
        truncated = cursor[:-2] if cut == "last two characters" else cursor[: len(cursor) // 2]
        response = await client.get(url, params={"cursor": truncated}, headers=headers)
        assert_problem(response, 400)


async def test_another_tenants_cursor_is_400(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await fill(client, other_tenant)
    await fill(client, tenant)
    cursor = await next_cursor(client, "/v1/sessions", other_tenant.headers)
    # The same cursor is good for its own tenant ...
    own = await client.get("/v1/sessions", params={"cursor": cursor}, headers=other_tenant.headers)
    assert own.status_code == 200
    # ... and refused for another one, instead of paging through something else.
    response = await client.get("/v1/sessions", params={"cursor": cursor}, headers=tenant.headers)
    assert_problem(response, 400)


async def test_another_sessions_cursor_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    first = await fill(client, tenant)
    second = await fill(client, tenant)
    for listing in ("messages", "tool-calls"):
        cursor = await next_cursor(client, f"/v1/sessions/{first}/{listing}", tenant.headers)
        response = await client.get(
            f"/v1/sessions/{second}/{listing}", params={"cursor": cursor}, headers=tenant.headers
        )
        assert_problem(response, 400)


# --- routes and methods -----------------------------------------------------------------


def requests_for(target: Target, routes: list[tuple[str, str]]) -> list[tuple[str, str, dict]]:
    return [
        (method, path.format(**target.ids), ADMIN if "/admin/" in path else target.tenant.headers)
        for method, path in routes
    ]


async def test_unknown_routes_are_404_json(client: httpx.AsyncClient, target: Target) -> None:
    routes = [
        ("GET", "/nope"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/v1/sessions/{session_id}/nope"),
        ("GET", "/v1/admin/nope"),
        ("GET", "/index.html"),
    ]
    await assert_each_problem(client, requests_for(target, routes), 404)


async def test_wrong_methods_are_405_json(client: httpx.AsyncClient, target: Target) -> None:
    routes = [
        ("PUT", "/v1/sessions"),
        ("DELETE", "/v1/sessions"),
        ("POST", "/v1/sessions/{session_id}"),
        ("PATCH", "/v1/sessions/{session_id}/messages"),
        ("GET", "/v1/sessions/{session_id}/messages/batch"),
        ("PUT", "/v1/admin/tenants"),
        ("DELETE", "/health"),
        ("POST", "/ready"),
    ]
    await assert_each_problem(client, requests_for(target, routes), 405)


# --- anything at all --------------------------------------------------------------------

surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)
any_text = st.text(max_size=40) | surrogates
extreme_numbers = st.sampled_from([10**400, -(10**400), 2**63, -(2**64), 1e308, 5e-324, -0.0])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | extreme_numbers | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


def fields(**likely: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects using the route's own field names, each with a plausible or an arbitrary
    value, so that examples get past the first check and reach the deeper ones."""
    return st.fixed_dictionaries(
        {}, optional={name: strategy | json_values for name, strategy in likely.items()}
    ) | st.dictionaries(any_text, json_values, max_size=4)


session_bodies = fields(
    user_id=any_text,
    external_id=any_text,
    title=any_text,
    traits=st.dictionaries(any_text, json_values, max_size=4),
    status=st.sampled_from(["active", "running", "completed", "failed", "?"]),
    result=any_text,
    error=any_text,
)
message_bodies = fields(
    role=st.sampled_from(["system", "user", "assistant", "tool", "?"]),
    content=any_text,
    name=any_text,
    tool_calls=st.lists(st.dictionaries(any_text, json_values, max_size=3), max_size=2),
    tool_call_id=any_text,
    metadata=st.dictionaries(any_text, json_values, max_size=4),
    token_count=st.integers(),
)


def as_body(value: Any) -> bytes:
    # Not httpx's json=, which refuses NaN and lone surrogates before they reach the server.
    return json.dumps(value).encode()


bodies = (
    (json_values | session_bodies | message_bodies).map(as_body)
    | st.text().map(lambda s: s.encode("utf-8", "surrogatepass"))
    | st.binary(max_size=64)
)


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies)
async def test_no_body_ever_gets_a_5xx_or_a_non_json_answer(
    client: httpx.AsyncClient, target: Target, body: bytes
) -> None:
    headers = {**target.tenant.headers, "Content-Type": "application/json"}
    for url in ("/v1/sessions", f"/v1/sessions/{target.ids['session_id']}/messages"):
        response = await client.post(url, content=body, headers=headers)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_problem(response, response.status_code)
        else:
            assert response.status_code in (200, 201)  # 200: an external_id met again
            response.json()
