"""An end-user's traits, shared by all of that user's sessions: read (empty at version 0 when
never written), merge-patched and replaced with ETags and If-Match, limited in size, kept
apart per tenant, and erased with the user."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from chat_sessions.settings import Settings
from support import Tenant, app_client, assert_problem, count_rows, new_session

PATH = "/v1/users/u-1/traits"


async def read(client: httpx.AsyncClient, tenant: Tenant, path: str = PATH) -> httpx.Response:
    response = await client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response


async def change(
    client: httpx.AsyncClient,
    tenant: Tenant,
    method: str,
    body: Any,
    path: str = PATH,
    **headers: str,
) -> httpx.Response:
    return await client.request(method, path, json=body, headers={**tenant.headers, **headers})


async def test_a_user_never_written_to_has_empty_traits_at_version_0(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    response = await read(client, tenant)

    assert response.json() == {"user_id": "u-1", "traits": {}, "version": 0, "updated_at": None}
    assert response.headers["etag"] == '"0"'
    assert await count_rows(database, "end_users") == 0


async def test_a_merge_patch_merges_nested_objects_and_null_removes_a_key(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    first = await change(
        client, tenant, "PATCH", {"plan": "pro", "prefs": {"lang": "en", "tz": "UTC"}, "x": 1}
    )
    assert first.status_code == 200, first.text
    assert (first.json()["version"], first.headers["etag"]) == (1, '"1"')

    second = await change(
        client, tenant, "PATCH", {"prefs": {"tz": None, "theme": "dark"}, "x": None}
    )

    assert second.status_code == 200, second.text
    body = second.json()
    assert body["traits"] == {"plan": "pro", "prefs": {"lang": "en", "theme": "dark"}}
    assert body["version"] == 2
    assert body["updated_at"].endswith(("Z", "+00:00"))
    assert (await read(client, tenant)).json() == body


async def test_a_patch_that_changes_nothing_keeps_the_version(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    await change(client, tenant, "PATCH", {"plan": "pro", "n": 1})

    for no_change in ({}, {"plan": "pro"}, {"gone": None}, {"n": 1}):
        response = await change(client, tenant, "PATCH", no_change)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1, no_change
    # Nor does a first patch that changes nothing make a row.
    other = await change(client, tenant, "PATCH", {"gone": None}, path="/v1/users/u-2/traits")
    assert other.json()["version"] == 0
    assert await count_rows(database, "end_users") == 1


async def test_put_replaces_the_traits_wholesale(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await change(client, tenant, "PATCH", {"plan": "pro", "prefs": {"lang": "en"}})

    replaced = await change(client, tenant, "PUT", {"only": None, "this": [1, 2]})

    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["traits"] == {"only": None, "this": [1, 2]}
    assert replaced.json()["version"] == 2
    same = await change(client, tenant, "PUT", {"this": [1, 2], "only": None})
    assert same.json()["version"] == 2
    created = await change(client, tenant, "PUT", {"a": 1}, path="/v1/users/new/traits")
    assert (created.status_code, created.json()["version"]) == (200, 1)


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_if_match_is_honoured_and_a_stale_one_is_412_changing_nothing(
    client: httpx.AsyncClient, tenant: Tenant, method: str
) -> None:
    # "0": only while the user has no traits written yet.
    created = await change(client, tenant, method, {"a": 1}, **{"If-Match": '"0"'})
    assert created.status_code == 200, created.text
    again = await change(client, tenant, method, {"a": 2}, **{"If-Match": '"0"'})
    assert_problem(again, 412)

    matching = await change(client, tenant, method, {"b": 2}, **{"If-Match": '"1"'})
    assert matching.status_code == 200, matching.text
    stale = await change(client, tenant, method, {"c": 3}, **{"If-Match": '"1"'})
    assert_problem(stale, 412)
    assert (await read(client, tenant)).json() == matching.json()
    anything = await change(client, tenant, method, {"d": 4}, **{"If-Match": "*"})
    assert anything.status_code == 200


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize("body", [[1, 2], "text", 5, None, True])
async def test_a_body_that_is_not_an_object_is_400_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, method: str, body: Any
) -> None:
    await change(client, tenant, "PATCH", {"kept": True})

    response = await change(client, tenant, method, body)

    assert_problem(response, 400)
    assert (await read(client, tenant)).json()["traits"] == {"kept": True}
    assert (await read(client, tenant)).json()["version"] == 1


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_traits_over_max_json_bytes_are_413_and_change_nothing(
    settings: Settings, database: Database, tenant: Tenant, method: str
) -> None:
    async with app_client(settings, database, max_json_bytes=100) as small:
        ok = await change(small, tenant, method, {"a": "x" * 50})
        assert ok.status_code == 200, ok.text
        too_big = await change(small, tenant, method, {"b": "y" * 100})
        assert_problem(too_big, 413)
        assert (await read(small, tenant)).json() == ok.json()


async def test_a_user_id_over_256_characters_is_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    path = f"/v1/users/{'u' * 257}/traits"
    assert_problem(await client.get(path, headers=tenant.headers), 400)
    assert_problem(await change(client, tenant, "PATCH", {"a": 1}, path=path), 400)
    assert (await read(client, tenant, f"/v1/users/{'u' * 256}/traits")).json()["version"] == 0


async def test_traits_belong_to_their_tenant(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await change(client, tenant, "PATCH", {"mine": True})

    theirs = await read(client, other_tenant)
    assert theirs.json() == {"user_id": "u-1", "traits": {}, "version": 0, "updated_at": None}
    await change(client, other_tenant, "PATCH", {"theirs": True})
    assert (await read(client, tenant)).json()["traits"] == {"mine": True}
    # Erasing the user in one tenant leaves the other's alone.
    await client.delete("/v1/users/u-1", headers=other_tenant.headers)
    assert (await read(client, tenant)).json()["traits"] == {"mine": True}
    assert (await read(client, other_tenant)).json()["version"] == 0


async def test_erasing_the_user_deletes_their_traits(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    await new_session(client, tenant, user_id="u-1")
    await change(client, tenant, "PATCH", {"plan": "pro"})
    await change(client, tenant, "PATCH", {"plan": "free"}, path="/v1/users/u-2/traits")

    erased = await client.delete("/v1/users/u-1", headers=tenant.headers)

    assert erased.json() == {"deleted_sessions": 1}
    assert (await read(client, tenant)).json()["version"] == 0
    assert await count_rows(database, "end_users") == 1
    # A user with traits and no session is erased too.
    erased = await client.delete("/v1/users/u-2", headers=tenant.headers)
    assert erased.json() == {"deleted_sessions": 0}
    assert await count_rows(database, "end_users") == 0


async def test_concurrent_patches_lose_no_key_even_on_the_first_write(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    responses = await asyncio.gather(
        *(change(client, tenant, "PATCH", {f"k{n}": n}) for n in range(20))
    )

    assert {response.status_code for response in responses} == {200}
    body = (await read(client, tenant)).json()
    assert body["traits"] == {f"k{n}": n for n in range(20)}
    assert body["version"] == 20


async def test_a_merge_patch_body_may_say_so_in_its_content_type(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.patch(
        PATH,
        content=b'{"a": 1}',
        headers={**tenant.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["traits"] == {"a": 1}
