"""The database's failure paths, made to happen: a commit that fails is never acknowledged and
stores nothing; an old schema serves no tenant route; `api_keys.last_used_at` is written off
the request path, in batches, and shown to operators."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from chat_sessions import cli
from chat_sessions.app import create_app
from chat_sessions.auth import KeyUsage
from chat_sessions.db import Database, head_revision
from chat_sessions.schema_gate import SchemaGate
from support import (
    ADMIN,
    Clock,
    Tenant,
    append,
    count_rows,
    create_tenant,
    make_settings,
    new_session,
)

# --- a failed commit is an error, and stores nothing ---------------------------------------


class Refusal:
    """Makes SQLite refuse statements on the writer connection, as a full disk or an I/O
    error would fail them: an authorizer denies the next `times` statements of one kind
    (`("COMMIT",)` - the group's commit, or `("RELEASE", "request")` - a request's savepoint)
    when they are prepared. Setting an authorizer expires the connection's prepared
    statements, so cached ones are prepared (and checked) again."""

    def __init__(self, raw: sqlite3.Connection, action: int, *args: str, times: int) -> None:
        self.left = times
        self.refused = 0

        def authorize(code: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
            if code == action and (arg1, arg2)[: len(args)] == args and self.left:
                self.left -= 1
                self.refused += 1
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        raw.set_authorizer(authorize)


def _refuse(database: Database, action: int, *args: str, times: int) -> Refusal:
    return Refusal(database.engine._links.writer.raw, action, *args, times=times)


async def _stored_contents(database: Database) -> list[str]:
    async with database.transaction(write=False) as tx:
        rows = await tx.execute(text("SELECT content FROM messages ORDER BY content"))
        return [str(content) for (content,) in rows]


def _post(client: httpx.AsyncClient, tenant: Tenant, session_id: str, content: str) -> Any:
    return client.post(
        f"/v1/sessions/{session_id}/messages",
        json={"role": "user", "content": content},
        headers=tenant.headers,
    )


def _assert_server_problem(response: httpx.Response) -> None:
    assert 500 <= response.status_code < 600, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in response.text


@pytest.mark.sqlite_only
async def test_a_group_commit_that_fails_answers_every_request_in_it_with_5xx_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    sessions = [await new_session(client, tenant) for _ in range(3)]
    refusal = _refuse(database, sqlite3.SQLITE_TRANSACTION, "COMMIT", times=1)
    first = await asyncio.gather(
        *(_post(client, tenant, sessions[i % 3], f"lost {i}") for i in range(6))
    )
    assert refusal.refused == 1  # one commit, shared by the whole group, failed
    for response in first:
        _assert_server_problem(response)
    assert await count_rows(database, "messages") == 0
    # The failed group was rolled back: the connection serves the next group, and only what
    # that group acknowledged is stored.
    second = await asyncio.gather(
        *(_post(client, tenant, sessions[i % 3], f"kept {i}") for i in range(6))
    )
    assert [response.status_code for response in second] == [201] * 6
    assert await _stored_contents(database) == [f"kept {i}" for i in range(6)]
    for session_id in sessions:
        listed = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
        assert listed.json()["message_count"] == 2


@pytest.mark.sqlite_only
async def test_a_failed_group_commit_leaves_no_unretrieved_error_for_requests_that_did_not_wait(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    """A request in the group that ended without a commit to wait for (a 404, rolled back)
    must not leave asyncio a failed future nobody reads: asyncio reports each one, when it is
    collected, as "Future exception was never retrieved", an ERROR with a traceback, for every
    such request of every failed group."""
    session_id = await new_session(client, tenant)
    refusal = _refuse(database, sqlite3.SQLITE_TRANSACTION, "COMMIT", times=1)
    responses = await asyncio.gather(
        *(_post(client, tenant, session_id, f"lost {i}") for i in range(3)),
        _post(client, tenant, "no-such-session", "nowhere"),
    )
    assert refusal.refused == 1
    assert responses[-1].status_code == 404
    for response in responses[:-1]:
        _assert_server_problem(response)
    # The futures that asyncio would report: failed, and their exception never read.
    unread = [
        thing
        for thing in gc.get_objects()
        if isinstance(thing, asyncio.Future)
        and thing.done()
        and not thing.cancelled()
        and thing._log_traceback  # type: ignore[attr-defined]
    ]
    assert unread == []


@pytest.mark.sqlite_only
async def test_after_a_failed_commit_of_a_sessions_write_the_writer_serves_and_stores_only_the_new(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    """A PATCH runs its statements through SQLAlchemy (appends run on the driver): a COMMIT
    that fails then leaves SQLAlchemy's transaction inactive, and SQLite's still open with
    the PATCH in it. Both must be rolled back, or every later write fails (or, worse, a
    later commit stores the write that was answered 5xx)."""
    session_id = await new_session(client, tenant, title="before")
    refusal = _refuse(database, sqlite3.SQLITE_TRANSACTION, "COMMIT", times=1)
    failed = await client.patch(
        f"/v1/sessions/{session_id}", json={"title": "lost"}, headers=tenant.headers
    )
    assert refusal.refused == 1
    _assert_server_problem(failed)
    created = [await new_session(client, tenant, title=f"after {i}") for i in range(3)]
    kept = await client.patch(
        f"/v1/sessions/{created[0]}", json={"title": "kept"}, headers=tenant.headers
    )
    assert kept.status_code == 200, kept.text
    session = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert session.json()["title"] == "before"
    assert session.json()["version"] == 1
    assert await count_rows(database, "sessions") == 4


@pytest.mark.sqlite_only
async def test_every_commit_failing_acknowledges_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    refusal = _refuse(database, sqlite3.SQLITE_TRANSACTION, "COMMIT", times=1_000)
    responses = await asyncio.gather(*(_post(client, tenant, session_id, "x") for _ in range(4)))
    assert refusal.refused >= 1
    for response in responses:
        _assert_server_problem(response)
    refusal.left = 0
    assert await count_rows(database, "messages") == 0
    assert (await _post(client, tenant, session_id, "after")).json()["seq"] == 1


@pytest.mark.sqlite_only
async def test_a_savepoint_release_that_fails_answers_5xx_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    session_id = await new_session(client, tenant)
    refusal = _refuse(database, sqlite3.SQLITE_SAVEPOINT, "RELEASE", "request", times=1)
    failed = await _post(client, tenant, session_id, "lost")
    assert refusal.refused == 1
    _assert_server_problem(failed)
    assert await count_rows(database, "messages") == 0
    kept = await _post(client, tenant, session_id, "kept")
    assert kept.status_code == 201
    assert kept.json()["seq"] == 1
    assert await _stored_contents(database) == ["kept"]


@pytest.mark.postgres_only
async def test_a_postgres_commit_that_fails_after_the_statements_ran_answers_5xx_and_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, database: Database
) -> None:
    """A deferred constraint trigger runs at COMMIT, after every statement succeeded."""
    session_id = await new_session(client, tenant)
    engine = create_async_engine(database.url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(
                text(
                    "CREATE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER INSERT ON messages"
                    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                    " EXECUTE FUNCTION test_refuse_at_commit()"
                )
            )
        try:
            responses = await asyncio.gather(
                *(_post(client, tenant, session_id, f"lost {i}") for i in range(3))
            )
        finally:
            async with engine.connect() as connection:
                await connection.execute(text("DROP TRIGGER test_refuse_at_commit ON messages"))
                await connection.execute(text("DROP FUNCTION test_refuse_at_commit()"))
    finally:
        await engine.dispose()
    for response in responses:
        _assert_server_problem(response)
    assert await count_rows(database, "messages") == 0
    session = await client.get(f"/v1/sessions/{session_id}", headers=tenant.headers)
    assert session.json()["message_count"] == 0
    assert (await _post(client, tenant, session_id, "kept")).json()["seq"] == 1


# --- an old schema serves no tenant route --------------------------------------------------


@pytest.fixture
async def old_schema_client(
    fresh_database: Database,
) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    """An app on a database one migration behind the head, its schema gate on a clock."""
    await fresh_database.migrate("0003")
    app = create_app(fresh_database.settings, fresh_database)
    clock = Clock()
    app.state.schema_gate = SchemaGate(head_revision(), clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, clock


def _assert_schema_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert "make migrate" in response.json()["detail"]


async def test_on_an_old_schema_tenant_routes_answer_503_until_it_is_migrated(
    old_schema_client: tuple[httpx.AsyncClient, Clock],
    fresh_database: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, clock = old_schema_client
    tenant = await create_tenant(client, "acme")  # tenants and keys exist at 0003 already
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "1"

    for response in await asyncio.gather(
        client.post("/v1/sessions", json={}, headers=tenant.headers),
        client.get("/v1/sessions", headers=tenant.headers),
        client.get("/v1/search", params={"q": "hello"}, headers=tenant.headers),
    ):
        _assert_schema_unavailable(response)
    assert await count_rows(fresh_database, "sessions") == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

    await fresh_database.migrate()  # `make migrate`, while the process keeps running
    _assert_schema_unavailable(await client.get("/v1/sessions", headers=tenant.headers))
    clock.now += SchemaGate.RECHECK_SECONDS  # the next look finds the head
    session_id = await new_session(client, tenant)
    await append(client, tenant, session_id, "hello")
    found = await client.get("/v1/search", params={"q": "hello"}, headers=tenant.headers)
    assert found.status_code == 200, found.text
    assert len(found.json()["data"]) == 1
    assert (await client.get("/ready")).status_code == 200


async def test_at_the_head_the_schema_is_read_once(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = SchemaGate(head_revision())
    app.state.schema_gate = gate
    looks = 0
    database = app.state.database
    read_revision = database.schema_revision

    async def counting() -> str | None:
        nonlocal looks
        looks += 1
        return await read_revision()

    monkeypatch.setattr(database, "schema_revision", counting)
    responses = await asyncio.gather(
        *(client.get("/v1/sessions", headers=tenant.headers) for _ in range(5))
    )
    assert [response.status_code for response in responses] == [200] * 5
    assert looks == 1


# --- api_keys.last_used_at -----------------------------------------------------------------


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def wall_clock(app: Any) -> WallClock:
    clock = WallClock()
    app.state.key_usage = KeyUsage(clock=clock)
    return clock


async def _last_used(database: Database) -> list[datetime | None]:
    async with database.transaction(write=False) as tx:
        rows = await tx.execute(text("SELECT last_used_at FROM api_keys ORDER BY created_at, id"))
        return [_aware(value) for (value,) in rows]


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def test_requests_write_no_last_used_at_and_a_flush_writes_every_key_seen_at_once(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, app: Any, wall_clock: WallClock
) -> None:
    other = await create_tenant(client, "globex")
    unused = await create_tenant(client, "initech")
    for caller in (tenant, other, tenant):
        assert (await client.get("/v1/sessions", headers=caller.headers)).status_code == 200
    assert await _last_used(database) == [None, None, None]  # no write on the request path

    usage: KeyUsage = app.state.key_usage
    assert await usage.flush(database) == 2
    first = wall_clock.now
    assert await _last_used(database) == [first, first, None]
    assert await usage.flush(database) == 0  # nothing seen since: no transaction at all

    wall_clock.now += timedelta(minutes=5)
    assert (await client.get("/v1/sessions", headers=other.headers)).status_code == 200
    assert await usage.flush(database) == 1
    assert await _last_used(database) == [first, wall_clock.now, None]
    assert unused.key


async def test_a_flush_never_moves_last_used_at_back(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, app: Any, wall_clock: WallClock
) -> None:
    """Another process (or one with a slower clock) may have written a later time."""
    later = wall_clock.now + timedelta(hours=1)
    async with database.transaction() as tx:
        await tx.execute(text("UPDATE api_keys SET last_used_at = :t"), {"t": later})
    assert (await client.get("/v1/sessions", headers=tenant.headers)).status_code == 200
    await app.state.key_usage.flush(database)
    assert await _last_used(database) == [later]


class _Unavailable:
    def transaction(self, **_: Any) -> Any:
        raise OperationalError("UPDATE api_keys", None, Exception("the database is down"))


async def test_a_failed_flush_keeps_the_keys_for_the_next_one(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, app: Any, wall_clock: WallClock
) -> None:
    assert (await client.get("/v1/sessions", headers=tenant.headers)).status_code == 200
    usage: KeyUsage = app.state.key_usage
    with pytest.raises(OperationalError):
        await usage.flush(_Unavailable())  # type: ignore[arg-type]
    assert await usage.flush(database) == 1
    assert await _last_used(database) == [wall_clock.now]


async def test_the_lifespan_flushes_in_the_background_and_once_more_at_shutdown(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, app: Any
) -> None:
    """`serve`'s lifespan starts the periodic flush, and the keys seen since its last round
    are written when the process stops (none of the tests above runs the lifespan)."""
    started: list[float] = []

    async def periodic(self: KeyUsage, database: Database, interval_seconds: float) -> None:
        started.append(interval_seconds)
        await asyncio.Event().wait()  # until the lifespan cancels it

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KeyUsage, "flush_periodically", periodic)
        async with app.lifespan():
            await asyncio.sleep(0)  # a turn of the loop, for the lifespan's tasks to start
            assert (await client.get("/v1/sessions", headers=tenant.headers)).status_code == 200
            assert await _last_used(database) == [None]
    assert started == [app.state.settings.api_key_usage_flush_seconds]
    (used_at,) = await _last_used(database)
    assert used_at is not None


async def test_the_periodic_flush_writes_every_interval_and_survives_a_failed_round(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, app: Any
) -> None:
    usage: KeyUsage = app.state.key_usage
    assert (await client.get("/v1/sessions", headers=tenant.headers)).status_code == 200
    targets: list[Any] = [_Unavailable(), database]  # the first round fails, the second writes
    waits: list[float] = []

    async def one_round_a_wait(seconds: float) -> None:
        waits.append(seconds)
        if not targets:
            raise asyncio.CancelledError  # the lifespan's cancel, after two rounds

    class Switching:
        def transaction(self, **kwargs: Any) -> Any:
            return targets.pop(0).transaction(**kwargs)

    with pytest.raises(asyncio.CancelledError):
        await usage.flush_periodically(
            Switching(),  # type: ignore[arg-type]
            7.0,
            sleep=one_round_a_wait,
        )
    assert waits == [7.0, 7.0, 7.0]
    (used_at,) = await _last_used(database)
    assert used_at is not None


async def test_the_admin_key_listing_shows_prefix_and_times_of_every_key(
    client: httpx.AsyncClient, tenant: Tenant, database: Database, app: Any, wall_clock: WallClock
) -> None:
    second = (await client.post(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)).json()
    assert (await client.get("/v1/sessions", headers=tenant.headers)).status_code == 200
    await app.state.key_usage.flush(database)
    revoked = await client.delete(
        f"/v1/admin/tenants/{tenant.id}/keys/{second['id']}", headers=ADMIN
    )
    assert revoked.status_code == 204

    listing = await client.get(f"/v1/admin/tenants/{tenant.id}/keys", headers=ADMIN)
    assert listing.status_code == 200, listing.text
    first_key, second_key = listing.json()["data"]
    assert first_key["prefix"] == tenant.key[:10]
    assert _aware(datetime.fromisoformat(first_key["last_used_at"])) == wall_clock.now
    assert first_key["revoked_at"] is None
    assert second_key["id"] == second["id"]
    assert second_key["last_used_at"] is None
    assert second_key["revoked_at"] is not None
    assert {"created_at", "tenant_id"} <= first_key.keys()
    assert "key_hash" not in first_key and "api_key" not in first_key

    missing = await client.get("/v1/admin/tenants/no-such-tenant/keys", headers=ADMIN)
    assert missing.status_code == 404, missing.text
    assert (await client.get(f"/v1/admin/tenants/{tenant.id}/keys")).status_code == 401


@pytest.fixture
def operator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`chat-sessions` run in-process on a SQLite file, with no .env of the project's."""
    db_file = tmp_path / "sessions.db"
    for name in ("DATABASE_URL", "ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_PATH", str(db_file))
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.chdir(tmp_path)
    yield db_file


@pytest.mark.sqlite_only
def test_keys_list_prints_each_key_with_its_prefix_and_times(
    operator_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(["migrate"])
    cli.main(["tenants", "create", "acme"])
    cli.main(["keys", "create", "acme"])
    key_id = capsys.readouterr().out.split("key_id:")[1].split()[0]
    used_at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    async def use_first_key_and_revoke_second() -> str:
        database = Database(make_settings(database_path=str(operator_env)))
        await database.start()
        try:
            async with database.transaction() as tx:
                first_id = (
                    await tx.execute(text("SELECT id FROM api_keys WHERE id <> :k"), {"k": key_id})
                ).scalar_one()
            usage = KeyUsage(clock=lambda: used_at)
            usage.note(first_id)
            await usage.flush(database)
            return str(first_id)
        finally:
            await database.stop()

    first_id = asyncio.run(use_first_key_and_revoke_second())
    cli.main(["keys", "revoke", key_id])
    capsys.readouterr()

    cli.main(["keys", "list", "acme"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "prefix", "created_at", "last_used_at", "revoked_at"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows.keys() == {first_id, key_id}
    assert rows[first_id][1].startswith("cs_")
    assert rows[first_id][3] == "2030-01-01T12:00:00+00:00"
    assert rows[first_id][4] == "-"
    assert rows[key_id][3] == "-"
    assert rows[key_id][4] != "-"
