"""Start-up failures are one line naming what is wrong, and a non-zero exit (issue 10, items 8
and 11): the `chat-sessions` command run as a subprocess, as an operator runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support import TEST_DATABASE_URL, make_settings


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`chat-sessions ARGS...` with the given settings and none inherited from the project."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name.upper() not in ("DATABASE_URL", "DATABASE_PATH", "ADMIN_TOKEN", "LOG_LEVEL")
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "chat_sessions", *args],
        env=environment,
        cwd=tmp_path,  # no .env of the project's is read
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The output ends in one line saying what is wrong; before it at most the migration's own
    progress lines (`INFO Running upgrade ...`), no traceback."""
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert "Traceback" not in result.stderr
    assert [line for line in lines if not line.startswith("INFO ")] == lines[-1:], lines
    line = lines[-1]
    assert line.startswith("error: ")
    for text in expected:
        assert text in line, line
    return line


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


UNUSABLE_PATHS = [
    pytest.param("/proc/db.sqlite", "unable to open", id="unwritable-folder"),
    pytest.param("/dev/null", "disk I/O error", id="not-a-database-file"),
    pytest.param("{tmp}/a-file/db.sqlite", "a-file is not a folder", id="under-a-file"),
    pytest.param("{tmp}/a-file", "not a database", id="a-file-that-is-not-sqlite"),
]


@pytest.mark.parametrize("command", [["migrate"], ["serve", "--migrate"], ["serve"]])
@pytest.mark.parametrize(("path", "reason"), UNUSABLE_PATHS)
def test_an_unusable_database_path_is_one_line_naming_it(
    tmp_path: Path, command: list[str], path: str, reason: str
) -> None:
    (tmp_path / "a-file").write_text("not a database\n" * 100)
    path = path.format(tmp=tmp_path)
    result = run_cli(tmp_path, *command, DATABASE_PATH=path, PORT=str(closed_port()))
    assert_one_line_error(result, path, reason)


def test_an_unreachable_postgresql_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://app:hunter2@127.0.0.1:{closed_port()}/chat"
    for command in (["migrate"], ["serve"]):
        line = assert_one_line_error(
            run_cli(tmp_path, *command, DATABASE_URL=url), "127.0.0.1", "refused"
        )
        assert "hunter2" not in line


@pytest.mark.postgres_only
def test_a_postgresql_role_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    url = make_settings(database_url=TEST_DATABASE_URL).sqlalchemy_url
    url = url.replace("postgres@", "no_such_role@")
    assert_one_line_error(run_cli(tmp_path, "migrate", DATABASE_URL=url), "no_such_role")


@pytest.mark.parametrize(
    ("url", "reason"),
    [("mysql://db/x", "unsupported database backend"), ("post gres:::", "DATABASE_URL")],
)
def test_a_malformed_database_url_is_one_line(tmp_path: Path, url: str, reason: str) -> None:
    assert_one_line_error(run_cli(tmp_path, "migrate", DATABASE_URL=url), reason)


@pytest.mark.parametrize("command", [["migrate"], ["serve"]])
def test_an_admin_token_shorter_than_16_characters_is_refused_at_start(
    tmp_path: Path, command: list[str]
) -> None:
    result = run_cli(
        tmp_path,
        *command,
        DATABASE_PATH=str(tmp_path / "db.sqlite"),
        ADMIN_TOKEN="fifteen-chars..",
        PORT=str(closed_port()),
    )
    line = assert_one_line_error(result, "ADMIN_TOKEN", "16 characters")
    assert "fifteen-chars" not in line
    assert not (tmp_path / "db.sqlite").exists()


def test_an_admin_token_of_16_characters_is_accepted() -> None:
    settings = make_settings(admin_token="sixteen-chars..!")
    assert settings.admin_token is not None
    with pytest.raises(ValueError, match="16 characters"):
        make_settings(admin_token="x" * 15)
