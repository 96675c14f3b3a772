"""Branches over HTTP: appends that follow the head or name a parent, the active branch and
the other ways to read history (branch=all, leaf_seq, parent_seq) with their cursors,
switching the head, removals that move it, /context on the active branch, and the bad input
that changes nothing."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from support import Tenant, append, assert_problem, new_session
from support import stored as everything_stored


async def say(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, content: str, **fields: Any
) -> dict[str, Any]:
    role = fields.pop("role", "user")
    return await append(client, tenant, session_id, content, role, **fields)


async def read(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"/v1/sessions/{session_id}/messages", params=params, headers=tenant.headers
    )


async def seqs(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> list[int]:
    response = await read(client, tenant, session_id, **params)
    assert response.status_code == 200, response.text
    return [message["seq"] for message in response.json()["data"]]


async def session(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def switch(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, head_seq: int, **headers: str
) -> httpx.Response:
    return await client.patch(
        f"/v1/sessions/{session_id}",
        json={"head_seq": head_seq},
        headers={**tenant.headers, **headers},
    )


async def edited_chat(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """1 question, 2 answer, 3 regenerated answer (parent 1), 4 edited question (parent 0),
    5 its answer: the active branch is 4, 5."""
    session_id = await new_session(client, tenant)
    await say(client, tenant, session_id, "What is the capital of Portugal?")
    await say(client, tenant, session_id, "Porto.", role="assistant")
    await say(client, tenant, session_id, "Lisbon.", role="assistant", parent_seq=1)
    await say(client, tenant, session_id, "Capital of Spain?", parent_seq=0)
    await say(client, tenant, session_id, "Madrid.", role="assistant")
    return session_id


async def test_a_session_that_never_branched_is_one_line_with_its_head_at_the_last_seq(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    assert (await session(client, tenant, session_id))["head_seq"] == 0
    stored = [await say(client, tenant, session_id, f"m{n}") for n in range(1, 4)]
    assert [(m["seq"], m["parent_seq"]) for m in stored] == [(1, 0), (2, 1), (3, 2)]
    assert (await session(client, tenant, session_id))["head_seq"] == 3
    assert await seqs(client, tenant, session_id) == [1, 2, 3]
    assert await seqs(client, tenant, session_id, order="desc", limit=2) == [3, 2]


async def test_regenerate_and_edit_make_branches_and_the_newest_is_active(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)

    assert await seqs(client, tenant, session_id) == [4, 5]
    assert await seqs(client, tenant, session_id, branch="active") == [4, 5]
    assert await seqs(client, tenant, session_id, branch="all") == [1, 2, 3, 4, 5]
    assert await seqs(client, tenant, session_id, leaf_seq=3) == [1, 3]
    assert await seqs(client, tenant, session_id, leaf_seq=2, order="desc") == [2, 1]
    # The alternatives at each point: "< 1/2 >" and "< 1/2 >".
    assert await seqs(client, tenant, session_id, parent_seq=0) == [1, 4]
    assert await seqs(client, tenant, session_id, parent_seq=1) == [2, 3]
    assert await seqs(client, tenant, session_id, parent_seq=5) == []
    listed = (await read(client, tenant, session_id, branch="all")).json()["data"]
    assert [m["parent_seq"] for m in listed] == [0, 1, 1, 0, 4]
    found = await session(client, tenant, session_id)
    # Every branch counts.
    assert (found["head_seq"], found["message_count"]) == (5, 5)


async def test_a_batch_takes_the_parent_and_chains(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await say(client, tenant, session_id, "q")
    await say(client, tenant, session_id, "a", role="assistant")
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={
            "parent_seq": 1,
            "messages": [
                {"role": "assistant", "content": "calling", "tool_calls": [{"id": "c1"}]},
                {"role": "tool", "content": "42", "tool_call_id": "c1"},
                {"role": "assistant", "content": "It is 42."},
            ],
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    assert [(m["seq"], m["parent_seq"]) for m in response.json()["data"]] == [
        (3, 1),
        (4, 3),
        (5, 4),
    ]
    assert await seqs(client, tenant, session_id) == [1, 3, 4, 5]
    assert (await session(client, tenant, session_id))["head_seq"] == 5


async def test_switching_the_head_goes_to_the_newest_message_under_it_and_appends_follow(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    before = await session(client, tenant, session_id)

    response = await switch(client, tenant, session_id, 1)
    assert response.status_code == 200, response.text
    switched = response.json()
    # 1's descendants are 2 and 3; 3 was appended last.
    assert switched["head_seq"] == 3
    assert switched["version"] == before["version"] + 1
    assert response.headers["etag"] == f'"{switched["version"]}"'
    assert await seqs(client, tenant, session_id) == [1, 3]
    assert await seqs(client, tenant, session_id, leaf_seq=5) == [4, 5]

    # The next turn continues the branch shown.
    follow = await say(client, tenant, session_id, "And of Spain?")
    assert (follow["seq"], follow["parent_seq"]) == (6, 3)
    assert await seqs(client, tenant, session_id) == [1, 3, 6]

    assert (await switch(client, tenant, session_id, 2)).json()["head_seq"] == 2
    assert await seqs(client, tenant, session_id) == [1, 2]
    # 0: the root, under which the newest message of all is.
    assert (await switch(client, tenant, session_id, 0)).json()["head_seq"] == 6


async def test_switching_is_guarded_by_if_match_and_a_no_move_keeps_the_version(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    version = (await session(client, tenant, session_id))["version"]

    stale = await switch(client, tenant, session_id, 2, **{"If-Match": f'"{version - 1}"'})
    assert_problem(stale, 412)
    assert (await session(client, tenant, session_id))["head_seq"] == 5

    same = await switch(client, tenant, session_id, 4, **{"If-Match": f'"{version}"'})
    assert same.status_code == 200, same.text
    assert (same.json()["head_seq"], same.json()["version"]) == (5, version)


async def test_truncation_and_pop_move_the_head_to_its_nearest_remaining_ancestor(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    for n in range(1, 5):  # 1..4 in one line
        await say(client, tenant, session_id, f"m{n}")
    await say(client, tenant, session_id, "regenerated", parent_seq=2)  # 5, under 2
    await say(client, tenant, session_id, "more")  # 6, under 5

    truncated = await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 4}, headers=tenant.headers
    )
    assert truncated.json() == {"deleted": 2}
    found = await session(client, tenant, session_id)
    assert found["head_seq"] == 2
    assert await seqs(client, tenant, session_id) == [1, 2]
    # What remains is one line again, and appends go on from the head.
    nxt = await say(client, tenant, session_id, "after")
    assert (nxt["seq"], nxt["parent_seq"]) == (5, 2)

    popped = await client.delete(f"/v1/sessions/{session_id}/messages/last", headers=tenant.headers)
    assert popped.json()["seq"] == 5
    assert (await session(client, tenant, session_id))["head_seq"] == 2
    assert await seqs(client, tenant, session_id, branch="all") == [1, 2, 3, 4]


async def test_a_pop_of_a_message_off_the_active_branch_keeps_the_head(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    assert (await switch(client, tenant, session_id, 2)).json()["head_seq"] == 2
    popped = await client.delete(f"/v1/sessions/{session_id}/messages/last", headers=tenant.headers)
    assert popped.json()["seq"] == 5
    assert (await session(client, tenant, session_id))["head_seq"] == 2
    assert await seqs(client, tenant, session_id) == [1, 2]


async def test_context_follows_the_active_branch(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    await say(client, tenant, session_id, "Be brief.", role="system")
    await say(client, tenant, session_id, "q")
    await say(client, tenant, session_id, "first answer", role="assistant")
    await say(client, tenant, session_id, "second answer", role="assistant", parent_seq=2)

    async def context(**params: Any) -> list[str]:
        response = await client.get(
            f"/v1/sessions/{session_id}/context", params=params, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        return [message["content"] for message in response.json()["messages"]]

    assert await context() == ["Be brief.", "q", "second answer"]
    assert await context(max_messages=2) == ["Be brief.", "second answer"]
    await switch(client, tenant, session_id, 3)
    assert await context() == ["Be brief.", "q", "first answer"]


async def test_search_finds_messages_of_every_branch(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    response = await client.get("/v1/search", params={"q": "Porto"}, headers=tenant.headers)
    assert [hit["seq"] for hit in response.json()["data"]] == [2]
    assert session_id == response.json()["data"][0]["session_id"]


async def test_an_idempotent_replay_of_a_branching_append_stores_nothing_new(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    body = {"role": "assistant", "content": "Lisboa.", "parent_seq": 1}
    headers = {**tenant.headers, "Idempotency-Key": "regen-1"}
    url = f"/v1/sessions/{session_id}/messages"
    first = await client.post(url, json=body, headers=headers)
    again = await client.post(url, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert first.json()["parent_seq"] == 1
    other_parent = await client.post(url, json={**body, "parent_seq": 0}, headers=headers)
    assert_problem(other_parent, 409)
    assert await seqs(client, tenant, session_id, parent_seq=1) == [2, 3, 6]


async def test_expected_last_seq_is_the_highest_seq_whatever_the_branch(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    await switch(client, tenant, session_id, 2)
    url = f"/v1/sessions/{session_id}/messages"
    stale = await client.post(
        url,
        params={"expected_last_seq": 2},
        json={"role": "user", "content": "x"},
        headers=tenant.headers,
    )
    assert_problem(stale, 412)
    fresh = await client.post(
        url,
        params={"expected_last_seq": 5},
        json={"role": "user", "content": "x"},
        headers=tenant.headers,
    )
    assert (fresh.json()["seq"], fresh.json()["parent_seq"]) == (6, 2)


@pytest.mark.parametrize(
    "request_",
    [
        ("post", "/messages", {"json": {"role": "user", "content": "x", "parent_seq": 9}}),
        ("post", "/messages", {"json": {"role": "user", "content": "x", "parent_seq": 6}}),
        ("post", "/messages", {"json": {"role": "user", "content": "x", "parent_seq": -1}}),
        (
            "post",
            "/messages/batch",
            {"json": {"parent_seq": 7, "messages": [{"role": "user", "content": "x"}]}},
        ),
        ("patch", "", {"json": {"head_seq": 9}}),
        ("patch", "", {"json": {"head_seq": -1}}),
        ("patch", "", {"json": {"head_seq": "2"}}),
        ("get", "/messages", {"params": {"branch": "all", "leaf_seq": 2}}),
        ("get", "/messages", {"params": {"branch": "all", "parent_seq": 2}}),
        ("get", "/messages", {"params": {"leaf_seq": 2, "parent_seq": 1}}),
        ("get", "/messages", {"params": {"leaf_seq": 9}}),
        ("get", "/messages", {"params": {"parent_seq": 9}}),
        ("get", "/messages", {"params": {"branch": "main"}}),
    ],
)
async def test_bad_branch_input_is_a_400_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, request_: Any
) -> None:
    session_id = await edited_chat(client, tenant)
    before = await everything_stored(database)
    method, path, arguments = request_
    response = await client.request(
        method, f"/v1/sessions/{session_id}{path}", headers=tenant.headers, **arguments
    )
    assert_problem(response, 400)
    assert await everything_stored(database) == before
    assert (await session(client, tenant, session_id))["head_seq"] == 5


async def test_a_cursor_from_one_branch_is_refused_on_another(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    page = (await read(client, tenant, session_id, branch="all", limit=2)).json()
    assert page["next_cursor"] is not None
    for params in ({}, {"leaf_seq": 3}, {"parent_seq": 0}):
        response = await read(
            client, tenant, session_id, cursor=page["next_cursor"], limit=2, **params
        )
        assert_problem(response, 400)
    leaf_page = (await read(client, tenant, session_id, leaf_seq=3, limit=1)).json()
    response = await read(
        client, tenant, session_id, leaf_seq=2, cursor=leaf_page["next_cursor"], limit=1
    )
    assert_problem(response, 400)


def path_to(parents: dict[int, int], leaf: int) -> list[int]:
    path = []
    while leaf:
        path.append(leaf)
        leaf = parents[leaf]
    return path[::-1]


async def pages(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, **params: Any
) -> list[int]:
    """Every page of a listing, followed by its cursors."""
    found: list[int] = []
    cursor = None
    while True:
        response = await read(
            client, tenant, session_id, **params, **({"cursor": cursor} if cursor else {})
        )
        assert response.status_code == 200, response.text
        found += [message["seq"] for message in response.json()["data"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found


async def test_pages_of_a_branch_in_both_orders_with_filters_match_its_path(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """A tree grown at random (a branch off an earlier message now and then, a head switched
    back now and then): every way of paging a branch gives exactly its path."""
    rng = random.Random(15)
    session_id = await new_session(client, tenant)
    parents: dict[int, int] = {}
    head = 0
    for seq in range(1, 61):
        fields: dict[str, Any] = {"role": "user" if seq % 2 else "assistant"}
        if seq > 3 and rng.random() < 0.2:
            fields["parent_seq"] = rng.randrange(0, seq)
        stored = await say(client, tenant, session_id, f"m{seq}", **fields)
        assert stored["seq"] == seq
        parents[seq] = fields.get("parent_seq", head)
        assert stored["parent_seq"] == parents[seq]
        head = seq
        if rng.random() < 0.05:
            head = (await switch(client, tenant, session_id, rng.randrange(1, seq))).json()[
                "head_seq"
            ]
    assert (await session(client, tenant, session_id))["head_seq"] == head

    for leaf in (head, 60, 37, 5):
        path = path_to(parents, leaf)
        params: dict[str, Any] = {} if leaf == head else {"leaf_seq": leaf}
        assert await pages(client, tenant, session_id, limit=7, **params) == path
        assert (
            await pages(client, tenant, session_id, limit=7, order="desc", **params) == path[::-1]
        )
        low, high = 10, 50
        inside = [seq for seq in path if low < seq < high]
        assert (
            await pages(
                client, tenant, session_id, limit=3, after_seq=low, before_seq=high, **params
            )
            == inside
        )
        assert (
            await pages(
                client,
                tenant,
                session_id,
                limit=3,
                order="desc",
                after_seq=low,
                before_seq=high,
                **params,
            )
            == inside[::-1]
        )
        users = [seq for seq in path if seq % 2]
        assert (
            await pages(client, tenant, session_id, limit=4, role="user", order="desc", **params)
            == users[::-1]
        )
    children = {parent: [s for s, p in parents.items() if p == parent] for parent in (0, 3, 10)}
    for parent, expected in children.items():
        assert await pages(client, tenant, session_id, limit=2, parent_seq=parent) == expected
    assert await pages(client, tenant, session_id, limit=9, branch="all") == list(range(1, 61))


async def test_deleting_a_conversation_item_hands_its_children_to_its_parent(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)
    second = (await read(client, tenant, session_id, leaf_seq=3)).json()["data"]
    first_id = second[0]["id"]
    response = await client.delete(
        f"/v1/conversations/{session_id}/items/{first_id}", headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    listed = (await read(client, tenant, session_id, branch="all")).json()["data"]
    assert [(m["seq"], m["parent_seq"]) for m in listed] == [(2, 0), (3, 0), (4, 0), (5, 4)]
    assert await seqs(client, tenant, session_id, leaf_seq=3) == [3]
    assert await seqs(client, tenant, session_id) == [4, 5]


async def test_a_head_switched_back_stays_the_end_of_the_branch_after_a_truncation(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    for n in range(1, 6):  # 1..5 in one line
        await say(client, tenant, session_id, f"m{n}")
    await say(client, tenant, session_id, "regenerated", parent_seq=4)  # 6, a branch at 4
    assert (await switch(client, tenant, session_id, 3)).json()["head_seq"] == 6
    assert (await switch(client, tenant, session_id, 5)).json()["head_seq"] == 5
    await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 5}, headers=tenant.headers
    )
    # One line again (1..5), its head at its end.
    assert await seqs(client, tenant, session_id) == [1, 2, 3, 4, 5]
    await say(client, tenant, session_id, "six", parent_seq=2)
    assert await seqs(client, tenant, session_id) == [1, 2, 6]
    assert (await switch(client, tenant, session_id, 3)).json()["head_seq"] == 5
    await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 4}, headers=tenant.headers
    )
    # 1..4 remain, one line, but the head went back to 4's ancestor on its branch: 4 itself.
    assert (await session(client, tenant, session_id))["head_seq"] == 4
    assert await seqs(client, tenant, session_id) == [1, 2, 3, 4]


async def test_concurrent_appends_on_branches_keep_seqs_gapless_and_parents_real(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await edited_chat(client, tenant)

    async def one(n: int) -> dict[str, Any]:
        fields: dict[str, Any] = {"parent_seq": n % 3} if n % 2 else {}
        return await say(client, tenant, session_id, f"c{n}", **fields)

    stored = await asyncio.gather(*(one(n) for n in range(20)))
    assert sorted(m["seq"] for m in stored) == list(range(6, 26))
    listed = (await read(client, tenant, session_id, branch="all")).json()["data"]
    seqs_held = {0} | {m["seq"] for m in listed}
    assert all(m["parent_seq"] in seqs_held and m["parent_seq"] < m["seq"] for m in listed)
    found = await session(client, tenant, session_id)
    assert (found["message_count"], found["head_seq"]) == (25, 25)
    # The active branch is the last append's path to the root.
    parents = {m["seq"]: m["parent_seq"] for m in listed}
    assert await seqs(client, tenant, session_id) == path_to(parents, 25)
