"""Full-text search over HTTP: words find messages, best match first, filters, limits, bad
queries, tenancy, deletions, and the messages stored before the search migration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import Litestar
from sqlalchemy import bindparam, text

from chat_sessions.app import create_app
from chat_sessions.db import Database
from chat_sessions.models import UTCDateTime
from chat_sessions.search.indexer import SearchIndexer
from support import (
    ADMIN,
    Tenant,
    append,
    count_rows,
    new_session,
)

HIT_FIELDS = {"session_id", "message_id", "seq", "role", "snippet", "score"}


async def search(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> httpx.Response:
    return await client.get("/v1/search", params=params, headers=tenant.headers)


async def hits(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await search(client, tenant, **params)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert isinstance(data, list)
    return data


def message_ids(found: list[dict[str, Any]]) -> set[str]:
    return {hit["message_id"] for hit in found}


# --- finding --------------------------------------------------------------------------------


async def test_search_finds_messages_containing_the_word_and_describes_each_hit(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "Good morning, how can I help?", role="assistant")
    wanted = await append(client, tenant, session_id, "Please book a hotel in Lisbon for May")
    await append(client, tenant, session_id, "Sure, which dates?", role="assistant")

    found = await hits(client, tenant, q="lisbon")

    assert len(found) == 1
    hit = found[0]
    assert set(hit) >= HIT_FIELDS
    assert hit["session_id"] == session_id
    assert hit["message_id"] == wanted["id"]
    assert hit["seq"] == wanted["seq"] == 2
    assert hit["role"] == "user"
    assert "lisbon" in hit["snippet"].lower()
    assert isinstance(hit["score"], int | float)


async def test_search_ignores_letter_case(client: httpx.AsyncClient, tenant: Tenant) -> None:
    session_id = await new_session(client, tenant)
    wanted = await append(client, tenant, session_id, "Flights to LISBON are cheap")

    assert message_ids(await hits(client, tenant, q="Lisbon")) == {wanted["id"]}
    assert message_ids(await hits(client, tenant, q="lIsBoN")) == {wanted["id"]}


async def test_search_needs_every_word_of_the_query(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    both = await append(client, tenant, session_id, "a cheap hotel near the river")
    await append(client, tenant, session_id, "the hotel was expensive")
    await append(client, tenant, session_id, "cheap flights only")

    assert message_ids(await hits(client, tenant, q="cheap hotel")) == {both["id"]}
    assert message_ids(await hits(client, tenant, q="hotel")) != {both["id"]}


async def test_search_returns_the_best_match_first_with_scores_in_order(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    weak = await append(
        client,
        tenant,
        session_id,
        "we talked about weather food music films books travel plans and once about porto",
    )
    strong = await append(client, tenant, session_id, "porto porto porto")
    middle = await append(client, tenant, session_id, "porto wine tasting in porto old town")

    found = await hits(client, tenant, q="porto")

    assert [hit["message_id"] for hit in found] == [strong["id"], middle["id"], weak["id"]]
    scores = [hit["score"] for hit in found]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]


async def test_search_snippet_shows_the_matched_word_of_a_long_message(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    filler = " ".join(f"filler{n}" for n in range(200))
    await append(client, tenant, session_id, f"{filler} zanzibar {filler}")

    (hit,) = await hits(client, tenant, q="zanzibar")

    assert "zanzibar" in hit["snippet"]
    assert len(hit["snippet"]) < len(filler)


async def test_search_finds_nothing_for_a_word_no_message_contains(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "hello there")

    assert await hits(client, tenant, q="goodbye") == []


# --- filters and limit ----------------------------------------------------------------------


async def test_search_filters_by_session_user_and_role(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    alice_1 = await new_session(client, tenant, user_id="alice")
    alice_2 = await new_session(client, tenant, user_id="alice")
    bob = await new_session(client, tenant, user_id="bob")
    a1_user = await append(client, tenant, alice_1, "invoice question")
    a1_bot = await append(client, tenant, alice_1, "your invoice is attached", role="assistant")
    a2_user = await append(client, tenant, alice_2, "another invoice please")
    b_user = await append(client, tenant, bob, "bob's invoice")

    everything = {a1_user["id"], a1_bot["id"], a2_user["id"], b_user["id"]}
    assert message_ids(await hits(client, tenant, q="invoice")) == everything
    assert message_ids(await hits(client, tenant, q="invoice", session_id=alice_1)) == {
        a1_user["id"],
        a1_bot["id"],
    }
    assert message_ids(await hits(client, tenant, q="invoice", user_id="alice")) == {
        a1_user["id"],
        a1_bot["id"],
        a2_user["id"],
    }
    assert message_ids(await hits(client, tenant, q="invoice", user_id="bob")) == {b_user["id"]}
    assert message_ids(await hits(client, tenant, q="invoice", role="assistant")) == {a1_bot["id"]}
    assert message_ids(
        await hits(client, tenant, q="invoice", user_id="alice", role="user", session_id=alice_2)
    ) == {a2_user["id"]}
    assert await hits(client, tenant, q="invoice", user_id="carol") == []


async def test_search_with_an_unknown_role_is_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await search(client, tenant, q="hello", role="wizard")
    assert response.status_code == 400
    assert "detail" in response.json()


async def test_search_limit_caps_the_number_of_hits(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [{"role": "user", "content": f"apple number {n}"} for n in range(30)]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text

    assert len(await hits(client, tenant, q="apple", limit=1)) == 1
    assert len(await hits(client, tenant, q="apple", limit=7)) == 7
    assert len(await hits(client, tenant, q="apple", limit=100)) == 30
    assert len(await hits(client, tenant, q="apple")) == 20  # the default


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", ""])
async def test_search_limit_out_of_range_is_400(
    client: httpx.AsyncClient, tenant: Tenant, limit: str
) -> None:
    response = await search(client, tenant, q="apple", limit=limit)
    assert response.status_code == 400, response.text
    assert "detail" in response.json()


@pytest.mark.parametrize("q", ["", " ", "   \t\n  ", "\u3000", "\x00", "\x00\t\x00", " \x00 \x00"])
async def test_search_with_an_empty_query_is_400(
    client: httpx.AsyncClient, tenant: Tenant, q: str
) -> None:
    response = await search(client, tenant, q=q)
    assert response.status_code == 400, response.text
    assert "detail" in response.json()


async def test_search_without_a_query_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/search", headers=tenant.headers)
    assert response.status_code == 400, response.text
    assert "detail" in response.json()


async def test_search_needs_an_api_key(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/search", params={"q": "hello"})
    assert response.status_code == 401


# --- tenancy and deletions ------------------------------------------------------------------


async def test_search_never_shows_another_tenants_messages(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await new_session(client, tenant, user_id="shared-user")
    await append(client, tenant, theirs, "the launch codes are kumquat")
    mine = await new_session(client, other_tenant, user_id="shared-user")
    own = await append(client, other_tenant, mine, "my own kumquat recipe")

    assert message_ids(await hits(client, other_tenant, q="kumquat")) == {own["id"]}
    assert message_ids(await hits(client, other_tenant, q="launch codes")) == set()
    assert await hits(client, other_tenant, q="kumquat", session_id=theirs) == []
    assert message_ids(await hits(client, other_tenant, q="kumquat", user_id="shared-user")) == {
        own["id"]
    }
    assert len(await hits(client, tenant, q="kumquat")) == 1


async def test_deleted_session_messages_leave_the_results(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    doomed = await new_session(client, tenant)
    kept = await new_session(client, tenant)
    await append(client, tenant, doomed, "papaya smoothie")
    survivor = await append(client, tenant, kept, "papaya salad")

    response = await client.delete(f"/v1/sessions/{doomed}", headers=tenant.headers)
    assert response.status_code == 204

    assert message_ids(await hits(client, tenant, q="papaya")) == {survivor["id"]}
    assert await hits(client, tenant, q="smoothie") == []


async def test_truncated_messages_leave_the_results(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    session_id = await new_session(client, tenant)
    first = await append(client, tenant, session_id, "mango one")
    await append(client, tenant, session_id, "mango two")
    await append(client, tenant, session_id, "mango three")

    response = await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 1}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 2}

    assert message_ids(await hits(client, tenant, q="mango")) == {first["id"]}
    assert await hits(client, tenant, q="three") == []

    replacement = await append(client, tenant, session_id, "mango regenerated")
    assert message_ids(await hits(client, tenant, q="mango")) == {first["id"], replacement["id"]}


@pytest.mark.sqlite_only
async def test_sqlite_indexes_behind_the_writes_yet_every_search_sees_them(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    first = await append(client, tenant, session_id, "kiwi one")
    await append(client, tenant, session_id, "kiwi two")
    assert await count_rows(database, "messages_fts", "messages_fts MATCH 'kiwi'") == 0

    assert len(await hits(client, tenant, q="kiwi")) == 2
    assert await count_rows(database, "messages_fts", "messages_fts MATCH 'kiwi'") == 2

    # Delete the indexed last message: SQLite hands its rowid to the next insert, which must
    # still be indexed, and the deleted text must not come back.
    response = await client.delete(
        f"/v1/sessions/{session_id}/messages", params={"after_seq": 1}, headers=tenant.headers
    )
    assert response.json() == {"deleted": 1}
    replacement = await append(client, tenant, session_id, "lime two")

    assert message_ids(await hits(client, tenant, q="kiwi")) == {first["id"]}
    assert message_ids(await hits(client, tenant, q="lime")) == {replacement["id"]}
    assert message_ids(await hits(client, tenant, q="two")) == {replacement["id"]}


@pytest.mark.sqlite_only
async def test_sqlite_indexes_new_messages_by_itself_in_the_background(
    app: Litestar,
    client: httpx.AsyncClient,
    tenant: Tenant,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SearchIndexer, "SLICE", 3)  # several slices, one after the other
    session_id = await new_session(client, tenant)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [{"role": "user", "content": f"melon {i}"} for i in range(10)]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    melons = ("messages_fts", "messages_fts MATCH 'melon'")
    assert await count_rows(database, *melons) == 0

    async with app.lifespan():
        for _ in range(100):  # the lifespan starts the loop: look until it is done
            await asyncio.sleep(0.05)  # waits for the indexer task to do real work, no clock
            if await count_rows(database, *melons) == 10:
                break
    assert await count_rows(database, *melons) == 10


async def test_erased_users_messages_leave_the_results(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    erased = await new_session(client, tenant, user_id="erase-me")
    kept = await new_session(client, tenant, user_id="keep-me")
    await append(client, tenant, erased, "guava secrets")
    survivor = await append(client, tenant, kept, "guava jam")

    response = await client.delete("/v1/users/erase-me", headers=tenant.headers)
    assert response.status_code == 200, response.text

    assert message_ids(await hits(client, tenant, q="guava")) == {survivor["id"]}
    assert await hits(client, tenant, q="secrets") == []


# --- hostile queries ------------------------------------------------------------------------

QUERY_FRAGMENTS = [
    '"',
    "'",
    '"unbalanced',
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(a b, 2)",
    "*",
    "-",
    "^",
    ":",
    "(",
    ")",
    "{",
    "}",
    "+",
    "content:",
    "messages_fts:",
    "\x00",
    "\\",
    "%",
    "_",
    "&",
    "|",
    "!",
    "<->",
    "'; DROP TABLE messages; --",
    '" OR 1=1 --',
    "/* comment */",
    "); SELECT * FROM tenants; --",
    "lisbon",
    " ",
]

queries = st.lists(
    st.one_of(st.text(max_size=20), st.sampled_from(QUERY_FRAGMENTS)), max_size=12
).map("".join)


def is_blank(query: str) -> bool:
    return not query.replace("\x00", "").strip()


@pytest.fixture
async def searchable(client: httpx.AsyncClient, tenant: Tenant) -> str:
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, 'Lisbon AND "Porto" OR (Faro) NEAR * - ^ : 1=1')
    await append(client, tenant, session_id, "plain words about lisbon trams")
    return session_id


@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=queries)
async def test_any_query_text_answers_200_or_400_for_a_blank_query_never_5xx(
    client: httpx.AsyncClient, tenant: Tenant, searchable: str, q: str
) -> None:
    response = await search(client, tenant, q=q)

    assert response.status_code < 500, response.text
    if is_blank(q):
        assert response.status_code == 400, response.text
    else:
        assert response.status_code == 200, (q, response.text)
        for hit in response.json()["data"]:
            assert set(hit) >= HIT_FIELDS
            assert hit["session_id"] == searchable


# Only characters that are not part of any word: query syntax, quotes, brackets, NUL, space.
noise = st.lists(
    st.sampled_from(['"', "'", "*", "-", "^", ":", "(", ")", "{", "}", "+", "\x00", " ", ";"]),
    max_size=6,
).map("".join)


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=noise, after=noise)
async def test_a_word_wrapped_in_query_syntax_is_still_searched_as_plain_text(
    client: httpx.AsyncClient, tenant: Tenant, searchable: str, before: str, after: str
) -> None:
    found = await hits(client, tenant, q=f"{before}trams{after}")

    assert [hit["seq"] for hit in found] == [2]


# --- messages stored before the search migration --------------------------------------------


async def test_messages_stored_before_the_search_migration_are_found(
    fresh_database: Database,
) -> None:
    database = fresh_database
    await database.migrate("0001")
    now = bindparam("now", datetime.now(UTC), type_=UTCDateTime())
    async with database.transaction() as tx:
        await tx.execute(
            text(
                "INSERT INTO tenants (id, name, created_at) VALUES ('t-old', 'old', :now)"
            ).bindparams(now)
        )
        await tx.execute(
            text(
                "INSERT INTO sessions (id, tenant_id, traits, status, message_count, last_seq,"
                " created_at, updated_at, version)"
                " VALUES ('s-old', 't-old', '{}', 'active', 2, 2, :now, :now, 1)"
            ).bindparams(now)
        )
        for seq, content in ((1, "an old note about quinoa"), (2, "nothing relevant")):
            await tx.execute(
                text(
                    "INSERT INTO messages (id, tenant_id, session_id, seq, role, content,"
                    " created_at) VALUES (:id, 't-old', 's-old', :seq, 'user', :content, :now)"
                ).bindparams(now),
                {"id": f"m-old-{seq}", "seq": seq, "content": content},
            )

    await database.migrate()

    app = create_app(database.settings, database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/v1/admin/tenants/t-old/keys", headers=ADMIN)
        assert response.status_code == 201, response.text
        headers = {"Authorization": f"Bearer {response.json()['api_key']}"}

        response = await client.get("/v1/search", params={"q": "quinoa"}, headers=headers)
        assert response.status_code == 200, response.text
        found = response.json()["data"]
        assert [(hit["message_id"], hit["session_id"], hit["seq"]) for hit in found] == [
            ("m-old-1", "s-old", 1)
        ]

        # and the index keeps up with what comes after the migration
        response = await client.post(
            "/v1/sessions/s-old/messages",
            json={"role": "assistant", "content": "more quinoa"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        response = await client.get("/v1/search", params={"q": "quinoa"}, headers=headers)
        assert {hit["seq"] for hit in response.json()["data"]} == {1, 3}
