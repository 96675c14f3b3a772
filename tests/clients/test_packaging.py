"""The client installs as a user installs it, into a virtual environment of its own: from the
repository (`pip install ./clients/python`) and from a built wheel. Either way it brings httpx
and nothing of the frameworks, and it works against a running service."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

from clients.conftest import Service

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
# What the installed client does, run by the environment's own Python.
USE = """
import json, sys
from importlib.metadata import distributions
from chat_sessions_client import ChatSessionsClient
with ChatSessionsClient(sys.argv[1], sys.argv[2]) as client:
    session = client.create_session(external_id="installed")
    message = client.append_message(session.id, "user", "hello")
names = sorted(d.metadata["Name"].lower() for d in distributions())
print(json.dumps({"seq": message.seq, "installed": names}))
"""


def pip(environment: Path, *args: str) -> None:
    subprocess.run(
        [str(environment / "bin" / "python"), "-m", "pip", "--quiet", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


def use(environment: Path, service: Service) -> dict[str, object]:
    done = subprocess.run(
        [str(environment / "bin" / "python"), "-c", USE, service.base_url, service.api_key],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return dict(json.loads(done.stdout))


@pytest.mark.sqlite_only
def test_installs_from_the_repository_and_from_a_wheel(service: Service, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)

    pip(environment, "install", str(CLIENT))
    from_source = use(environment, service)
    assert from_source["seq"] == 1
    installed = set(from_source["installed"])  # type: ignore[call-overload]
    assert {"chat-sessions-client", "httpx"} <= installed
    assert not installed & {"openai-agents", "langchain-core", "google-adk"}

    pip(environment, "uninstall", "--yes", "chat-sessions-client")
    pip(environment, "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(CLIENT))
    (wheel,) = (tmp_path / "dist").glob("chat_sessions_client-*.whl")
    pip(environment, "install", str(wheel))
    assert use(environment, service)["seq"] == 2  # the same session, by its external_id
