"""The session snapshot over HTTP: a session, its newest messages of the active branch and
named end-users' traits in one read; the cursor reads further back; bad input is a 4xx."""

from __future__ import annotations

from typing import Any

import httpx

from support import Tenant, append, assert_problem, new_session


async def snapshot(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/sessions/{session_id}/snapshot", params=params, headers=tenant.headers
    )


async def test_one_read_answers_the_session_its_newest_messages_and_users_traits(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant, user_id="bob", traits={"step": 1})
    for n in range(1, 4):
        await append(client, tenant, session_id, f"m{n}")
    await append(client, tenant, session_id, "m2 again", parent_seq=1)  # the active branch: 1, 4
    await append(client, tenant, session_id, "m5", user_traits_patch={"name": "Bob"})
    read = await snapshot(client, tenant, session_id, messages=2, user_traits=["bob", "app", "bob"])
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["session"]["id"] == session_id and body["session"]["traits"] == {"step": 1}
    assert [m["content"] for m in body["messages"]["data"]] == ["m5", "m2 again"]
    assert [(u["user_id"], u["traits"], u["version"]) for u in body["user_traits"]] == [
        ("bob", {"name": "Bob"}, 1),
        ("app", {}, 0),  # never written to
    ]
    further = await client.get(
        f"/v1/sessions/{session_id}/messages",
        params={"order": "desc", "cursor": body["messages"]["next_cursor"]},
        headers=tenant.headers,
    )
    assert [m["content"] for m in further.json()["data"]] == ["m1"]


async def test_by_default_a_hundred_messages_and_no_users(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "only")
    body = (await snapshot(client, tenant, session_id)).json()
    assert [m["seq"] for m in body["messages"]["data"]] == [1]
    assert body["messages"]["next_cursor"] is None and body["user_traits"] == []
    none = (await snapshot(client, tenant, session_id, messages=0)).json()
    assert none["messages"] == {"data": [], "next_cursor": None}


async def test_another_tenants_session_and_bad_parameters_are_4xx(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    assert_problem(await snapshot(client, other_tenant, session_id), 404)
    assert_problem(await snapshot(client, tenant, "no-such-session"), 404)
    assert_problem(await snapshot(client, tenant, session_id, messages=-1), 400)
    assert_problem(await snapshot(client, tenant, session_id, messages=1001), 400)
    assert_problem(await snapshot(client, tenant, session_id, user_traits=["x"] * 11), 400)
    assert_problem(await snapshot(client, tenant, session_id, user_traits=["x" * 257]), 400)
    assert_problem(await snapshot(client, tenant, session_id, user_traits=[""]), 400)
