"""The `chat-sessions` command, run as an operator runs it (`python -m chat_sessions`, a process
of its own) on a SQLite file: `migrate`, `tenants` and `keys`, whose effects an app serving the
same file then sees over HTTP; `cleanup` (with and without `--dry-run`) and `sessions
list/show/delete`, whose effects the file itself shows."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import text

from chat_sessions.app import create_app
from chat_sessions.db import Database, head_revision
from support import make_settings

pytestmark = pytest.mark.sqlite_only

Run = Callable[..., subprocess.CompletedProcess[str]]


def command(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m chat_sessions ARGS...` in its own process, with `env` and in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "chat_sessions", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
        return command(env, tmp_path, *args)  # cwd: no .env of the project's is read

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
    """An operator's mistake: a non-zero exit and an error message, not a stack trace."""
    assert result.returncode != 0
    assert result.stderr.strip(), "no error message"
    assert "error" in result.stderr.lower()
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


# --- cleanup and sessions, on a file built once per module ------------------------------


@dataclass
class Operator:
    """A SQLite file and the command line pointed at it."""

    path: Path
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_PATH": str(self.path),
            "DATABASE_URL": "",
            "ADMIN_TOKEN": "",
            "CLEANUP_INTERVAL_SECONDS": "",
            "LOG_LEVEL": "warning",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return command(self.env, self.path.parent, *args)  # cwd: no stray .env

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (done.stdout, done.stderr)
        return done.stdout

    def count(self, table: str, where: str = "1=1", *params: Any) -> int:
        with closing(sqlite3.connect(self.path)) as connection:
            return int(
                connection.execute(
                    f"SELECT count(*) FROM {table} WHERE {where}", params
                ).fetchone()[0]
            )

    def exists(self, session_key: str) -> bool:
        return self.count("sessions", "id = ?", self.ids[session_key]) == 1


def line_about(output: str, tenant_name: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(f"{tenant_name} ")]
    return line


def api_key(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("api_key:")]
    return line.split()[-1]


def tenant_id(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("tenant_id:")]
    return line.split()[-1]


TRANSCRIPT = [
    {"role": "system", "content": "You are a travel agent."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Where is Lisbon?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo"}},
        ],
    },
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_geo",
                "type": "function",
                "function": {"name": "geocode", "arguments": '{"city": "Lisbon"}'},
            }
        ],
    },
    {"role": "tool", "content": "38.72 N, 9.14 W", "tool_call_id": "call_geo"},
    {
        "role": "assistant",
        "content": "Lisbon is the capital of Portugal.",
        "item": {"type": "message", "id": "msg_1", "status": "completed"},
    },
]


def build(path: Path) -> dict[str, str]:
    """Tenants by the command line, sessions and messages over HTTP, idleness by SQL."""
    operator = Operator(path)
    operator.ok("migrate")
    acme = operator.ok("tenants", "create", "acme", "--retention-days", "30")
    globex = operator.ok("tenants", "create", "globex", "--max-sessions", "1")
    calm = operator.ok("tenants", "create", "calm")
    ids = {"acme": tenant_id(acme), "globex": tenant_id(globex), "calm": tenant_id(calm)}

    def create(
        client: TestClient[Any],
        key: str,
        user_id: str | None,
        count: int = 1,
        external_id: str | None = None,
    ) -> str:
        headers = {"Authorization": f"Bearer {key}"}
        body = {"user_id": user_id, "external_id": external_id}
        response = client.post("/v1/sessions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        session_id = str(response.json()["id"])
        if not count:
            return session_id
        response = client.post(
            f"/v1/sessions/{session_id}/messages/batch",
            json={"messages": [{"role": "user", "content": f"note {n}"} for n in range(count)]},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        return session_id

    with TestClient(create_app(make_settings(database_path=str(path)))) as client:
        ids["acme_old_u1"] = create(client, api_key(acme), "u1", 2, "app/u1/old")
        ids["acme_old_u2"] = create(client, api_key(acme), "u2", 3, "app/u2/old")
        ids["acme_new_u1"] = create(client, api_key(acme), "u1", 0, "app/u1/new")
        response = client.post(
            f"/v1/sessions/{ids['acme_new_u1']}/messages/batch",
            json={"messages": TRANSCRIPT},
            headers={"Authorization": f"Bearer {api_key(acme)}"},
        )
        assert response.status_code == 201, response.text
        ids["globex_older"] = create(client, api_key(globex), "g")
        ids["globex_newer"] = create(client, api_key(globex), "g")
        ids["calm_ancient"] = create(client, api_key(calm), None)

    now = datetime.now(UTC).replace(tzinfo=None)

    def set_activity(key: str, when: datetime) -> None:
        stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (stamp, ids[key]))

    set_activity("acme_old_u1", now - timedelta(days=40))
    set_activity("acme_old_u2", now - timedelta(days=31))
    set_activity("globex_older", now - timedelta(hours=2))
    set_activity("calm_ancient", now - timedelta(days=4000))
    return ids


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("template") / "sessions.db"
    return path, build(path)


@pytest.fixture
def operator(template: tuple[Path, dict[str, str]], tmp_path: Path) -> Operator:
    """A copy of the prepared database for this test alone."""
    source, ids = template
    target = tmp_path / "data" / "sessions.db"
    target.parent.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
    return Operator(target, dict(ids))


# --- cleanup --------------------------------------------------------------------------------


def test_cleanup_dry_run_prints_per_tenant_counts_and_deletes_nothing(operator: Operator) -> None:
    before = (operator.count("sessions"), operator.count("messages"))

    output = operator.ok("cleanup", "--dry-run")

    acme = line_about(output, "acme")
    assert "would delete 2" in acme
    assert "2 idle" in acme
    assert operator.ids["acme"] in acme
    globex = line_about(output, "globex")
    assert "would delete 1" in globex
    assert "1 over max_sessions" in globex
    assert "calm" not in output  # no rules, nothing to say
    assert (operator.count("sessions"), operator.count("messages")) == before


def test_cleanup_deletes_what_the_dry_run_announced_and_prints_it(operator: Operator) -> None:
    planned = operator.ok("cleanup", "--dry-run")

    output = operator.ok("cleanup")

    assert "deleted 2" in line_about(output, "acme")
    assert "deleted 1" in line_about(output, "globex")
    assert output.replace("deleted", "would delete") == planned
    for gone in ("acme_old_u1", "acme_old_u2", "globex_older"):
        assert not operator.exists(gone)
        assert operator.count("messages", "session_id = ?", operator.ids[gone]) == 0
    for kept in ("acme_new_u1", "globex_newer", "calm_ancient"):
        assert operator.exists(kept)
    assert operator.count("messages", "session_id = ?", operator.ids["acme_new_u1"]) == 5

    again = operator.ok("cleanup")
    assert "deleted 0" in line_about(again, "acme")
    assert operator.count("sessions") == 3


def test_cleanup_with_no_rules_anywhere_says_so(tmp_path: Path) -> None:
    operator = Operator(tmp_path / "empty.db")
    operator.ok("migrate")
    operator.ok("tenants", "create", "plain")

    output = operator.ok("cleanup")

    assert "nothing to do" in output


# --- sessions list / show / delete ----------------------------------------------------------


def test_sessions_list_shows_the_tenants_sessions_only(operator: Operator) -> None:
    output = operator.ok("sessions", "list", "--tenant", "acme")

    for key in ("acme_old_u1", "acme_old_u2", "acme_new_u1"):
        assert operator.ids[key] in output
    for key in ("globex_older", "globex_newer", "calm_ancient"):
        assert operator.ids[key] not in output
    # newest activity first
    assert output.index(operator.ids["acme_new_u1"]) < output.index(operator.ids["acme_old_u2"])
    assert output.index(operator.ids["acme_old_u2"]) < output.index(operator.ids["acme_old_u1"])


def test_sessions_list_takes_the_tenant_by_id_too(operator: Operator) -> None:
    by_name = operator.ok("sessions", "list", "--tenant", "globex")
    by_id = operator.ok("sessions", "list", "--tenant", operator.ids["globex"])

    assert by_id == by_name
    assert operator.ids["globex_newer"] in by_id


def test_sessions_list_filters_by_user(operator: Operator) -> None:
    output = operator.ok("sessions", "list", "--tenant", "acme", "--user", "u1")

    assert operator.ids["acme_old_u1"] in output
    assert operator.ids["acme_new_u1"] in output
    assert operator.ids["acme_old_u2"] not in output


def test_sessions_list_shows_external_ids_and_filters_by_their_prefix(operator: Operator) -> None:
    everything = operator.ok("sessions", "list", "--tenant", "acme")
    output = operator.ok("sessions", "list", "--tenant", "acme", "--external-id-prefix", "app/u1/")

    assert "app/u2/old" in everything
    assert operator.ids["acme_old_u2"] not in output
    # in external_id order: app/u1/new before app/u1/old
    assert output.index(operator.ids["acme_new_u1"]) < output.index(operator.ids["acme_old_u1"])
    assert output.index("app/u1/new") < output.index("app/u1/old")


def test_sessions_list_of_an_unknown_tenant_fails_cleanly(operator: Operator) -> None:
    assert_clean_failure(operator.run("sessions", "list", "--tenant", "no-such-tenant"))


def test_sessions_show_prints_the_transcript_in_order(operator: Operator) -> None:
    output = operator.ok("sessions", "show", operator.ids["acme_new_u1"])

    assert operator.ids["acme_new_u1"] in output
    assert "u1" in output
    assert "external_id app/u1/new" in output
    position = 0
    for message in TRANSCRIPT:
        position = output.index(message["role"], position)
        content = message["content"]
        text = content if isinstance(content, str) else content[0]["text"]
        if text:
            position = output.index(text, position)
    assert "geocode" in output  # the assistant's tool call is shown
    assert "call_geo" in output
    assert "[image_url part]" in output  # parts without text are named, not dumped
    assert "iVBORw0KGgo" not in output
    assert "[item: message]" in output


def test_sessions_show_prints_the_active_branch_and_marks_the_other_versions(
    operator: Operator,
) -> None:
    session_id = operator.ids["acme_new_u1"]
    # An edited first question (seq 6, under the system message 1), made the head.
    with closing(sqlite3.connect(operator.path)) as connection:
        connection.execute(
            "INSERT INTO messages (id, tenant_id, session_id, seq, parent_seq, role, content,"
            " created_at) SELECT 'edited', tenant_id, id, 6, 1, 'user', 'Where is Porto?',"
            " '2026-01-01' FROM sessions WHERE id = ?",
            (session_id,),
        )
        connection.execute(
            "UPDATE sessions SET last_seq = 6, head_seq = 6, first_branch_seq = 1,"
            " message_count = 6 WHERE id = ?",
            (session_id,),
        )
        connection.commit()

    output = operator.ok("sessions", "show", session_id)

    assert "the active branch, to seq 6" in output
    assert "Where is Porto?" in output
    assert "[6] user" in output and "[2/2, others: 2]" in output
    assert "Where is Lisbon?" not in output  # the other version, not shown
    assert "You are a travel agent." in output


def test_sessions_show_of_an_unknown_session_fails_cleanly(operator: Operator) -> None:
    assert_clean_failure(operator.run("sessions", "show", "0192f6c5-0000-7000-8000-000000000000"))


def test_sessions_delete_removes_the_session_and_everything_under_it(operator: Operator) -> None:
    session_id = operator.ids["acme_new_u1"]
    assert operator.count("messages", "session_id = ?", session_id) == 5
    others = operator.count("sessions") - 1

    output = operator.ok("sessions", "delete", session_id)

    assert session_id in output
    assert not operator.exists("acme_new_u1")
    assert operator.count("messages", "session_id = ?", session_id) == 0
    assert operator.count("sessions") == others
    assert_clean_failure(operator.run("sessions", "show", session_id))
    assert_clean_failure(operator.run("sessions", "delete", session_id))
    assert session_id not in operator.ok("sessions", "list", "--tenant", "acme")
