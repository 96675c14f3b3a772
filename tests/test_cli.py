"""The `chat-sessions` command, run as an operator runs it, on a SQLite file that an app then
serves: what the command prints and changes is what the HTTP API sees."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from chat_sessions.app import create_app
from chat_sessions.db import Database, head_revision
from support import make_settings

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sessions.db"


@pytest.fixture
def run(tmp_path: Path, db_file: Path) -> Run:
    """`chat-sessions ARGS...` in a clean environment naming only the SQLite file."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in ("DATABASE_URL", "DATABASE_PATH", "ADMIN_TOKEN", "LOG_LEVEL")
    }
    env["DATABASE_PATH"] = str(db_file)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chat_sessions", *args],
            env=env,
            cwd=tmp_path,  # no .env of the project's is read
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


@pytest.fixture
def migrated(run: Run) -> None:
    result = run("migrate")
    assert result.returncode == 0, result.stderr


@asynccontextmanager
async def file_database(db_file: Path) -> AsyncIterator[Database]:
    database = Database(make_settings(database_path=str(db_file)))
    await database.start()
    try:
        yield database
    finally:
        await database.stop()


@asynccontextmanager
async def served(db_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app over the same file the command wrote."""
    async with file_database(db_file) as database:
        app = create_app(make_settings(database_path=str(db_file)), database)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def status_with_key(db_file: Path, key: str) -> int:
    async with served(db_file) as client:
        response = await client.get("/v1/sessions", headers={"Authorization": f"Bearer {key}"})
        return response.status_code


async def rows(db_file: Path, sql: str, **params: str) -> list[tuple]:
    async with file_database(db_file) as database, database.transaction() as tx:
        return [tuple(row) for row in (await tx.execute(text(sql), params)).all()]


async def printed_key(db_file: Path, output: str, *, not_: tuple[str, ...] = ()) -> str:
    """The one word of the output that authenticates: the new API key."""
    working = [
        word
        for word in output.split()
        if len(word) >= 22 and word not in not_ and await status_with_key(db_file, word) == 200
    ]
    assert len(working) == 1, output
    return working[0]


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> None:
    """An operator's mistake: a non-zero exit and a message, not a stack trace."""
    assert result.returncode != 0
    assert result.stderr.strip(), "no error message"
    assert "Traceback" not in result.stderr + result.stdout


async def test_migrate_brings_a_new_file_to_the_latest_schema_and_can_run_again(
    run: Run, db_file: Path
) -> None:
    # db_file's folder does not exist yet: migrate creates it.
    for _ in range(2):  # a second run finds nothing to do, and says so without failing
        result = run("migrate")
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    async with file_database(db_file) as database:
        assert await database.schema_revision() == head_revision()


async def test_tenants_create_prints_the_id_and_a_key_that_authenticates(
    run: Run, db_file: Path, migrated: None
) -> None:
    result = run("tenants", "create", "acme")
    assert result.returncode == 0, result.stderr
    [(tenant_id,)] = await rows(db_file, "SELECT id FROM tenants WHERE name = 'acme'")
    assert tenant_id in result.stdout
    key = await printed_key(db_file, result.stdout, not_=(tenant_id,))

    # The key reaches this tenant's data: a session made with it is counted for acme.
    async with served(db_file) as client:
        created = await client.post(
            "/v1/sessions", json={}, headers={"Authorization": f"Bearer {key}"}
        )
        assert created.status_code == 201
    assert await rows(db_file, "SELECT tenant_id FROM sessions") == [(tenant_id,)]


async def test_tenants_list_shows_every_tenant_with_its_id(
    run: Run, db_file: Path, migrated: None
) -> None:
    for name in ("acme", "globex"):
        assert run("tenants", "create", name).returncode == 0
    result = run("tenants", "list")
    assert result.returncode == 0, result.stderr
    tenants = await rows(db_file, "SELECT id, name FROM tenants")
    assert len(tenants) == 2
    for tenant_id, name in tenants:
        [line] = [line for line in result.stdout.splitlines() if tenant_id in line]
        assert name in line.split()


@pytest.mark.parametrize("reference", ["name", "id"])
async def test_keys_create_by_tenant_name_or_id_gives_a_new_working_key(
    run: Run, db_file: Path, migrated: None, reference: str
) -> None:
    created = run("tenants", "create", "acme")
    [(tenant_id,)] = await rows(db_file, "SELECT id FROM tenants")
    first_key = await printed_key(db_file, created.stdout, not_=(tenant_id,))

    result = run("keys", "create", "acme" if reference == "name" else tenant_id)
    assert result.returncode == 0, result.stderr
    keys = await rows(db_file, "SELECT id FROM api_keys WHERE tenant_id = :t", t=tenant_id)
    assert len(keys) == 2
    key_ids = [key_id for (key_id,) in keys]
    # The new key's id is printed: it is what `keys revoke` takes.
    assert sum(key_id in result.stdout for key_id in key_ids) == 1
    second_key = await printed_key(db_file, result.stdout, not_=(tenant_id, *key_ids))
    assert second_key != first_key
    assert await status_with_key(db_file, first_key) == 200


async def test_keys_revoke_makes_the_key_answer_401_and_leaves_other_keys(
    run: Run, db_file: Path, migrated: None
) -> None:
    created = run("tenants", "create", "acme")
    [(tenant_id,)] = await rows(db_file, "SELECT id FROM tenants")
    first_key = await printed_key(db_file, created.stdout, not_=(tenant_id,))
    [(first_key_id,)] = await rows(db_file, "SELECT id FROM api_keys")
    second = run("keys", "create", "acme")
    second_key = await printed_key(db_file, second.stdout, not_=(tenant_id,))

    result = run("keys", "revoke", first_key_id)
    assert result.returncode == 0, result.stderr
    assert await status_with_key(db_file, first_key) == 401
    assert await status_with_key(db_file, second_key) == 200


async def test_a_duplicate_tenant_name_fails_with_a_message_and_no_traceback(
    run: Run, db_file: Path, migrated: None
) -> None:
    assert run("tenants", "create", "acme").returncode == 0
    result = run("tenants", "create", "acme")
    assert_clean_failure(result)
    assert "acme" in result.stderr
    assert await rows(db_file, "SELECT count(*) FROM tenants") == [(1,)]
    assert await rows(db_file, "SELECT count(*) FROM api_keys") == [(1,)]


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "create", "no-such-tenant"),
        ("keys", "revoke", "no-such-key"),
        ("tenants", "create", ""),
    ],
    ids=["key for unknown tenant", "revoke unknown key", "empty tenant name"],
)
async def test_operator_mistakes_fail_with_a_message_and_no_traceback(
    run: Run, db_file: Path, migrated: None, args: tuple[str, ...]
) -> None:
    assert_clean_failure(run(*args))
    assert await rows(db_file, "SELECT count(*) FROM api_keys") == [(0,)]
