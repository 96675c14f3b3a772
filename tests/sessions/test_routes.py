"""Sessions over HTTP: create, list, get, patch, put traits, delete."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import Tenant, app_client, append, count_rows, create_tenant

MAX_PAGES = 50

# --- helpers ------------------------------------------------------------------------------


async def create(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/sessions", json=fields, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def fetch(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def page(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/sessions", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def walk(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[str]:
    """Every session id of a listing, page by page (a cursor that never ends fails, rather
    than loops)."""
    ids: list[str] = []
    body = await page(client, tenant, **params)
    ids += [item["id"] for item in body["data"]]
    for _ in range(MAX_PAGES):
        if body["next_cursor"] is None:
            return ids
        body = await page(client, tenant, cursor=body["next_cursor"], **params)
        ids += [item["id"] for item in body["data"]]
    raise AssertionError(f"still a next_cursor after {MAX_PAGES} pages: {ids}")


def activity_key(session: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(session["updated_at"]), session["id"]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An error answer: the status, and a JSON body with that status and a detail."""
    assert response.status_code == status, response.text
    assert "json" in response.headers["content-type"]
    body = dict(response.json())
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def stored_sessions(database: Database, tenant: Tenant) -> int:
    return await count_rows(database, "sessions", "tenant_id = :t", t=tenant.id)


# --- POST /v1/sessions ---------------------------------------------------------------------


async def test_create_session_returns_it_with_location_and_etag(client, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/sessions",
        json={"user_id": "u-42", "title": "Trip", "traits": {"plan": "pro"}},
        headers=tenant.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["user_id"] == "u-42"
    assert body["traits"] == {"plan": "pro"}
    assert body["status"] == "active"
    assert body["message_count"] == 0
    assert body["version"] == 1
    assert response.headers["location"] == f"/v1/sessions/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["created_at"].endswith(("Z", "+00:00"))


async def test_create_session_location_serves_the_same_session(client, tenant: Tenant) -> None:
    response = await client.post("/v1/sessions", json={"title": "x"}, headers=tenant.headers)
    assert response.status_code == 201
    again = await client.get(response.headers["location"], headers=tenant.headers)
    assert again.status_code == 200
    assert again.json() == response.json()


async def test_create_session_with_empty_body_uses_the_defaults(client, tenant: Tenant) -> None:
    body = await create(client, tenant)
    assert uuid.UUID(body["id"]).version == 7
    assert body["user_id"] is None
    assert body["external_id"] is None
    assert body["title"] is None
    assert body["traits"] == {}
    assert body["status"] == "active"
    assert body["result"] is None
    assert body["error"] is None
    assert body["message_count"] == 0
    assert body["last_message_at"] is None
    assert body["version"] == 1
    assert body["updated_at"] == body["created_at"]
    assert body["updated_at"].endswith(("Z", "+00:00"))


async def test_create_session_never_exposes_tenant_or_internal_counters(
    client, tenant: Tenant
) -> None:
    body = await create(client, tenant)
    assert set(body) == {
        "id",
        "user_id",
        "external_id",
        "title",
        "traits",
        "status",
        "result",
        "error",
        "message_count",
        "last_message_at",
        "created_at",
        "updated_at",
        "version",
        "head_seq",
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"user_id": "u-1"},
        {"user_id": "u" * 256},
        {"external_id": "app/u-1/s-1"},
        {"external_id": "x" * 256},
        {"title": "Trip to Lisbon"},
        {"traits": {"plan": "pro", "nested": {"deep": [1, {"x": None}]}, "tags": ["a", "b"]}},
        {"status": "running"},
        {"status": "waiting_for_user_input"},
        {"status": "completed", "result": "booked"},
        {"status": "failed", "error": "no flights"},
    ],
)
async def test_create_session_stores_each_field(
    client, tenant: Tenant, fields: dict[str, Any]
) -> None:
    created = await create(client, tenant, **fields)
    stored = await fetch(client, tenant, created["id"])
    for name, value in fields.items():
        assert created[name] == value
        assert stored[name] == value
    assert stored == created


BAD_CREATE_BODIES = [
    {"user_id": 42},
    {"user_id": ""},
    {"user_id": "u" * 257},
    {"title": 5},
    {"title": ["a"]},
    {"traits": [1, 2]},
    {"traits": "plan=pro"},
    {"traits": 3},
    {"status": "paused"},
    {"status": "ACTIVE"},
    {"status": 1},
    {"result": 7},
    {"colour": "red"},
    {"id": "0192f6c5-0000-7000-8000-000000000000"},
    {"version": 9},
    {"message_count": 3},
    {"tenant_id": "someone-else"},
]


@pytest.mark.parametrize("body", BAD_CREATE_BODIES)
async def test_create_session_with_a_bad_body_is_400_and_stores_nothing(
    client, database: Database, tenant: Tenant, body: dict[str, Any]
) -> None:
    response = await client.post("/v1/sessions", json=body, headers=tenant.headers)
    assert_problem(response, 400)
    assert await stored_sessions(database, tenant) == 0


@pytest.mark.parametrize("raw", [b"{", b'{"title": "x",}', b"[]", b'"title"', b"null", b"nan"])
async def test_create_session_with_a_body_that_is_not_a_json_object_is_400(
    client, database: Database, tenant: Tenant, raw: bytes
) -> None:
    response = await client.post(
        "/v1/sessions",
        content=raw,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert await stored_sessions(database, tenant) == 0


async def test_create_session_with_a_body_that_is_not_json_is_415(
    client, database: Database, tenant: Tenant
) -> None:
    response = await client.post(
        "/v1/sessions",
        content=b"title=x",
        headers={**tenant.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415)
    assert await stored_sessions(database, tenant) == 0


SMALL_JSON = 512


def traits_of_size(encoded_bytes: int) -> dict[str, str]:
    """Traits whose compact JSON encoding is exactly `encoded_bytes` long."""
    return {"k": "x" * (encoded_bytes - len('{"k":""}'))}


async def test_traits_over_max_json_bytes_are_413_on_every_session_route(
    settings: Settings, database: Database
) -> None:
    async with app_client(settings, database, max_json_bytes=SMALL_JSON) as small:
        tenant = await create_tenant(small, "small")
        within, over = traits_of_size(SMALL_JSON // 2), traits_of_size(SMALL_JSON + 1)

        assert_problem(
            await small.post("/v1/sessions", json={"traits": over}, headers=tenant.headers), 413
        )
        assert await stored_sessions(database, tenant) == 0

        session = await create(small, tenant, traits=within)
        url = f"/v1/sessions/{session['id']}"
        # A merge patch whose parts are each small but whose result is over the limit.
        grown = {"other": traits_of_size(SMALL_JSON // 2 + 20)["k"]}
        assert_problem(await small.patch(url, json={"traits": grown}, headers=tenant.headers), 413)
        assert_problem(await small.put(f"{url}/traits", json=over, headers=tenant.headers), 413)

        assert await fetch(small, tenant, session["id"]) == session


async def test_create_session_body_over_max_body_bytes_is_413(
    settings: Settings, database: Database
) -> None:
    async with app_client(settings, database, max_body_bytes=2048) as small:
        tenant = await create_tenant(small, "small")
        response = await small.post(
            "/v1/sessions", json={"title": "t" * 4096}, headers=tenant.headers
        )
        assert_problem(response, 413)
        assert await stored_sessions(database, tenant) == 0


# --- GET /v1/sessions ----------------------------------------------------------------------


async def test_list_sessions_is_newest_activity_first(client, tenant: Tenant) -> None:
    created = [await create(client, tenant, title=f"s{n}") for n in range(5)]
    listed = (await page(client, tenant))["data"]
    assert [s["id"] for s in listed] == [s["id"] for s in reversed(created)]
    assert listed == sorted(listed, key=activity_key, reverse=True)


async def test_list_sessions_breaks_updated_at_ties_by_id_descending(
    client, database: Database, tenant: Tenant
) -> None:
    created = [await create(client, tenant) for _ in range(4)]
    async with database.transaction() as tx:
        await tx.execute(
            text(
                "UPDATE sessions SET updated_at = "
                "(SELECT min(updated_at) FROM sessions WHERE tenant_id = :t) WHERE tenant_id = :t"
            ),
            {"t": tenant.id},
        )
    by_id_descending = sorted((s["id"] for s in created), reverse=True)
    assert [s["id"] for s in (await page(client, tenant))["data"]] == by_id_descending
    # The order is total: pages of one walk it the same way.
    assert await walk(client, tenant, limit=1) == by_id_descending


async def test_appending_a_message_moves_its_session_to_the_top(client, tenant: Tenant) -> None:
    oldest, middle, newest = [await create(client, tenant) for _ in range(3)]
    await append(client, tenant, oldest["id"], "back to this one")
    listed = (await page(client, tenant))["data"]
    assert [s["id"] for s in listed] == [oldest["id"], newest["id"], middle["id"]]
    assert listed[0]["message_count"] == 1
    assert listed[0]["last_message_at"] is not None


async def test_patching_a_session_moves_it_to_the_top(client, tenant: Tenant) -> None:
    first, second = [await create(client, tenant) for _ in range(2)]
    response = await client.patch(
        f"/v1/sessions/{first['id']}", json={"title": "renamed"}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert [s["id"] for s in (await page(client, tenant))["data"]] == [first["id"], second["id"]]


async def test_keyset_pages_walk_every_session_exactly_once_despite_inserts_between_pages(
    client, tenant: Tenant
) -> None:
    originals = [await create(client, tenant, title=f"s{n}") for n in range(7)]
    expected = [s["id"] for s in reversed(originals)]

    seen: list[str] = []
    body = await page(client, tenant, limit=3)
    pages = 1
    seen += [item["id"] for item in body["data"]]
    while body["next_cursor"] is not None and pages < MAX_PAGES:
        await create(client, tenant, title="inserted meanwhile")
        body = await page(client, tenant, limit=3, cursor=body["next_cursor"])
        pages += 1
        seen += [item["id"] for item in body["data"]]

    assert seen == expected
    assert pages == 3
    # The sessions inserted meanwhile are all there, at the top of a fresh listing.
    assert len(await walk(client, tenant, limit=100)) == 7 + 2


async def test_last_page_has_no_next_cursor(client, tenant: Tenant) -> None:
    for _ in range(2):
        await create(client, tenant)
    assert (await page(client, tenant, limit=2))["next_cursor"] is None
    assert (await page(client, tenant, limit=1))["next_cursor"] is not None


async def test_empty_list_is_an_empty_page(client, tenant: Tenant) -> None:
    assert await page(client, tenant) == {"data": [], "next_cursor": None}


async def test_list_default_limit_is_20(client, tenant: Tenant) -> None:
    for _ in range(21):
        await create(client, tenant)
    body = await page(client, tenant)
    assert len(body["data"]) == 20
    assert body["next_cursor"] is not None


async def test_list_filters_by_user_id_and_status(client, tenant: Tenant) -> None:
    a_active = await create(client, tenant, user_id="alice")
    a_running = await create(client, tenant, user_id="alice", status="running")
    b_running = await create(client, tenant, user_id="bob", status="running")
    anonymous = await create(client, tenant)

    assert await walk(client, tenant, user_id="alice") == [a_running["id"], a_active["id"]]
    assert await walk(client, tenant, user_id="alice", limit=1) == [
        a_running["id"],
        a_active["id"],
    ]
    assert await walk(client, tenant, status="running") == [b_running["id"], a_running["id"]]
    assert await walk(client, tenant, status="active") == [anonymous["id"], a_active["id"]]
    assert await walk(client, tenant, user_id="alice", status="running") == [a_running["id"]]
    assert await walk(client, tenant, user_id="carol") == []
    assert await walk(client, tenant, status="failed") == []


async def test_list_status_filter_follows_a_patched_status(client, tenant: Tenant) -> None:
    session = await create(client, tenant)
    response = await client.patch(
        f"/v1/sessions/{session['id']}", json={"status": "completed"}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert await walk(client, tenant, status="completed") == [session["id"]]
    assert await walk(client, tenant, status="active") == []


async def test_list_item_preview_is_the_first_80_characters_of_the_last_message(
    client, tenant: Tenant
) -> None:
    session = await create(client, tenant)
    items = (await page(client, tenant))["data"]
    assert items[0]["preview"] is None

    await append(client, tenant, session["id"], "first message, not the last")
    # Characters, not bytes: accents and emoji count one each.
    last = "Olá, Lisboa! 🚋 " * 10
    await append(client, tenant, session["id"], last, role="assistant")
    items = (await page(client, tenant))["data"]
    assert items[0]["preview"] == last[:80]
    assert len(items[0]["preview"]) == 80

    await append(client, tenant, session["id"], "short")
    assert (await page(client, tenant))["data"][0]["preview"] == "short"


async def test_preview_follows_truncation_of_the_history(client, tenant: Tenant) -> None:
    session = await create(client, tenant)
    first = "a" * 100
    for content in (first, "second", "third"):
        await append(client, tenant, session["id"], content)

    response = await client.delete(
        f"/v1/sessions/{session['id']}/messages",
        params={"after_seq": 1},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json() == {"deleted": 2}
    item = (await page(client, tenant))["data"][0]
    assert item["preview"] == first[:80]
    assert item["message_count"] == 1

    response = await client.delete(
        f"/v1/sessions/{session['id']}/messages",
        params={"after_seq": 0},
        headers=tenant.headers,
    )
    assert response.json() == {"deleted": 1}
    item = (await page(client, tenant))["data"][0]
    assert item["preview"] is None
    assert item["message_count"] == 0


async def test_previews_belong_to_their_own_sessions(client, tenant: Tenant) -> None:
    first, second = await create(client, tenant), await create(client, tenant)
    await append(client, tenant, first["id"], "for the first")
    await append(client, tenant, second["id"], "for the second")
    previews = {item["id"]: item["preview"] for item in (await page(client, tenant))["data"]}
    assert previews == {first["id"]: "for the first", second["id"]: "for the second"}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"status": "paused"},
        {"user_id": "u" * 257},
    ],
)
async def test_list_with_an_out_of_range_query_parameter_is_400(
    client, tenant: Tenant, params: dict[str, str]
) -> None:
    await create(client, tenant)
    assert_problem(await client.get("/v1/sessions", params=params, headers=tenant.headers), 400)


async def test_list_limit_bounds_1_and_100_are_accepted(client, tenant: Tenant) -> None:
    for _ in range(2):
        await create(client, tenant)
    assert len((await page(client, tenant, limit=1))["data"]) == 1
    assert len((await page(client, tenant, limit=100))["data"]) == 2


def forged(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!not-base64!!!",
        "x" * 2000,
        forged({"not": "a list"}),
        forged([]),
        forged(["0" * 16, "2026-01-01T00:00:00+00:00", "some-id"]),
        forged([1, 2, 3]),
    ],
)
async def test_list_with_a_garbage_cursor_is_400(client, tenant: Tenant, cursor: str) -> None:
    await create(client, tenant)
    response = await client.get("/v1/sessions", params={"cursor": cursor}, headers=tenant.headers)
    assert_problem(response, 400)


async def test_list_with_a_tampered_cursor_position_is_400(client, tenant: Tenant) -> None:
    for _ in range(2):
        await create(client, tenant)
    cursor = (await page(client, tenant, limit=1))["next_cursor"]
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for position in (["not a time", decoded[2]], [decoded[1], 7], [decoded[1]]):
        response = await client.get(
            "/v1/sessions",
            params={"cursor": forged([decoded[0], *position])},
            headers=tenant.headers,
        )
        assert_problem(response, 400)


@pytest.mark.parametrize(
    ("issued_with", "used_with"),
    [
        ({}, {"status": "active"}),
        ({}, {"user_id": "alice"}),
        ({"status": "active"}, {}),
        ({"status": "active"}, {"status": "running"}),
        ({"user_id": "alice"}, {"user_id": "bob"}),
        ({"user_id": "alice"}, {"user_id": "alice", "status": "active"}),
    ],
)
async def test_cursor_issued_for_one_filter_is_400_with_another(
    client, tenant: Tenant, issued_with: dict[str, str], used_with: dict[str, str]
) -> None:
    for user in ("alice", "alice", "bob", "bob"):
        await create(client, tenant, user_id=user)
    cursor = (await page(client, tenant, limit=1, **issued_with))["next_cursor"]
    assert cursor is not None
    response = await client.get(
        "/v1/sessions", params={"cursor": cursor, "limit": 1, **used_with}, headers=tenant.headers
    )
    assert_problem(response, 400)


# --- GET /v1/sessions/{id} -----------------------------------------------------------------


async def test_get_session_has_an_etag_of_its_version(client, tenant: Tenant) -> None:
    session = await create(client, tenant)
    url = f"/v1/sessions/{session['id']}"
    for expected_version in (1, 2, 3):
        response = await client.get(url, headers=tenant.headers)
        assert response.status_code == 200
        assert response.json()["version"] == expected_version
        assert response.headers["etag"] == f'"{expected_version}"'
        # A new title each time: a PATCH that changes nothing keeps the version.
        changed = await client.patch(
            url, json={"title": f"t{expected_version}"}, headers=tenant.headers
        )
        assert changed.status_code == 200


async def test_get_unknown_session_is_404(client, tenant: Tenant) -> None:
    for session_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
        assert_problem(response, 404)


# --- PATCH /v1/sessions/{id} ---------------------------------------------------------------


async def test_patch_changes_only_the_given_fields_and_increments_version(
    client, tenant: Tenant
) -> None:
    session = await create(client, tenant, user_id="u-1", title="old", traits={"a": 1})
    url = f"/v1/sessions/{session['id']}"

    response = await client.patch(url, json={"title": "new"}, headers=tenant.headers)
    assert response.status_code == 200
    patched = response.json()
    assert response.headers["etag"] == '"2"'
    assert patched["title"] == "new"
    assert patched["version"] == 2
    assert activity_key(patched)[0] >= activity_key(session)[0]
    unchanged = {"id", "user_id", "traits", "status", "result", "error", "message_count"}
    assert {k: patched[k] for k in unchanged} == {k: session[k] for k in unchanged}
    assert patched["created_at"] == session["created_at"]
    assert await fetch(client, tenant, session["id"]) == patched


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "u-2"},
        {"user_id": None},
        {"title": None},
        {"status": "running"},
        {"status": "waiting_for_user_input"},
        {"status": "completed", "result": "done"},
        {"status": "failed", "error": "boom", "result": None},
    ],
)
async def test_patch_sets_each_field(client, tenant: Tenant, change: dict[str, Any]) -> None:
    session = await create(client, tenant, user_id="u-1", title="t")
    response = await client.patch(
        f"/v1/sessions/{session['id']}", json=change, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    stored = await fetch(client, tenant, session["id"])
    for name, value in change.items():
        assert stored[name] == value
    assert stored["version"] == 2


async def test_patch_traits_is_a_json_merge_patch(client, tenant: Tenant) -> None:
    session = await create(
        client,
        tenant,
        traits={
            "plan": "pro",
            "locale": "pt-PT",
            "prefs": {"a": 1, "b": {"c": 2, "d": 3}},
            "tags": ["a", "b"],
            "limit": 5,
            "profile": {"x": 1},
        },
    )
    patch = {
        "locale": None,  # removed
        "absent": None,  # removing what is not there is no error
        "prefs": {"b": {"c": None, "e": 4}, "z": True},  # merged recursively
        "tags": ["c"],  # arrays are replaced, not merged
        "limit": {"daily": 3},  # a scalar replaced by an object
        "profile": "gone",  # an object replaced by a scalar
        "new": {"keep": 1, "drop": None},  # nulls inside a new object are dropped too
    }
    response = await client.patch(
        f"/v1/sessions/{session['id']}", json={"traits": patch}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    expected = {
        "plan": "pro",
        "prefs": {"a": 1, "b": {"d": 3, "e": 4}, "z": True},
        "tags": ["c"],
        "limit": {"daily": 3},
        "profile": "gone",
        "new": {"keep": 1},
    }
    assert response.json()["traits"] == expected
    assert (await fetch(client, tenant, session["id"]))["traits"] == expected


async def test_patch_with_empty_traits_changes_no_trait(client, tenant: Tenant) -> None:
    session = await create(client, tenant, traits={"a": {"b": 1}})
    response = await client.patch(
        f"/v1/sessions/{session['id']}", json={"traits": {}}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["traits"] == {"a": {"b": 1}}


async def test_successive_merge_patches_accumulate(client, tenant: Tenant) -> None:
    session = await create(client, tenant)
    url = f"/v1/sessions/{session['id']}"
    for n in range(3):
        response = await client.patch(url, json={"traits": {f"k{n}": n}}, headers=tenant.headers)
        assert response.status_code == 200
    stored = await fetch(client, tenant, session["id"])
    assert stored["traits"] == {"k0": 0, "k1": 1, "k2": 2}
    assert stored["version"] == 4


@pytest.mark.parametrize("if_match", ['"1"', "1", "*", '"7", "1"'])
async def test_patch_with_a_matching_if_match_is_applied(
    client, tenant: Tenant, if_match: str
) -> None:
    session = await create(client, tenant, title="old")
    response = await client.patch(
        f"/v1/sessions/{session['id']}",
        json={"title": "new"},
        headers={**tenant.headers, "If-Match": if_match},
    )
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "new"
    assert response.headers["etag"] == '"2"'


async def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(
    client, tenant: Tenant
) -> None:
    session = await create(client, tenant, title="old", traits={"a": 1})
    url = f"/v1/sessions/{session['id']}"
    first = await client.patch(
        url, json={"title": "mine"}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert first.status_code == 200
    before = await fetch(client, tenant, session["id"])

    for stale in ('"1"', '"3"', "W/nonsense"):
        response = await client.patch(
            url,
            json={"title": "theirs", "traits": {"a": None}},
            headers={**tenant.headers, "If-Match": stale},
        )
        assert_problem(response, 412)
    assert await fetch(client, tenant, session["id"]) == before
    assert before["version"] == 2


async def test_patch_unknown_session_is_404(client, tenant: Tenant) -> None:
    response = await client.patch(
        f"/v1/sessions/{uuid.uuid4()}", json={"title": "x"}, headers=tenant.headers
    )
    assert_problem(response, 404)


BAD_PATCH_BODIES = [
    {"status": "paused"},
    {"status": None},
    {"title": 5},
    {"user_id": ""},
    {"user_id": 42},
    {"traits": [1]},
    {"traits": "x"},
    {"version": 9},
    {"id": "other"},
    {"message_count": 0},
    {"created_at": "2020-01-01T00:00:00Z"},
]


@pytest.mark.parametrize("body", BAD_PATCH_BODIES)
async def test_patch_with_a_bad_body_is_400_and_changes_nothing(
    client, tenant: Tenant, body: dict[str, Any]
) -> None:
    session = await create(client, tenant, user_id="u", title="t", traits={"a": 1})
    response = await client.patch(
        f"/v1/sessions/{session['id']}", json=body, headers=tenant.headers
    )
    assert_problem(response, 400)
    assert await fetch(client, tenant, session["id"]) == session


async def test_patch_with_a_body_that_is_not_json_is_415(client, tenant: Tenant) -> None:
    session = await create(client, tenant, title="t")
    response = await client.patch(
        f"/v1/sessions/{session['id']}",
        content=b"title=x",
        headers={**tenant.headers, "Content-Type": "text/plain"},
    )
    assert_problem(response, 415)
    assert await fetch(client, tenant, session["id"]) == session


# --- PUT /v1/sessions/{id}/traits ----------------------------------------------------------


async def test_put_traits_replaces_them_wholesale(client, tenant: Tenant) -> None:
    session = await create(
        client, tenant, title="t", traits={"plan": "pro", "nested": {"a": 1}, "tags": ["x"]}
    )
    url = f"/v1/sessions/{session['id']}/traits"

    response = await client.put(url, json={"nested": {"b": 2}}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["traits"] == {"nested": {"b": 2}}
    assert response.json()["version"] == 2
    assert response.headers["etag"] == '"2"'
    stored = await fetch(client, tenant, session["id"])
    assert stored["traits"] == {"nested": {"b": 2}}
    assert stored["title"] == "t"

    response = await client.put(url, json={}, headers=tenant.headers)
    assert response.status_code == 200
    assert (await fetch(client, tenant, session["id"]))["traits"] == {}


async def test_put_traits_keeps_null_values_as_given(client, tenant: Tenant) -> None:
    # Unlike a merge patch, a replacement stores what it is given.
    session = await create(client, tenant)
    response = await client.put(
        f"/v1/sessions/{session['id']}/traits", json={"a": None}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert (await fetch(client, tenant, session["id"]))["traits"] == {"a": None}


async def test_put_traits_honours_if_match(client, tenant: Tenant) -> None:
    session = await create(client, tenant, traits={"a": 1})
    url = f"/v1/sessions/{session['id']}/traits"

    response = await client.put(url, json={"b": 2}, headers={**tenant.headers, "If-Match": '"1"'})
    assert response.status_code == 200
    before = await fetch(client, tenant, session["id"])

    response = await client.put(url, json={"c": 3}, headers={**tenant.headers, "If-Match": '"1"'})
    assert_problem(response, 412)
    assert await fetch(client, tenant, session["id"]) == before
    assert before["traits"] == {"b": 2}


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"plan"', b"3", b"null", b"{"])
async def test_put_traits_with_a_body_that_is_not_an_object_is_400(
    client, tenant: Tenant, raw: bytes
) -> None:
    session = await create(client, tenant, traits={"a": 1})
    response = await client.put(
        f"/v1/sessions/{session['id']}/traits",
        content=raw,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)
    assert await fetch(client, tenant, session["id"]) == session


async def test_put_traits_of_unknown_session_is_404(client, tenant: Tenant) -> None:
    response = await client.put(
        f"/v1/sessions/{uuid.uuid4()}/traits", json={"a": 1}, headers=tenant.headers
    )
    assert_problem(response, 404)


# --- DELETE /v1/sessions/{id} --------------------------------------------------------------


async def test_delete_session_is_204_and_then_it_is_gone(client, tenant: Tenant) -> None:
    kept = await create(client, tenant)
    session = await create(client, tenant)
    url = f"/v1/sessions/{session['id']}"

    response = await client.delete(url, headers=tenant.headers)
    assert response.status_code == 204
    assert response.content == b""

    assert_problem(await client.get(url, headers=tenant.headers), 404)
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert_problem(await client.patch(url, json={"title": "x"}, headers=tenant.headers), 404)
    assert_problem(await client.put(f"{url}/traits", json={}, headers=tenant.headers), 404)
    assert await walk(client, tenant) == [kept["id"]]


async def test_delete_unknown_session_is_404(client, tenant: Tenant) -> None:
    response = await client.delete(f"/v1/sessions/{uuid.uuid4()}", headers=tenant.headers)
    assert_problem(response, 404)


async def fill_session(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> None:
    """Messages (one of them calling a tool) and tool calls, linked and unlinked."""
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={
            "messages": [
                {"role": "user", "content": "find hotels"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "search"}}
                    ],
                },
                {"role": "tool", "content": "[]", "tool_call_id": "call_1"},
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    assistant = response.json()["data"][1]
    for body in (
        {"tool_call_id": "call_1", "tool_name": "search", "message_id": assistant["id"]},
        {"tool_call_id": "call_2", "tool_name": "search"},
    ):
        created = await client.post(
            f"/v1/sessions/{session_id}/tool-calls", json=body, headers=tenant.headers
        )
        assert created.status_code == 201, created.text


async def test_delete_session_deletes_its_messages_and_tool_calls_and_nothing_else(
    client, database: Database, tenant: Tenant
) -> None:
    doomed, kept = await create(client, tenant), await create(client, tenant)
    for session in (doomed, kept):
        await fill_session(client, tenant, session["id"])

    async def rows(table: str, session_id: str) -> int:
        return await count_rows(database, table, "session_id = :s", s=session_id)

    assert await rows("messages", doomed["id"]) == 3
    assert await rows("tool_calls", doomed["id"]) == 2

    response = await client.delete(f"/v1/sessions/{doomed['id']}", headers=tenant.headers)
    assert response.status_code == 204

    assert await rows("messages", doomed["id"]) == 0
    assert await rows("tool_calls", doomed["id"]) == 0
    assert await count_rows(database, "sessions", "id = :s", s=doomed["id"]) == 0
    assert await rows("messages", kept["id"]) == 3
    assert await rows("tool_calls", kept["id"]) == 2
    history = await client.get(f"/v1/sessions/{kept['id']}/messages", headers=tenant.headers)
    assert [m["seq"] for m in history.json()["data"]] == [1, 2, 3]
