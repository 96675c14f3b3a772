"""The servers a run measures: the service (`chat-sessions serve`) on a fresh database and the
bare app, as processes this benchmark starts and alone stops; their CPU time from /proc; the
database's upkeep after write runs; a fresh PostgreSQL database per run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- processes and their CPU ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        data = file.read()
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used (all cores), from /proc/stat."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def postgres_cpu_ticks(database: str) -> dict[int, int]:
    """CPU ticks of each PostgreSQL backend connected to `database` (a local server titles
    each backend "postgres: ... <user> <database> <client> <state>"), by pid."""
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                title = file.read().decode(errors="replace").replace("\0", " ").split()
            if not title or not title[0].startswith("postgres:") or database not in title:
                continue
            ticks[int(entry)] = _cpu_ticks(int(entry))
        except (OSError, ValueError):
            continue
    return ticks


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU the processes used between two readings. A backend that started meanwhile counts
    whole; one that exited meanwhile took its ticks with it (a pool closing connections), so
    the figure is a lower bound - never the negative a difference of sums would give."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / CLOCK_TICKS


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                data = file.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


class Server:
    """A server process this benchmark started (and alone stops)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, logs: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        # The database server's CPU, when it is a process of its own (PostgreSQL).
        self.database_cpu: Callable[[], dict[int, int]] | None = None
        self.sqlite_path: Path | None = None  # the database file, when it is SQLite
        self.postgres_url: str | None = None  # the database, when it is PostgreSQL

    def start(self, timeout: float = 180.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /health in {timeout:.0f} s")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        ticks = 0
        for pid in _process_tree(self.process.pid):
            with contextlib.suppress(OSError, ValueError):
                ticks += _cpu_ticks(pid)
        return ticks / CLOCK_TICKS

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # its own group: only what it started
            process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def service_server(
    workdir: Path, *, workers: int, database_url: str | None, admin_token: str
) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_PATH": str(workdir / "bench.db"),
        "DATABASE_URL": database_url or "",
        "ADMIN_TOKEN": admin_token,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "LOG_LEVEL": "warning",
        "ACCESS_LOG": "false",
        # The streamed answers are seeded long before the delta scenarios run (after the
        # growth to the large size): the idle sweep must not close them meanwhile.
        "STREAM_IDLE_SECONDS": "86400",
    }
    argv = [str(VENV_BIN / "chat-sessions"), "serve", "--migrate"]
    server = Server("service", argv, env, port, workdir)
    if not database_url:
        server.sqlite_path = workdir / "bench.db"
    else:
        server.postgres_url = database_url
        name = make_url(database_url).database or ""
        server.database_cpu = functools.partial(postgres_cpu_ticks, name)
    return server


def bare_server(workdir: Path, *, workers: int, answers: Path) -> Server:
    """The bare app, answering what the file `answers` holds (answers.capture)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(BENCH_DIR), "BENCH_ANSWERS": str(answers)}
    argv = [
        str(VENV_BIN / "python"),
        "-m",
        "uvicorn",
        "bare_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return Server("bare", argv, env, port, workdir)


# --- the database between runs --------------------------------------------------------


@dataclass
class Upkeep:
    """What bringing the database up to date after a run took: wall time, and CPU (the
    service's, and this process's checkpoint)."""

    seconds: float
    cpu_seconds: float


def settle_database(server: Server, token: str) -> Upkeep:
    """Bring the database up to date after the service's write runs (and the seeding); what
    it took (wrk.with_upkeep adds it to a write run's figures).

    On SQLite the search index trails the writes: the service builds it behind them, in the
    background, and a search indexes what is still waiting first. What a run leaves waiting is
    indexed here, by a search and then the service's background loop, and the write-ahead log
    is checkpointed to empty (copied into the database file and truncated), so that neither
    lands in the next timed run, the bare app's or another scenario's. On PostgreSQL the
    index is written with the rows and the server checkpoints on its own: nothing to do, and
    nothing is done. In particular no VACUUM or ANALYZE: a service cannot count on someone
    running them, so the service's figures must hold without (the hot statements keep to
    their indexes without statistics: tests/db/test_postgres_plans.py).
    """
    if server.sqlite_path is None:
        return Upkeep(0.0, 0.0)
    started, cpu_before = time.monotonic(), server.cpu_seconds()
    response = httpx.get(
        server.base + "/v1/search",
        params={"q": "settle", "limit": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    if response.status_code != 200:
        raise RuntimeError(f"search answered {response.status_code}: {response.text[:200]}")
    wait_for_search_index(server.sqlite_path)
    checkpoint_started = time.thread_time()
    checkpoint_to_empty(server.sqlite_path)
    own_cpu = time.thread_time() - checkpoint_started
    return Upkeep(time.monotonic() - started, server.cpu_seconds() - cpu_before + own_cpu)


def wait_for_search_index(path: Path, timeout: float = 900.0) -> None:
    """Until the service has indexed every message for search: a search indexes only the
    oldest of a large backlog itself, the service's background loop the rest (the watermark
    of migration 0004 then reaches the highest rowid)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=60)
    deadline = time.monotonic() + timeout
    try:
        while True:
            (waiting,) = connection.execute(
                "SELECT (SELECT coalesce(max(rowid), 0) FROM messages) - indexed_through"
                " FROM messages_fts_watermark"
            ).fetchone()
            if waiting <= 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the search index is still {waiting:,} messages behind")
            time.sleep(0.002)  # the most this adds to a write run's upkeep
    finally:
        connection.close()


def checkpoint_to_empty(path: Path) -> None:
    """Copy the whole WAL into the database file and truncate it. A checkpoint the service's
    own thread is running at that moment makes this one answer busy at once, without the busy
    timeout: it is retried."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        for _ in range(100):
            busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.05)
        print("  WARNING the WAL could not be checkpointed between runs", flush=True)
    finally:
        connection.close()


# --- PostgreSQL -----------------------------------------------------------------------------


async def execute_autocommit(url: Any, statement: str) -> None:
    """One statement outside a transaction (CREATE DATABASE refuses to run in one)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def fresh_postgres_database(url: str) -> Iterator[str]:
    """A new database on the server `url` names; dropped on the way out."""
    server = make_url(url).set(drivername="postgresql+asyncpg")
    admin_url = server.set(database=server.database or "postgres")
    name = f"chat_sessions_bench_{secrets.token_hex(4)}"
    asyncio.run(execute_autocommit(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(execute_autocommit(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
