"""`chat-sessions serve` as a subprocess on a free loopback port, for tests that need a real
server: its processes, its sockets, its log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from support import ADMIN_TOKEN

STARTUP_SECONDS = 20.0
# Settings of the test run's own environment that must not leak into a server's.
_NOT_INHERITED = ("DATABASE_URL", "DATABASE_PATH", "ADMIN_TOKEN", "LOG_LEVEL", "TRUSTED_PROXIES")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """Started and healthy on construction; `stop()` ends it and returns what it logged."""

    def __init__(self, tmp_path: Path, *serve_args: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_file = tmp_path / f"server-{self.port}.log"
        environment = {
            name: value for name, value in os.environ.items() if name.upper() not in _NOT_INHERITED
        }
        environment.update(
            {
                "ADMIN_TOKEN": ADMIN_TOKEN,
                "PORT": str(self.port),
                "LOG_LEVEL": "warning",
                "PYTHONUNBUFFERED": "1",
                **env,
            }
        )
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chat_sessions", "serve", *serve_args],
                env=environment,
                cwd=tmp_path,  # no .env of the project's is read
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)  # waits for the server process to start listening
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_file.read_text()}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log_file.read_text()
