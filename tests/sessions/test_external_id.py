"""Sessions keyed by the caller's own id (`external_id`): unique in the tenant, get-or-create
on POST (race-free), the exact and the prefix filter of the list (an index range, in
external_id order), PATCH with 409 when taken, export and import, and bad ids refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import BindParameter, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.visitors import replacement_traverse

from chat_sessions.db import Database
from chat_sessions.sessions.listing import _exact_statement, _prefix_statement
from support import Tenant, assert_problem, count_rows, new_session, stored

BAD_EXTERNAL_IDS = [
    "",
    "x" * 257,
    "a\x01b",
    "line\n",  # a final newline: Python's `$` would let it through
    "\ttab",
    "del\x7f",
    "c1\x85",  # NEL, a C1 control character
]


async def create(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> httpx.Response:
    return await client.post("/v1/sessions", json=fields, headers=tenant.headers)


async def listed(client: httpx.AsyncClient, tenant: Tenant, **query: Any) -> list[str | None]:
    """The external_ids a list query answers, in its order, across every page."""
    found: list[str | None] = []
    while True:
        response = await client.get("/v1/sessions", params=query, headers=tenant.headers)
        assert response.status_code == 200, response.text
        found += [item["external_id"] for item in response.json()["data"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found
        query = {**query, "cursor": cursor}


# --- get-or-create --------------------------------------------------------------------------


async def test_create_with_a_new_external_id_is_201_and_stores_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await create(client, tenant, external_id="app/u-1/s-1", title="first")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["external_id"] == "app/u-1/s-1"
    assert response.headers["location"] == f"/v1/sessions/{body['id']}"
    fetched = await client.get(f"/v1/sessions/{body['id']}", headers=tenant.headers)
    assert fetched.json() == body


async def test_create_with_an_external_id_in_use_answers_that_session_unchanged_with_200(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    first = await create(client, tenant, external_id="s-1", title="first", traits={"a": 1})
    again = await create(
        client,
        tenant,
        external_id="s-1",
        title="second",
        user_id="someone",
        traits={"b": 2},
        status="completed",
    )

    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["etag"] == '"1"'
    assert "location" not in again.headers
    assert await count_rows(database, "sessions") == 1


async def test_get_or_create_answers_the_session_as_it_is_now(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = (await create(client, tenant, external_id="s-1")).json()["id"]
    patched = await client.patch(
        f"/v1/sessions/{session_id}", json={"title": "renamed"}, headers=tenant.headers
    )

    again = await create(client, tenant, external_id="s-1")

    assert again.status_code == 200
    assert again.json() == patched.json()
    assert again.headers["etag"] == '"2"'


async def test_the_same_external_id_in_two_tenants_is_two_sessions(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await create(client, tenant, external_id="shared")
    theirs = await create(client, other_tenant, external_id="shared")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert await listed(client, tenant, external_id="shared") == ["shared"]
    response = await client.get(
        "/v1/sessions", params={"external_id": "shared"}, headers=tenant.headers
    )
    assert [item["id"] for item in response.json()["data"]] == [mine.json()["id"]]


async def test_ten_concurrent_creates_with_one_external_id_make_one_session(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    responses = await asyncio.gather(
        *(create(client, tenant, external_id="raced", title=f"t{n}") for n in range(10))
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 9 + [201], [r.text for r in responses]
    assert len({response.json()["id"] for response in responses}) == 1
    assert await count_rows(database, "sessions") == 1


async def test_sessions_without_external_id_are_never_matched_by_get_or_create(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    for _ in range(3):
        assert (await create(client, tenant)).status_code == 201
        assert (await create(client, tenant, external_id=None)).status_code == 201
    assert await count_rows(database, "sessions") == 6


# --- listing ----------------------------------------------------------------------------------


async def test_external_id_filter_lists_that_session_or_nothing(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create(client, tenant, external_id="a")
    await create(client, tenant, external_id="ab")
    await create(client, other_tenant, external_id="theirs")

    assert await listed(client, tenant, external_id="a") == ["a"]
    assert await listed(client, tenant, external_id="A") == []
    assert await listed(client, tenant, external_id="theirs") == []


async def test_prefix_lists_in_external_id_order_across_pages(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    for external_id in ["app/u2/s1", "app/u1/s2", "app/u10/s1", "app/u1/s1", "other/u1", "app"]:
        await create(client, tenant, external_id=external_id)
    await create(client, tenant)  # no external_id
    await create(client, other_tenant, external_id="app/u1/theirs")

    assert await listed(client, tenant, external_id_prefix="app/", limit=2) == [
        "app/u1/s1",
        "app/u1/s2",
        "app/u10/s1",
        "app/u2/s1",
    ]
    assert await listed(client, tenant, external_id_prefix="app/u1/") == ["app/u1/s1", "app/u1/s2"]
    assert await listed(client, tenant, external_id_prefix="app") == [
        "app",
        "app/u1/s1",
        "app/u1/s2",
        "app/u10/s1",
        "app/u2/s1",
    ]
    assert await listed(client, tenant, external_id_prefix="zzz") == []


async def test_a_prefix_matches_literally_with_percent_underscore_and_backslash(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ids = ["a%b", "axb", "a_c", "abc", "a\\d", "a\\\\e", "A%b", "a[x]", "a*"]
    for external_id in ids:
        await create(client, tenant, external_id=external_id)

    assert await listed(client, tenant, external_id_prefix="a%") == ["a%b"]
    assert await listed(client, tenant, external_id_prefix="a_") == ["a_c"]
    assert await listed(client, tenant, external_id_prefix="a\\") == ["a\\\\e", "a\\d"]
    assert await listed(client, tenant, external_id_prefix="a\\\\") == ["a\\\\e"]
    assert await listed(client, tenant, external_id_prefix="a[") == ["a[x]"]
    assert await listed(client, tenant, external_id_prefix="a*") == ["a*"]
    assert await listed(client, tenant, external_id_prefix="a%b") == ["a%b"]


async def test_a_prefix_is_compared_by_code_point_beyond_ascii(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    top = "\U0010ffff"  # the highest character there is
    ids = [f"p{top}x", f"p{top}", "p😀", "pé", "pz", "p", "q", "o", f"{top}{top}", f"{top}"]
    for external_id in ids:
        await create(client, tenant, external_id=external_id)

    # Code point order (= UTF-8 byte order); an id that continues the prefix with the highest
    # character and more is still inside the range.
    assert await listed(client, tenant, external_id_prefix="p") == [
        "p",
        "pz",
        "pé",
        "p😀",
        f"p{top}",
        f"p{top}x",
    ]
    assert await listed(client, tenant, external_id_prefix=f"p{top}") == [f"p{top}", f"p{top}x"]
    # A prefix of nothing but the highest character has no end to its range.
    assert await listed(client, tenant, external_id_prefix=top) == [top, f"{top}{top}"]


async def test_prefix_and_exact_filters_combine_with_user_and_status(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await create(client, tenant, external_id="s/1", user_id="u1")
    await create(client, tenant, external_id="s/2", user_id="u2", status="completed")
    await create(client, tenant, external_id="s/3", user_id="u1", status="completed")
    await create(client, tenant, external_id="t/1", user_id="u1")

    assert await listed(client, tenant, external_id_prefix="s/", user_id="u1") == ["s/1", "s/3"]
    assert await listed(client, tenant, external_id_prefix="s/", status="completed") == [
        "s/2",
        "s/3",
    ]
    assert await listed(
        client, tenant, external_id_prefix="s/", user_id="u1", status="completed", limit=1
    ) == ["s/3"]
    assert await listed(client, tenant, external_id="s/1", user_id="u1") == ["s/1"]
    assert await listed(client, tenant, external_id="s/1", user_id="u2") == []
    assert await listed(client, tenant, external_id="s/1", status="completed") == []


async def test_prefix_list_items_carry_the_preview(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = (await create(client, tenant, external_id="p/1")).json()["id"]
    await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "hello there"},
        headers=tenant.headers,
    )

    response = await client.get(
        "/v1/sessions", params={"external_id_prefix": "p/"}, headers=tenant.headers
    )

    (item,) = response.json()["data"]
    assert item["preview"] == "hello there"
    assert item["message_count"] == 1


async def test_both_external_id_filters_at_once_are_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get(
        "/v1/sessions",
        params={"external_id": "a", "external_id_prefix": "a"},
        headers=tenant.headers,
    )
    assert_problem(response, 400)


async def test_a_prefix_cursor_serves_only_its_own_listing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for n in range(3):
        await create(client, tenant, external_id=f"a/{n}")
        await create(client, tenant, external_id=f"b/{n}")
    first = await client.get(
        "/v1/sessions", params={"external_id_prefix": "a/", "limit": 1}, headers=tenant.headers
    )
    cursor = first.json()["next_cursor"]
    assert cursor is not None

    for query in (
        {"external_id_prefix": "b/"},
        {"external_id_prefix": "a/", "user_id": "u"},
        {},
        {"external_id": "a/0"},  # one page only: no cursor at all
    ):
        response = await client.get(
            "/v1/sessions", params={**query, "cursor": cursor}, headers=tenant.headers
        )
        assert_problem(response, 400)


@pytest.mark.parametrize("bad", BAD_EXTERNAL_IDS)
@pytest.mark.parametrize("name", ["external_id", "external_id_prefix"])
async def test_a_bad_external_id_in_the_query_is_400(
    client: httpx.AsyncClient, tenant: Tenant, name: str, bad: str
) -> None:
    response = await client.get("/v1/sessions", params={name: bad}, headers=tenant.headers)
    assert_problem(response, 400)


async def test_the_filters_are_served_by_the_external_id_index(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    """The plan of each filter's statement walks the unique index on (tenant_id, external_id),
    in its order (no sort step); on PostgreSQL with sequential scans off, as a table of a few
    rows would rather be scanned."""
    statements = [
        _exact_statement(False, False),
        _exact_statement(True, True),
        _prefix_statement(False, False, False, True),
        _prefix_statement(True, True, True, True),
        _prefix_statement(False, False, False, False),
    ]
    values = {
        "tenant_id": tenant.id,
        "external_id": "x",
        "low": "a",
        "high": "b",
        "user_id": "u",
        "status": "active",
        "limit": 21,
    }
    dialect = sqlite.dialect() if database.is_sqlite else postgresql.dialect()
    explain = "EXPLAIN QUERY PLAN" if database.is_sqlite else "EXPLAIN"
    async with database.transaction() as tx:
        if not database.is_sqlite:
            await tx.execute(text("SET LOCAL enable_seqscan = off"))
        for prepared in statements:
            sql = _with_values(prepared.statement, values).compile(
                dialect=dialect, compile_kwargs={"literal_binds": True}
            )
            plan = "\n".join(str(row) for row in await tx.execute(text(f"{explain} {sql}")))
            assert "ix_sessions_tenant_id_external_id" in plan, plan
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


def _with_values(statement: Any, values: dict[str, Any]) -> Any:
    """`statement` with its parameters as literals, for EXPLAIN."""

    def replace(element: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in values:
            return literal(values[element.key])
        return None

    return replacement_traverse(statement, {}, replace)


# --- PATCH ------------------------------------------------------------------------------------


async def test_patch_sets_changes_and_clears_the_external_id(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    path = f"/v1/sessions/{session_id}"

    set_ = await client.patch(path, json={"external_id": "mine"}, headers=tenant.headers)
    assert (set_.status_code, set_.json()["external_id"], set_.json()["version"]) == (
        200,
        "mine",
        2,
    )
    assert await listed(client, tenant, external_id="mine") == ["mine"]
    same = await client.patch(path, json={"external_id": "mine"}, headers=tenant.headers)
    assert same.json()["version"] == 2  # nothing changed, no new version
    cleared = await client.patch(path, json={"external_id": None}, headers=tenant.headers)
    assert (cleared.json()["external_id"], cleared.json()["version"]) == (None, 3)
    assert await listed(client, tenant, external_id="mine") == []
    # Freed: another session may take it now.
    assert (await create(client, tenant, external_id="mine")).status_code == 201


async def test_patch_to_an_external_id_another_session_has_is_409_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    await create(client, tenant, external_id="taken")
    session_id = (await create(client, tenant, external_id="free")).json()["id"]
    before = await stored(database)

    response = await client.patch(
        f"/v1/sessions/{session_id}",
        json={"external_id": "taken", "title": "would change"},
        headers=tenant.headers,
    )

    assert_problem(response, 409)
    assert await stored(database) == before
    fetched = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert fetched.json()["external_id"] == "free"


async def test_patch_to_an_external_id_of_another_tenant_is_fine(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create(client, other_tenant, external_id="theirs")
    session_id = await new_session(client, tenant)

    response = await client.patch(
        f"/v1/sessions/{session_id}", json={"external_id": "theirs"}, headers=tenant.headers
    )

    assert response.status_code == 200, response.text


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [*BAD_EXTERNAL_IDS, 5, ["a"], {"a": 1}])
async def test_a_bad_external_id_is_400_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, bad: Any
) -> None:
    session_id = (await create(client, tenant, external_id="kept")).json()["id"]
    before = await stored(database)

    created = await create(client, tenant, external_id=bad)
    patched = await client.patch(
        f"/v1/sessions/{session_id}", json={"external_id": bad}, headers=tenant.headers
    )

    assert_problem(created, 400)
    assert_problem(patched, 400)
    assert await stored(database) == before
    assert await listed(client, tenant) == ["kept"]


async def test_the_longest_external_id_and_unicode_ones_are_fine(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for external_id in ["x" * 256, "é" * 256, "😀" * 256, " ", "a b\u00a0c", "\u2028"]:
        response = await create(client, tenant, external_id=external_id)
        assert response.status_code == 201, response.text
        assert response.json()["external_id"] == external_id
        assert await listed(client, tenant, external_id=external_id) == [external_id]


# --- export and import ------------------------------------------------------------------------


async def test_export_carries_the_external_id_and_import_keeps_it_in_another_tenant(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    session_id = (await create(client, tenant, external_id="moved")).json()["id"]
    exported = (
        await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    ).json()
    assert exported["session"]["external_id"] == "moved"

    imported = await client.post("/v1/sessions/import", json=exported, headers=other_tenant.headers)

    assert imported.status_code == 201, imported.text
    assert imported.json()["external_id"] == "moved"
    again = await create(client, other_tenant, external_id="moved")
    assert (again.status_code, again.json()["id"]) == (200, imported.json()["id"])


async def test_import_of_an_external_id_the_tenant_uses_is_409_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = (await create(client, tenant, external_id="once")).json()["id"]
    await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "hi"},
        headers=tenant.headers,
    )
    exported = (
        await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    ).json()
    before = await stored(database)

    response = await client.post("/v1/sessions/import", json=exported, headers=tenant.headers)

    assert_problem(response, 409)
    assert await stored(database) == before
    # Without it, the document imports as a copy.
    exported["session"]["external_id"] = None
    copy = await client.post("/v1/sessions/import", json=exported, headers=tenant.headers)
    assert copy.status_code == 201, copy.text
    assert copy.json()["external_id"] is None


@pytest.mark.parametrize("bad", BAD_EXTERNAL_IDS)
async def test_import_with_a_bad_external_id_is_400(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, bad: str
) -> None:
    document = {"format": "chat-sessions.v1", "session": {"external_id": bad}}
    response = await client.post("/v1/sessions/import", json=document, headers=tenant.headers)
    assert_problem(response, 400)
    assert await count_rows(database, "sessions") == 0
