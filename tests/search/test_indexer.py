"""SQLite's search index keeps up with writes that never pause, and a search never pays for
a large backlog: it indexes at most SearchIndexer.SEARCH_CATCH_UP waiting messages itself,
and sees every message committed before it whenever no more than that are waiting."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.search.indexer import SearchIndexer
from support import Tenant, count_rows, new_session

pytestmark = pytest.mark.sqlite_only


@pytest.fixture(autouse=True)
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices of 10 and a search's share of 50: a few dozen messages show every case."""
    monkeypatch.setattr(SearchIndexer, "SLICE", 10)
    monkeypatch.setattr(SearchIndexer, "SEARCH_CATCH_UP", 50)


class LoopStopped(Exception):
    """Ends the indexer's endless loop in a test."""


async def append_batch(
    client: httpx.AsyncClient, tenant: Tenant, session_id: str, word: str, count: int
) -> None:
    response = await client.post(
        f"/v1/sessions/{session_id}/messages/batch",
        json={"messages": [{"role": "user", "content": f"{word} {i}"} for i in range(count)]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text


async def found_seqs(client: httpx.AsyncClient, tenant: Tenant, word: str) -> list[int]:
    response = await client.get(
        "/v1/search", params={"q": word, "limit": 100}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return sorted(hit["seq"] for hit in response.json()["data"])


async def indexed(database: Database, word: str) -> int:
    return await count_rows(database, "messages_fts", f"messages_fts MATCH '{word}'")


async def test_the_indexer_keeps_up_with_writes_that_never_pause(
    client: httpx.AsyncClient,
    tenant: Tenant,
    database: Database,
) -> None:
    session_id = await new_session(client, tenant)
    waits: list[float] = []
    backlogs: list[int] = []

    async def writers_append_instead_of_sleeping(seconds: float) -> None:
        # Every pause of the loop, however short, sees 7 more messages arrive: no idle time.
        waits.append(seconds)
        if len(waits) == 40:
            raise LoopStopped
        await append_batch(client, tenant, session_id, "pear", 7)
        backlogs.append(await indexer.backlog())

    await append_batch(client, tenant, session_id, "pear", 35)  # a burst first
    indexer = SearchIndexer(database, sleep=writers_append_instead_of_sleeping)
    with pytest.raises(LoopStopped):
        await indexer.run()

    # Slice after slice while behind (no pause: 0 s), a short look once caught up.
    assert waits[:9] == [0.0] * 9
    assert waits[-1] == SearchIndexer.POLL_SECONDS
    assert max(backlogs) <= 35  # the backlog shrinks under the writes, never grows
    assert await indexer.backlog() <= 7
    assert await indexer.backlog() + await indexed(database, "pear") == 35 + 39 * 7


async def test_a_search_first_indexes_a_backlog_of_up_to_its_share_and_sees_all_of_it(
    client: httpx.AsyncClient,
    tenant: Tenant,
    database: Database,
) -> None:
    session_id = await new_session(client, tenant)
    await append_batch(client, tenant, session_id, "plum", 50)
    assert await indexed(database, "plum") == 0  # no background loop runs here

    assert await found_seqs(client, tenant, "plum") == list(range(1, 51))
    assert await SearchIndexer(database).backlog() == 0


async def test_a_search_after_a_larger_burst_indexes_only_its_share_and_the_loop_the_rest(
    client: httpx.AsyncClient,
    tenant: Tenant,
    database: Database,
) -> None:
    session_id = await new_session(client, tenant)
    await append_batch(client, tenant, session_id, "plum", 80)

    # The search's own work is bounded: the oldest 50 are indexed and found, the rest wait.
    assert await found_seqs(client, tenant, "plum") == list(range(1, 51))
    indexer = SearchIndexer(database)
    assert await indexer.backlog() == 30
    assert await indexed(database, "plum") == 50

    steps = [await indexer.step() for _ in range(3)]  # 10 + 10 + the last 10, then a pause
    assert steps == [0.0, 0.0, SearchIndexer.POLL_SECONDS]
    assert await found_seqs(client, tenant, "plum") == list(range(1, 81))


async def test_a_failing_slice_is_logged_and_retried_later_with_nothing_lost(
    client: httpx.AsyncClient,
    tenant: Tenant,
    database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session_id = await new_session(client, tenant)
    await append_batch(client, tenant, session_id, "fig", 5)
    indexer = SearchIndexer(database)
    async with database.transaction() as tx:  # the index's table gone: every slice fails
        await tx.execute(text("ALTER TABLE messages_fts RENAME TO messages_fts_away"))

    assert await indexer.step() == SearchIndexer.RETRY_SECONDS
    assert "search indexing failed" in caplog.text
    assert await indexer.backlog() == 5

    async with database.transaction() as tx:
        await tx.execute(text("ALTER TABLE messages_fts_away RENAME TO messages_fts"))
    assert await indexer.step() == SearchIndexer.POLL_SECONDS  # one slice did all five
    assert await indexer.backlog() == 0
    assert await indexed(database, "fig") == 5
