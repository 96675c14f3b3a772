"""Export and import keep the message tree: each message's parent and the session's head,
so the imported session reads the same branches; documents from before branches import as
one line."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chat_sessions.db import Database
from support import Tenant, append, assert_problem, new_session
from support import stored as everything_stored


async def export(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def import_(client: httpx.AsyncClient, tenant: Tenant, document: Any) -> httpx.Response:
    return await client.post("/v1/sessions/import", json=document, headers=tenant.headers)


async def tree(client: httpx.AsyncClient, tenant: Tenant, session_id: str) -> dict[str, Any]:
    """What a client sees of the branches: every (seq, parent), the head, the active branch."""

    async def seqs(**params: Any) -> list[Any]:
        response = await client.get(
            f"/v1/sessions/{session_id}/messages", params=params, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        return [(m["seq"], m["parent_seq"], m["content"]) for m in response.json()["data"]]

    session = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    return {
        "all": await seqs(branch="all"),
        "active": await seqs(),
        "head": session.json()["head_seq"],
    }


async def branched(client: httpx.AsyncClient, tenant: Tenant) -> str:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "q")
    await append(client, tenant, session_id, "a1", "assistant")
    await append(client, tenant, session_id, "a2", "assistant", parent_seq=1)
    await append(client, tenant, session_id, "q'", parent_seq=0)
    await client.patch(f"/v1/sessions/{session_id}", json={"head_seq": 2}, headers=tenant.headers)
    return session_id


async def test_an_imported_session_has_the_same_branches_and_head(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    session_id = await branched(client, tenant)
    document = await export(client, tenant, session_id)
    assert document["session"]["head_seq"] == 2
    assert [m["parent_seq"] for m in document["messages"]] == [0, 1, 1, 0]

    response = await import_(client, other_tenant, document)
    assert response.status_code == 201, response.text
    assert await tree(client, other_tenant, response.json()["id"]) == await tree(
        client, tenant, session_id
    )
    # The import goes on branching as the original would.
    imported = response.json()["id"]
    nxt = await append(client, other_tenant, imported, "next")
    assert (nxt["seq"], nxt["parent_seq"]) == (5, 2)


async def test_a_document_from_before_branches_imports_as_one_line(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await branched(client, tenant)
    document = await export(client, tenant, session_id)
    del document["session"]["head_seq"]
    for message in document["messages"]:
        del message["parent_seq"]

    response = await import_(client, tenant, document)
    assert response.status_code == 201, response.text
    imported = await tree(client, tenant, response.json()["id"])
    assert [(seq, parent) for seq, parent, _ in imported["all"]] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert imported["head"] == 4
    assert imported["active"] == imported["all"]


async def test_a_message_left_out_of_an_edited_document_hands_its_place_to_the_one_before(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await branched(client, tenant)
    document = await export(client, tenant, session_id)
    document["messages"] = [m for m in document["messages"] if m["seq"] != 1]
    del document["session"]["head_seq"]  # it named the message left out's child: kept as is

    response = await import_(client, tenant, document)
    assert response.status_code == 201, response.text
    imported = await tree(client, tenant, response.json()["id"])
    assert [(seq, parent) for seq, parent, _ in imported["all"]] == [(2, 0), (3, 2), (4, 0)]
    assert imported["head"] == 4


@pytest.mark.parametrize("parent_seq", [3, 4, -1, "1"])
async def test_a_parent_that_is_not_an_earlier_seq_is_a_400_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, parent_seq: Any
) -> None:
    document = await export(client, tenant, await branched(client, tenant))
    document["messages"][2]["parent_seq"] = parent_seq  # seq 3
    before = await everything_stored(database)
    assert_problem(await import_(client, tenant, document), 400)
    assert await everything_stored(database) == before


async def test_a_head_before_the_last_seq_of_a_one_line_document_is_kept(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    for n in range(3):
        await append(client, tenant, session_id, f"m{n}")
    document = await export(client, tenant, session_id)
    document["session"]["head_seq"] = 2
    response = await import_(client, tenant, document)
    assert response.status_code == 201, response.text
    imported = await tree(client, tenant, response.json()["id"])
    assert imported["head"] == 2
    assert [seq for seq, _, _ in imported["active"]] == [1, 2]
