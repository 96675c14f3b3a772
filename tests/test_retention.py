"""Retention: each tenant's `retention_days` and `max_sessions`, applied by
`chat_sessions.retention.run_cleanup` and by its background loop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from chat_sessions import retention
from chat_sessions.db import Database
from chat_sessions.models import sessions
from chat_sessions.retention import TenantCleanup, cleanup_periodically, run_cleanup
from support import Tenant, count_rows, create_tenant

NOW = datetime.now(UTC)


async def new_session(
    client: httpx.AsyncClient, tenant: Tenant, *, messages: int = 2, **fields: Any
) -> str:
    response = await client.post("/v1/sessions", json=fields, headers=tenant.headers)
    assert response.status_code == 201, response.text
    session_id = str(response.json()["id"])
    if messages:
        response = await client.post(
            f"/v1/sessions/{session_id}/messages/batch",
            json={"messages": [{"role": "user", "content": f"m{n}"} for n in range(messages)]},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
    response = await client.post(
        f"/v1/sessions/{session_id}/tool-calls",
        json={"tool_call_id": "call_1", "tool_name": "search"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return session_id


async def last_active(database: Database, session_id: str, when: datetime) -> None:
    """Make a session look as if its last activity was at `when`."""
    async with database.transaction() as tx:
        await tx.execute(
            update(sessions).where(sessions.c.id == session_id).values(updated_at=when)
        )


async def idle_session(
    client: httpx.AsyncClient, database: Database, tenant: Tenant, days: float
) -> str:
    session_id = await new_session(client, tenant)
    await last_active(database, session_id, NOW - timedelta(days=days))
    return session_id


async def exists(database: Database, session_id: str) -> bool:
    return await count_rows(database, "sessions", "id = :id", id=session_id) == 1


async def children(database: Database, session_id: str) -> tuple[int, int]:
    return (
        await count_rows(database, "messages", "session_id = :id", id=session_id),
        await count_rows(database, "tool_calls", "session_id = :id", id=session_id),
    )


def counts(results: list[TenantCleanup]) -> dict[str, tuple[int, int]]:
    return {entry.tenant_name: (entry.idle, entry.over_limit) for entry in results}


# --- retention_days -------------------------------------------------------------------------


async def test_retention_days_deletes_sessions_idle_longer_and_keeps_recent_ones(
    client: httpx.AsyncClient, database: Database
) -> None:
    tenant = await create_tenant(client, "thirty-days", retention_days=30)
    old = [await idle_session(client, database, tenant, days) for days in (31, 45, 400)]
    recent = [await idle_session(client, database, tenant, days) for days in (29, 1)]
    fresh = await new_session(client, tenant)

    results = await run_cleanup(database)

    assert counts(results) == {"thirty-days": (3, 0)}
    assert [results[0].tenant_id] == [tenant.id]
    for session_id in old:
        assert not await exists(database, session_id)
    for session_id in [*recent, fresh]:
        assert await exists(database, session_id)


async def test_retention_removes_the_messages_and_tool_calls_of_deleted_sessions(
    client: httpx.AsyncClient, database: Database
) -> None:
    tenant = await create_tenant(client, "short", retention_days=7)
    old = await idle_session(client, database, tenant, 8)
    kept = await idle_session(client, database, tenant, 6)
    assert await children(database, old) == (2, 1)

    await run_cleanup(database)

    assert await children(database, old) == (0, 0)
    assert await children(database, kept) == (2, 1)


async def test_a_session_active_again_is_not_idle(
    client: httpx.AsyncClient, database: Database
) -> None:
    tenant = await create_tenant(client, "revived", retention_days=10)
    session_id = await idle_session(client, database, tenant, 20)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "I'm back"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text

    results = await run_cleanup(database)

    assert counts(results) == {"revived": (0, 0)}
    assert await exists(database, session_id)


# --- max_sessions ---------------------------------------------------------------------------


async def test_max_sessions_deletes_the_least_recently_active_beyond_the_limit(
    client: httpx.AsyncClient, database: Database
) -> None:
    tenant = await create_tenant(client, "capped", max_sessions=2)
    # Created in this order, but active in another: activity decides, not creation.
    first, second, third, fourth = [await new_session(client, tenant) for _ in range(4)]
    await last_active(database, first, NOW - timedelta(minutes=1))
    await last_active(database, second, NOW - timedelta(hours=3))
    await last_active(database, third, NOW - timedelta(hours=1))
    await last_active(database, fourth, NOW - timedelta(hours=2))

    results = await run_cleanup(database)

    assert counts(results) == {"capped": (0, 2)}
    assert [await exists(database, s) for s in (first, second, third, fourth)] == [
        True,
        False,
        True,
        False,
    ]
    assert await children(database, second) == (0, 0)
    assert await children(database, fourth) == (0, 0)


async def test_max_sessions_deletes_nothing_at_or_below_the_limit(
    client: httpx.AsyncClient, database: Database
) -> None:
    tenant = await create_tenant(client, "roomy", max_sessions=3)
    kept = [await new_session(client, tenant) for _ in range(3)]

    results = await run_cleanup(database)

    assert counts(results) == {"roomy": (0, 0)}
    for session_id in kept:
        assert await exists(database, session_id)


async def test_max_sessions_deletes_in_batches_beyond_one_batch(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    tenant = await create_tenant(client, "batched", max_sessions=2, retention_days=5)
    idle = [await idle_session(client, database, tenant, 6 + n) for n in range(5)]
    active = [await new_session(client, tenant, messages=0) for _ in range(7)]
    for minutes, session_id in enumerate(active):
        await last_active(database, session_id, NOW - timedelta(minutes=60 - minutes))

    results = await run_cleanup(database)

    assert counts(results) == {"batched": (5, 5)}
    assert await count_rows(database, "sessions") == 2
    for session_id in idle + active[:5]:
        assert not await exists(database, session_id)
    for session_id in active[5:]:
        assert await exists(database, session_id)


# --- both rules, dry run --------------------------------------------------------------------


async def test_dry_run_deletes_nothing_and_reports_what_the_real_run_then_deletes(
    client: httpx.AsyncClient, database: Database
) -> None:
    tenant = await create_tenant(client, "both", retention_days=30, max_sessions=2)
    idle = [await idle_session(client, database, tenant, 40) for _ in range(2)]
    active = [await idle_session(client, database, tenant, days) for days in (3, 2, 1)]
    other = await create_tenant(client, "only-cap", max_sessions=1)
    other_sessions = [await new_session(client, other) for _ in range(3)]
    before = (
        await count_rows(database, "sessions"),
        await count_rows(database, "messages"),
        await count_rows(database, "tool_calls"),
    )

    planned = await run_cleanup(database, dry_run=True)

    assert counts(planned) == {"both": (2, 1), "only-cap": (0, 2)}
    after_dry_run = (
        await count_rows(database, "sessions"),
        await count_rows(database, "messages"),
        await count_rows(database, "tool_calls"),
    )
    assert after_dry_run == before
    assert "would delete 3" in planned[0].describe(dry_run=True)

    done = await run_cleanup(database)

    assert counts(done) == counts(planned)
    for session_id in [*idle, active[0]]:
        assert not await exists(database, session_id)
    for session_id in active[1:]:
        assert await exists(database, session_id)
    assert await count_rows(database, "sessions", "tenant_id = :t", t=other.id) == 1
    assert await exists(database, other_sessions[-1])


# --- tenants apart --------------------------------------------------------------------------


async def test_tenants_without_rules_are_untouched_and_not_reported(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    ancient = [await idle_session(client, database, tenant, 3650) for _ in range(3)]

    assert await run_cleanup(database) == []
    assert await run_cleanup(database, dry_run=True) == []
    for session_id in ancient:
        assert await exists(database, session_id)
        assert await children(database, session_id) == (2, 1)


async def test_one_tenants_rules_never_touch_another_tenants_sessions(
    client: httpx.AsyncClient, database: Database, tenant: Tenant
) -> None:
    strict = await create_tenant(client, "strict", retention_days=1, max_sessions=1)
    lenient = await create_tenant(client, "lenient", retention_days=365)
    unruled = [await idle_session(client, database, tenant, 100) for _ in range(3)]
    lenient_sessions = [await idle_session(client, database, lenient, 100) for _ in range(3)]
    strict_old = await idle_session(client, database, strict, 2)
    strict_kept = await new_session(client, strict)

    results = await run_cleanup(database)

    assert counts(results) == {"lenient": (0, 0), "strict": (1, 0)}
    assert not await exists(database, strict_old)
    assert await exists(database, strict_kept)
    for session_id in unruled + lenient_sessions:
        assert await exists(database, session_id)
        assert await children(database, session_id) == (2, 1)


# --- the background loop --------------------------------------------------------------------


class Rounds:
    """The loop's `sleep`: counts the waits between rounds, runs `between` (the round number
    that just ended) before each, and ends the loop as the lifespan does (cancelling it)
    once `rounds` rounds have run. No time passes."""

    def __init__(self, rounds: int, between: Any = None) -> None:
        self.rounds = rounds
        self.between = between
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        done = len(self.waits)
        self.waits.append(seconds)
        if done and self.between is not None:
            await self.between(done)
        if done == self.rounds:
            raise asyncio.CancelledError


async def test_the_background_loop_applies_the_rules_until_cancelled(
    client: httpx.AsyncClient, database: Database
) -> None:
    tenant = await create_tenant(client, "looped", retention_days=1)
    first = await idle_session(client, database, tenant, 2)
    later: list[str] = []

    async def between(round_number: int) -> None:
        if round_number == 1:
            assert not await exists(database, first)
            assert await children(database, first) == (0, 0)
            # it keeps going: a session that goes idle later goes in a later round
            later.append(await idle_session(client, database, tenant, 3))
        else:
            assert not await exists(database, later[0])

    rounds = Rounds(2, between)
    with pytest.raises(asyncio.CancelledError):
        await cleanup_periodically(database, 3600.0, sleep=rounds)
    assert rounds.waits == [3600.0] * 3


async def test_the_background_loop_survives_a_failed_round(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await create_tenant(client, "flaky", retention_days=1)
    session_id = await idle_session(client, database, tenant, 2)
    calls = 0

    async def failing_once(database: Database, *, dry_run: bool = False) -> list[TenantCleanup]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return await run_cleanup(database, dry_run=dry_run)

    monkeypatch.setattr(retention, "run_cleanup", failing_once)
    with pytest.raises(asyncio.CancelledError):
        await cleanup_periodically(database, 60.0, sleep=Rounds(2))
    assert calls == 2
    assert not await exists(database, session_id)
