"""PostgreSQL: a backend terminated (`pg_terminate_backend`, what a failover or an operator does)
fails no read and no write that had not reached the server; only a write in flight fails, with a
503. The terminations are made at precise moments: between a read's statements, before a
write's first statement, at a read's COMMIT, between a write's statements, before a
one-statement append (which runs in autocommit: messages/append.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat_sessions.db import Database
from chat_sessions.db.postgres import _PostgresTransaction
from chat_sessions.settings import Settings
from support import Tenant, append, count_rows, new_session

pytestmark = [
    pytest.mark.postgres_only,
]

# pg_terminate_backend's timeout: it returns once the backend has exited, so the next
# statement on that connection certainly finds it dead.
_TERMINATE_ONE = "SELECT pg_terminate_backend(:pid, 5000)"
_TERMINATE_ALL = (
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name <> 'test-killer'"
)


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """Connections of their own, which the terminations spare."""
    engine = create_async_engine(
        settings.sqlalchemy_url,
        isolation_level="AUTOCOMMIT",
        connect_args={"server_settings": {"application_name": "test-killer"}},
    )
    yield engine
    await engine.dispose()


async def _terminate_all(admin: AsyncEngine) -> int:
    """What a server restart does to the service's pool; the number of backends terminated."""
    async with admin.connect() as connection:
        return int((await connection.execute(text(_TERMINATE_ALL))).scalar_one())


def patch_statements(
    monkeypatch: pytest.MonkeyPatch, around: Callable[[Any, str, Awaitable[Any]], Awaitable[Any]]
) -> None:
    """Route every statement a transaction runs (`execute`, `run`, `run_alone`) through
    `around(tx, method name, the statement's work)`, once a statement: a write's `run` goes
    through `execute`, which is then not counted again."""
    for name in ("execute", "run", "run_alone"):
        original = getattr(_PostgresTransaction, name)

        async def statement(
            tx: Any,
            what: Any,
            parameters: Any = None,
            *,
            _original: Any = original,
            _name: str = name,
        ) -> Any:
            if tx.__dict__.get("in_statement"):
                return await _original(tx, what, parameters)
            tx.in_statement = True
            try:
                return await around(tx, _name, _original(tx, what, parameters))
            finally:
                tx.in_statement = False

        monkeypatch.setattr(_PostgresTransaction, name, statement)


class Killer:
    """Terminates the backend of one transaction's connection at a chosen moment: just before
    its statement number `before` (0: before the first, when it holds no connection yet - then
    every pooled connection is terminated), or before its COMMIT (`before=None`)."""

    def __init__(self, admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.admin = admin
        self.target: tuple[bool, int | None] | None = None
        self.kills = 0
        finish = _PostgresTransaction.finish
        killer = self

        async def killing_statement(tx: Any, _: str, work: Awaitable[Any]) -> Any:
            done = tx.__dict__.get("statements_done", 0)
            tx.statements_done = done + 1
            try:
                await killer._maybe_kill(tx, done)
            except BaseException:
                work.close()  # type: ignore[attr-defined]
                raise
            return await work

        async def killing_finish(tx: Any, commit: bool) -> None:
            if commit:
                await killer._maybe_kill(tx, None)
            await finish(tx, commit)

        patch_statements(monkeypatch, killing_statement)
        monkeypatch.setattr(_PostgresTransaction, "finish", killing_finish)

    def arm(self, *, write: bool, before: int | None) -> None:
        self.target = (write, before)

    async def _maybe_kill(self, tx: Any, moment: int | None) -> None:
        if self.target != (tx._write, moment):
            return
        self.target = None
        self.kills += 1
        if tx._lease is None:
            assert await _terminate_all(self.admin) >= 1
            return
        pid = tx._lease.driver.get_server_pid()
        async with self.admin.connect() as connection:
            terminated = await connection.execute(text(_TERMINATE_ONE), {"pid": pid})
            assert terminated.scalar_one() is True


@pytest.fixture
def killer(admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> Killer:
    return Killer(admin, monkeypatch)


async def _session_with_history(client: httpx.AsyncClient, tenant: Tenant) -> str:
    session_id = await new_session(client, tenant)
    for content in ("one", "two"):
        await append(client, tenant, session_id, content)
    return session_id


@pytest.mark.parametrize("before", [1, 2])
async def test_a_read_whose_connection_dies_between_statements_succeeds(
    client: httpx.AsyncClient, tenant: Tenant, killer: Killer, before: int
) -> None:
    session_id = await _session_with_history(client, tenant)
    killer.arm(write=False, before=before)  # the export reads session, messages, tool calls
    response = await client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers)
    assert killer.kills == 1
    assert response.status_code == 200, response.text
    assert [m["content"] for m in response.json()["messages"]] == ["one", "two"]


async def test_a_read_whose_connection_dies_before_its_commit_succeeds(
    client: httpx.AsyncClient, tenant: Tenant, killer: Killer
) -> None:
    session_id = await _session_with_history(client, tenant)
    killer.arm(write=False, before=None)
    response = await client.get(f"/v1/sessions/{session_id}/messages", headers=tenant.headers)
    assert killer.kills == 1
    assert response.status_code == 200, response.text
    assert [m["seq"] for m in response.json()["data"]] == [1, 2]


def _multi_statement(tenant: Tenant) -> dict[str, str]:
    """An append that takes the multi-statement path (an Idempotency-Key: lock, look-up,
    advance, insert in one transaction), where a plain one is one statement in autocommit."""
    return {**tenant.headers, "Idempotency-Key": "k-three"}


@pytest.mark.parametrize("statements", ["one", "several"])
async def test_a_write_whose_connection_died_before_its_first_statement_succeeds(
    client: httpx.AsyncClient, tenant: Tenant, killer: Killer, database: Database, statements: str
) -> None:
    session_id = await _session_with_history(client, tenant)
    killer.arm(write=True, before=0)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "three"},
        headers=tenant.headers if statements == "one" else _multi_statement(tenant),
    )
    assert killer.kills == 1
    assert response.status_code == 201, response.text
    assert response.json()["seq"] == 3
    assert await count_rows(database, "messages", "session_id = :s", s=session_id) == 3


async def test_a_write_whose_connection_dies_midway_fails_whole_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, killer: Killer, database: Database
) -> None:
    """What remains: a write that has reached the server is not retried (its statements'
    results decided what came next); it answers 503 and its transaction is rolled back."""
    session_id = await _session_with_history(client, tenant)
    killer.arm(write=True, before=1)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "three"},
        headers=_multi_statement(tenant),
    )
    assert killer.kills == 1
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert await count_rows(database, "messages", "session_id = :s", s=session_id) == 2
    retried = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "three"},
        headers=tenant.headers,
    )
    assert retried.status_code == 201
    assert retried.json()["seq"] == 3


async def test_a_write_whose_connection_dies_before_its_commit_answers_503_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, killer: Killer, database: Database
) -> None:
    """The statements ran; the connection died before COMMIT reached the server, which
    rolled the transaction back. (A COMMIT cut off in flight may have committed: that is the
    case an Idempotency-Key resolves.)"""
    session_id = await _session_with_history(client, tenant)
    killer.arm(write=True, before=None)
    response = await client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": "three"},
        headers=_multi_statement(tenant),
    )
    assert killer.kills == 1
    assert response.status_code == 503, response.text
    assert await count_rows(database, "messages", "session_id = :s", s=session_id) == 2


class Traffic:
    """Terminates every backend of the database before every `every`-th statement any
    transaction runs, while other requests are in flight, and records where each
    transaction first failed, if it did: on its statement number n (1 = its first) or at its
    end ("commit", "rollback")."""

    def __init__(self, admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch, every: int) -> None:
        self.failures: list[tuple[bool, int | str]] = []
        self.terminated = 0
        statements = itertools.count(1)
        finish = _PostgresTransaction.finish
        traffic = self

        async def killing_statement(tx: Any, name: str, work: Awaitable[Any]) -> Any:
            tx.statement_number = tx.__dict__.get("statement_number", 0) + 1
            if next(statements) % every == 0:
                traffic.terminated += await _terminate_all(admin)
            # A one-statement write commits as it runs: cut off in flight, it is a COMMIT cut off.
            where = "commit" if name == "run_alone" else tx.statement_number
            return await traffic._record(tx, where, work)

        async def recording_finish(tx: Any, commit: bool) -> None:
            await traffic._record(tx, "commit" if commit else "rollback", finish(tx, commit))

        patch_statements(monkeypatch, killing_statement)
        monkeypatch.setattr(_PostgresTransaction, "finish", recording_finish)

    async def _record(self, tx: Any, where: int | str, work: Awaitable[Any]) -> Any:
        try:
            return await work
        except Exception:
            if not tx.__dict__.get("failed"):
                tx.failed = True
                self.failures.append((tx._write, where))
            raise


async def test_terminations_during_concurrent_traffic_fail_only_writes_in_flight(
    client: httpx.AsyncClient,
    tenant: Tenant,
    admin: AsyncEngine,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions = [await _session_with_history(client, tenant) for _ in range(3)]
    traffic = Traffic(admin, monkeypatch, every=11)
    reads: list[httpx.Response] = []
    writes: list[httpx.Response] = []
    for round_number in range(8):
        calls = []
        for i in range(6):
            session_id = sessions[i % len(sessions)]
            calls.append(client.get(f"/v1/sessions/{session_id}/export", headers=tenant.headers))
            calls.append(
                client.post(
                    f"/v1/sessions/{session_id}/messages",
                    json={"role": "user", "content": f"w{round_number}.{i}"},
                    headers=tenant.headers,
                )
            )
        responses = await asyncio.gather(*calls)
        reads += responses[0::2]
        writes += responses[1::2]

    assert traffic.terminated > 8  # connections were killed in every round, in flight
    assert [r.status_code for r in reads] == [200] * len(reads)
    assert {r.status_code for r in writes} <= {201, 503}
    # No read failed anywhere; no write failed on its first statement.
    assert [f for f in traffic.failures if not f[0]] == []
    assert [f for f in traffic.failures if f[1] == 1] == []
    failed_writes = [f for f in traffic.failures if f[0]]
    assert sum(r.status_code == 503 for r in writes) == len(failed_writes)
    # Every acknowledged write is stored; a write that failed in flight may or may not be
    # (only one whose COMMIT was cut off can have been committed).
    acknowledged = sum(r.status_code == 201 for r in writes)
    stored = await count_rows(database, "messages") - 2 * len(sessions)
    at_commit = sum(f[1] == "commit" for f in failed_writes)
    assert acknowledged <= stored <= acknowledged + at_commit
