"""Strict, unambiguous input, answered alike by both engines (issue 10, items 1, 2, 12, 13).

Every integer the API reads has a documented range both engines store; an integer must be
written as one; a body or header that could be read two ways is refused; a NUL in a path or
query, and odd JSON numbers, get the same answer from SQLite and PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.bounds import MAX_DURATION_MS, MAX_SEQ
from chat_sessions.db import Database
from chat_sessions.pagination import encode_cursor
from support import ADMIN, Tenant, append, assert_problem, count_rows, new_session, stored

BEYOND_INT64 = 2**63
BEYOND_INT32 = 2**31
NOW = "2026-11-22T10:00:00Z"


def export_document(**message: Any) -> dict[str, Any]:
    """A one-message, one-tool-call export document; `message` overrides the message."""
    return {
        "format": "chat-sessions.v1",
        "session": {"title": "imported"},
        "messages": [{"seq": 1, "role": "user", "content": "hi", "created_at": NOW, **message}],
        "tool_calls": [],
    }


def query_routes(session_id: str) -> list[tuple[str, str, str]]:
    """(method, path, integer query parameter) for every integer the query string carries."""
    messages = f"/v1/sessions/{session_id}/messages"
    return [
        ("GET", messages, "after_seq"),
        ("GET", messages, "before_seq"),
        ("GET", messages, "limit"),
        ("POST", messages, "expected_last_seq"),
        ("POST", f"{messages}/batch", "expected_last_seq"),
        ("DELETE", messages, "after_seq"),
        ("GET", f"/v1/sessions/{session_id}/context", "max_messages"),
        ("GET", f"/v1/sessions/{session_id}/context", "max_tokens"),
        ("GET", "/v1/sessions", "limit"),
        ("GET", f"/v1/sessions/{session_id}/tool-calls", "limit"),
        ("GET", "/v1/search?q=hello", "limit"),
        ("GET", "/v1/admin/tenants", "limit"),
    ]


async def send_query(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, name: str, value: str
) -> httpx.Response:
    headers = ADMIN if "/admin/" in path else tenant.headers
    body: Any = None
    if method == "POST":
        message = {"role": "user", "content": "hi"}
        body = {"messages": [message]} if path.endswith("/batch") else message
    separator = "&" if "?" in path else "?"
    return await client.request(
        method, f"{path}{separator}{name}={value}", json=body, headers=headers
    )


async def assert_every_query_integer_refuses(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, value: str
) -> None:
    """`value` in every integer query parameter: a 400 problem each time, nothing changed."""
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id)
    before = await stored(database)
    for method, path, name in query_routes(session_id):
        response = await send_query(client, tenant, method, path, name, value)
        assert_problem(response, 400)
    assert await stored(database) == before


# --- 1. integers beyond what both engines store ------------------------------------------


@pytest.mark.parametrize("value", [BEYOND_INT64, BEYOND_INT32, -1, -BEYOND_INT64])
async def test_a_query_integer_out_of_its_range_is_400_and_changes_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, value: int
) -> None:
    await assert_every_query_integer_refuses(client, database, tenant, str(value))


async def test_the_largest_documented_seq_is_accepted_in_every_query(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    messages = f"/v1/sessions/{session_id}/messages"
    for name in ("after_seq", "before_seq"):
        response = await client.get(f"{messages}?{name}={MAX_SEQ}", headers=tenant.headers)
        assert response.status_code == 200, response.text
    response = await client.delete(f"{messages}?after_seq={MAX_SEQ}", headers=tenant.headers)
    assert response.json() == {"deleted": 0}
    response = await client.post(
        f"{messages}?expected_last_seq={MAX_SEQ}",
        json={"role": "user", "content": "hi"},
        headers=tenant.headers,
    )
    assert_problem(response, 412)


@pytest.mark.parametrize("seq", [BEYOND_INT64, MAX_SEQ + 1, -1])
async def test_a_cursor_holding_a_seq_out_of_range_is_400(
    client: httpx.AsyncClient, tenant: Tenant, seq: int
) -> None:
    session_id = await new_session(client, tenant)
    scope = ("messages", tenant.id, session_id, "asc", None, None, None)
    cursor = encode_cursor(scope, [seq])
    response = await client.get(
        f"/v1/sessions/{session_id}/messages?cursor={cursor}", headers=tenant.headers
    )
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "document",
    [
        export_document(seq=BEYOND_INT64),
        export_document(seq=MAX_SEQ + 1),
        export_document(token_count=BEYOND_INT64),
        {
            **export_document(),
            "tool_calls": [
                {"tool_call_id": "c", "tool_name": "t", "created_at": NOW, "duration_ms": ms}
                for ms in (BEYOND_INT64,)
            ],
        },
        {
            **export_document(),
            "tool_calls": [
                {
                    "tool_call_id": "c",
                    "tool_name": "t",
                    "created_at": NOW,
                    "duration_ms": MAX_DURATION_MS + 1,
                }
            ],
        },
    ],
    ids=["seq 2^63", "seq max+1", "token_count 2^63", "duration 2^63", "duration max+1"],
)
async def test_an_import_with_an_integer_out_of_range_is_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, document: dict[str, Any]
) -> None:
    before = await stored(database)
    response = await client.post("/v1/sessions/import", json=document, headers=tenant.headers)
    assert_problem(response, 400)
    assert await stored(database) == before


async def test_an_import_at_the_largest_seq_and_duration_is_stored_and_appends_past_it_are_400(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    document = export_document(seq=MAX_SEQ)
    document["tool_calls"] = [
        {"tool_call_id": "c", "tool_name": "t", "created_at": NOW, "duration_ms": MAX_DURATION_MS}
    ]
    response = await client.post("/v1/sessions/import", json=document, headers=tenant.headers)
    assert response.status_code == 201, response.text
    session_id = response.json()["id"]
    exported = (
        await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    ).json()
    assert exported["messages"][0]["seq"] == MAX_SEQ
    assert exported["tool_calls"][0]["duration_ms"] == MAX_DURATION_MS

    before = await stored(database)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "one too many"},
        headers=tenant.headers,
    )
    assert_problem(response, 400)
    assert await stored(database) == before


@pytest.mark.parametrize("duration_ms", [BEYOND_INT64, MAX_DURATION_MS + 1, -1])
async def test_a_tool_call_patch_with_a_duration_out_of_range_is_400_and_changes_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, duration_ms: int
) -> None:
    session_id = await new_session(client, tenant)
    url = f"/v1/sessions/{session_id}/tool-calls"
    call = await client.post(
        url, json={"tool_call_id": "c", "tool_name": "t"}, headers=tenant.headers
    )
    before = await stored(database)
    response = await client.patch(
        f"{url}/{call.json()['id']}",
        json={"status": "completed", "duration_ms": duration_ms},
        headers=tenant.headers,
    )
    assert_problem(response, 400)
    assert await stored(database) == before


@pytest.mark.parametrize("field", ["max_sessions", "retention_days", "rate_limit_per_minute"])
async def test_tenant_limits_out_of_range_are_400(client: httpx.AsyncClient, field: str) -> None:
    response = await client.post(
        "/v1/admin/tenants", json={"name": "big", field: BEYOND_INT64}, headers=ADMIN
    )
    assert_problem(response, 400)


async def test_the_openapi_document_shows_the_integer_bounds(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    history = document["paths"]["/v1/sessions/{session_id}/messages"]["get"]["parameters"]
    after_seq = next(p for p in history if p["name"] == "after_seq")
    assert after_seq["schema"]["maximum"] == MAX_SEQ
    schemas = document["components"]["schemas"]
    assert schemas["ImportedMessage"]["properties"]["seq"]["maximum"] == MAX_SEQ
    duration = schemas["ToolCallUpdate"]["properties"]["duration_ms"]
    maxima = [duration.get("maximum"), *[one.get("maximum") for one in duration.get("oneOf", [])]]
    assert MAX_DURATION_MS in maxima


# --- 2. integers written as something else ------------------------------------------------


@pytest.mark.parametrize("value", ["1e3", "1.0", "0.0", "1.5", " 1", "1 ", "+1", "0x10", "1_0", ""])
async def test_a_query_integer_not_written_as_an_integer_is_400_and_changes_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, value: str
) -> None:
    await assert_every_query_integer_refuses(client, database, tenant, value)


async def test_a_repeated_query_integer_is_checked_in_every_occurrence(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.get(
        f"/v1/sessions/{session_id}/messages?limit=5&limit=1e3", headers=tenant.headers
    )
    assert_problem(response, 400)


# --- 12. strict, unambiguous parsing -------------------------------------------------------


def raw_post(client: httpx.AsyncClient, url: str, body: bytes, headers: Any, **extra: str) -> Any:
    return client.post(
        url, content=body, headers={**headers, "Content-Type": "application/json", **extra}
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/messages", b'{"role":"user","role":"system","content":"hi"}'),
        ("/messages", b'{"role":"user","content":"hi","metadata":{"a":1,"b":{"c":1,"c":2}}}'),
        ("/messages/batch", b'{"messages":[{"role":"user","content":"a","content":"b"}]}'),
        ("", b'{"traits":{"plan":"pro","plan":"free"}}'),
        ("/traits", b'{"plan":"pro", "plan" : "free"}'),
        ("/tool-calls", b'{"tool_call_id":"c","tool_name":"t","tool_name":"u"}'),
    ],
)
async def test_a_body_with_a_duplicate_key_is_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, path: str, body: bytes
) -> None:
    session_id = await new_session(client, tenant)
    before = await stored(database)
    url = f"/v1/sessions/{session_id}{path}"
    method = {"": "PATCH", "/traits": "PUT"}.get(path, "POST")
    response = await client.request(
        method, url, content=body, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    problem = assert_problem(response, 400)
    assert "duplicate" in problem["detail"]
    assert await stored(database) == before


async def test_an_admin_body_with_a_duplicate_key_is_400(client: httpx.AsyncClient) -> None:
    response = await raw_post(client, "/v1/admin/tenants", b'{"name":"a","name":"b"}', ADMIN)
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        # Colons and key-like text inside strings, the same key in different objects.
        b'{"role":"user","content":"\\"role\\": \\"system\\", time 10:00:00 a:b"}',
        b'{"role":"assistant","content":"","tool_calls":[{"id":"a","type":"f"},{"id":"b"}]}',
        b'{"role":"user","content":"x","metadata":{"a":{"k":1},"b":{"k":2},"k":3}}',
        b'{ "role" : "user" , "content" : "spaced:\\u003a" }',
    ],
)
async def test_a_body_without_duplicate_keys_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant, body: bytes
) -> None:
    session_id = await new_session(client, tenant)
    response = await raw_post(client, f"/v1/sessions/{session_id}/messages", body, tenant.headers)
    assert response.status_code == 201, response.text
    assert response.json()["content"] == json.loads(body)["content"]


@pytest.mark.parametrize(
    "keys",
    [["a", "b"], ["a", "a"], [b"key-\xff\xfe"]],
    ids=["two keys", "the same key twice", "not UTF-8"],
)
async def test_an_ambiguous_idempotency_key_is_400_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, keys: list[Any]
) -> None:
    session_id = await new_session(client, tenant)
    before = await stored(database)
    headers = [*tenant.headers.items(), *[("Idempotency-Key", key) for key in keys]]
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "hi"},
        headers=headers,
    )
    assert_problem(response, 400)
    assert await stored(database) == before


async def test_a_utf8_idempotency_key_is_read_as_its_text_and_replays(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    key = "clé-ключ-鍵"
    headers = {**tenant.headers, "Idempotency-Key": key.encode()}
    url = f"/v1/sessions/{session_id}/messages"
    first = await client.post(url, json={"role": "user", "content": "hi"}, headers=headers)
    again = await client.post(url, json={"role": "user", "content": "hi"}, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    async with database.transaction() as tx:
        keys = (await tx.execute(text("SELECT idempotency_key FROM messages"))).scalars().all()
    assert keys == [key]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "gzip, identity", "x-unknown"])
async def test_a_content_encoding_the_service_does_not_decode_is_415_and_stores_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, encoding: str
) -> None:
    session_id = await new_session(client, tenant)
    before = await stored(database)
    body = gzip.compress(b'{"role":"user","content":"hi"}')
    response = await raw_post(
        client,
        f"/v1/sessions/{session_id}/messages",
        body,
        tenant.headers,
        **{"Content-Encoding": encoding},
    )
    assert_problem(response, 415)
    assert await stored(database) == before


async def test_an_identity_content_encoding_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    response = await raw_post(
        client,
        f"/v1/sessions/{session_id}/messages",
        b'{"role":"user","content":"hi"}',
        tenant.headers,
        **{"Content-Encoding": "Identity"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "if_match",
    [['"7", "1"'], ['"1","7"'], ['"7"', '"1"'], ["*"], ['"7", *']],
    ids=["list", "list without spaces", "two header lines", "star", "star in a list"],
)
async def test_if_match_with_a_list_matches_when_any_entity_tag_matches(
    client: httpx.AsyncClient, tenant: Tenant, if_match: list[str]
) -> None:
    session_id = await new_session(client, tenant, title="old")
    headers = [*tenant.headers.items(), *[("If-Match", tag) for tag in if_match]]
    response = await client.patch(
        f"/v1/sessions/{session_id}", json={"title": "new"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2


@pytest.mark.parametrize("if_match", [['"7", "8"'], ['"7"', '"8"'], ['W/"1"'], ['"1']], ids=str)
async def test_if_match_naming_no_current_entity_tag_is_412(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, if_match: list[str]
) -> None:
    session_id = await new_session(client, tenant, title="old")
    before = await stored(database)
    headers = [*tenant.headers.items(), *[("If-Match", tag) for tag in if_match]]
    for method, url, body in [
        ("PATCH", f"/v1/sessions/{session_id}", {"title": "new"}),
        ("PUT", f"/v1/sessions/{session_id}/traits", {"a": 1}),
        ("DELETE", f"/v1/sessions/{session_id}", None),
    ]:
        response = await client.request(method, url, json=body, headers=headers)
        assert_problem(response, 412)
    assert await stored(database) == before


async def test_delete_with_a_stale_if_match_is_412_and_deletes_nothing(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id)  # version 2 now
    url = f"/v1/sessions/{session_id}"
    response = await client.delete(url, headers={**tenant.headers, "If-Match": '"1"'})
    assert_problem(response, 412)
    assert await count_rows(database, "sessions") == 1
    assert await count_rows(database, "messages") == 1

    response = await client.delete(url, headers={**tenant.headers, "If-Match": '"2"'})
    assert response.status_code == 204
    assert await count_rows(database, "sessions") == 0
    assert await count_rows(database, "messages") == 0


async def test_delete_with_if_match_star_on_a_missing_session_is_404(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.delete(
        "/v1/sessions/0192f6c5-0000-7000-8000-000000000000",
        headers={**tenant.headers, "If-Match": "*"},
    )
    assert_problem(response, 404)


@pytest.mark.parametrize(
    "change",
    [
        {"title": "t"},
        {"title": "t", "user_id": "u", "status": "active", "result": None, "error": None},
        {"traits": {}},
        {"traits": {"plan": "pro"}},
        {"traits": {"absent": None}},
        {"traits": {"nested": {"a": [1, 2.5]}}},
    ],
)
async def test_a_patch_that_changes_nothing_keeps_version_and_updated_at(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, change: dict[str, Any]
) -> None:
    traits = {"plan": "pro", "nested": {"a": [1, 2.5]}}
    session_id = await new_session(client, tenant, title="t", user_id="u", traits=traits)
    before = await stored(database)
    url = f"/v1/sessions/{session_id}"
    original = (await client.get(url, headers=tenant.headers)).json()
    response = await client.patch(url, json=change, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == original
    assert response.headers["etag"] == '"1"'
    assert await stored(database) == before


async def test_putting_the_same_traits_keeps_version_and_updated_at(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant, traits={"plan": "pro", "n": 1e16})
    url = f"/v1/sessions/{session_id}"
    original = (await client.get(url, headers=tenant.headers)).json()
    # 1e16 is stored as 10000000000000000: sending either again is the same traits.
    for traits in ({"n": 1e16, "plan": "pro"}, {"plan": "pro", "n": 10**16}):
        response = await client.put(f"{url}/traits", json=traits, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json() == original
        assert response.json()["version"] == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [({"a": 1}, {"a": True}), ({"a": 1}, {"a": 1.5}), ({"a": 0}, {"a": False})],
)
async def test_a_patch_that_changes_a_value_to_an_equal_comparing_one_of_another_type_is_a_change(
    client: httpx.AsyncClient, tenant: Tenant, old: dict[str, Any], new: dict[str, Any]
) -> None:
    session_id = await new_session(client, tenant, traits=old)
    response = await client.patch(
        f"/v1/sessions/{session_id}", json={"traits": new}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["traits"] == new
    assert response.json()["version"] == 2


# --- 13. both engines answer alike ---------------------------------------------------------


async def test_a_nul_in_a_path_id_is_404_on_every_route(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    before = await stored(database)
    for method, path in [
        ("GET", "/v1/sessions/a%00b"),
        ("PATCH", "/v1/sessions/%00"),
        ("DELETE", "/v1/sessions/%00"),
        ("GET", "/v1/sessions/%00/messages"),
        ("GET", f"/v1/sessions/{session_id}/messages/%00"),
        ("PATCH", f"/v1/sessions/{session_id}/tool-calls/%00"),
        ("GET", "/v1/sessions/%00/export"),
        ("DELETE", "/v1/users/%00"),
    ]:
        body = {"status": "completed"} if "tool-calls" in path else {"title": "x"}
        response = await client.request(
            method, path, json=body if method == "PATCH" else None, headers=tenant.headers
        )
        assert_problem(response, 404)
    response = await client.delete("/v1/admin/tenants/%00", headers=ADMIN)
    assert_problem(response, 404)
    assert await stored(database) == before


async def test_a_nul_in_a_query_value_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    for path in [
        "/v1/sessions?user_id=%00",
        "/v1/sessions?cursor=a%00",
        f"/v1/search?q=a&session_id={session_id}%00",
        f"/v1/sessions/{session_id}/messages?cursor=%00",
    ]:
        response = await client.get(path, headers=tenant.headers)
        assert_problem(response, 400)
    # The search text is plain user text: a NUL counts as a space there (tests/search/).
    response = await client.get("/v1/search?q=a%00b", headers=tenant.headers)
    assert response.status_code == 200, response.text


# Each value and what both engines answer for it: numbers are stored by value, as PostgreSQL's
# jsonb keeps them (-0.0 is 0.0; a float written with an exponent that is a whole number is
# that integer).
NUMBERS = {
    "max": (1.7976931348623157e308, int("17976931348623157" + "0" * 292)),
    "big": (1e308, 10**308),
    "e16": (1e16, 10**16),
    "below_e16": (1e15, 1e15),
    "neg_zero": (-0.0, 0.0),
    "zero": (0.0, 0.0),
    "tiny": (1.5e-300, 1.5e-300),
    "denormal": (5e-324, 5e-324),
    "fraction": (0.1, 0.1),
    "negative": (-2.5e20, -250000000000000000000),
    "huge_int": (2**70, 2**70),
    "neg_huge_int": (-(2**70), -(2**70)),
    "int": (-7, -7),
}


def typed(value: Any) -> str:
    """A JSON value with its number types visible (-0.0 and 0.0, 1.0 and 1 compare equal)."""
    return json.dumps(value, sort_keys=True)


async def test_numbers_in_json_values_come_back_alike_from_both_engines(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    sent = {name: value for name, (value, _) in NUMBERS.items()}
    expected = typed({name: answer for name, (_, answer) in NUMBERS.items()})
    created = await client.post(
        "/v1/sessions",
        content=json.dumps({"traits": sent}),
        headers=tenant.headers | {"Content-Type": "application/json"},
    )
    assert created.status_code == 201, created.text
    assert typed(created.json()["traits"]) == expected
    session_id = created.json()["id"]
    url = f"/v1/sessions/{session_id}"
    assert typed((await client.get(url, headers=tenant.headers)).json()["traits"]) == expected

    body = json.dumps({"role": "user", "content": "n", "metadata": sent})
    await raw_post(client, f"{url}/messages", body.encode(), tenant.headers)
    history = (await client.get(f"{url}/messages", headers=tenant.headers)).json()
    assert typed(history["data"][0]["metadata"]) == expected

    patched = await client.patch(
        url,
        content=json.dumps({"traits": {"more": sent}}),
        headers=tenant.headers | {"Content-Type": "application/json"},
    )
    assert typed(patched.json()["traits"]["more"]) == expected
