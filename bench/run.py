"""The chat-sessions benchmark (`make bench`): the service against a bare Litestar app.

One run starts the service the way users run it (`chat-sessions serve --migrate`: uvicorn,
uvloop + httptools, no access log) on a fresh database in a temporary folder, and the bare app
of bench/bare_app.py (same routes and response shapes, no database, no auth) on the same
uvicorn settings, then drives both from wrk, a separate process, at 16 connections. Every
scenario is warmed up, then measured `--runs` times on each side, service and bare runs
alternating so that drift hits both; figures are medians. The server's CPU time per request
comes from /proc/<pid>/stat (utime + stime of the uvicorn process and its children).

Growth: the database is seeded through the API (batches of 500) to ~10k messages, the
"read the last 50" and deep list page scenarios are measured, then it is seeded to 1M
messages spread over more tenants and sessions and everything is measured again.

    .venv/bin/python bench/run.py                 # SQLite, 1 worker (what `make bench` runs)
    .venv/bin/python bench/run.py --quick         # smoke check: 1 run x 2 s, small seeds
    .venv/bin/python bench/run.py --database-url postgresql+asyncpg://postgres@127.0.0.1/postgres \
        --workers 1 2                             # PostgreSQL (a fresh database, dropped after)

Writes bench/results/latest.json (and RESULTS.md) for the default full SQLite run,
bench/results/postgresql.json (and RESULTS-postgresql.md) on PostgreSQL, and
bench/results/quick-<engine>.json for --quick. --strict exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import payloads
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
LUA_SCRIPT = BENCH_DIR / "wrk" / "scenario.lua"
RESULTS_DIR = BENCH_DIR / "results"
BATCH_SEED = 500  # messages per seeding request: the API's maximum
PAGE = 20  # the list route's default page size
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NOISY_CORES = 0.15  # other processes' CPU during a run above which the figures are suspect


# --- plan -----------------------------------------------------------------------------------


@dataclass
class Plan:
    runs: int
    duration: int  # seconds per measured run
    warmup: int  # seconds of warm-up per scenario and side
    connections: int
    threads: int
    hot_messages: int  # the session whose last 50 are read
    list_sessions: int  # sessions in the tenant that is listed
    big_total: int  # messages in the database at the large size
    filler_tenants: int
    filler_sessions: int  # per filler tenant

    @property
    def deep_page(self) -> int:
        """The page of the list tenant measured as "deep": 80% of the way down."""
        return max(2, int(self.list_sessions * 0.8) // PAGE)

    @property
    def small_total(self) -> int:
        return self.hot_messages + self.list_sessions  # the list sessions hold one message each


FULL = Plan(
    runs=3,
    duration=5,
    warmup=2,
    connections=16,
    threads=1,
    hot_messages=10_000,
    list_sessions=10_000,
    big_total=1_000_000,
    filler_tenants=20,
    filler_sessions=50,
)
QUICK = Plan(
    runs=1,
    duration=2,
    warmup=1,
    connections=16,
    threads=1,
    hot_messages=2_000,
    list_sessions=1_000,
    big_total=100_000,
    filler_tenants=5,
    filler_sessions=20,
)


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        data = file.read()
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, all threads


def _machine_busy_seconds() -> float:
    """CPU time every process on the machine has used (all cores), from /proc/stat."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _children_cpu_seconds() -> float:
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


def bare_server(workdir: Path, *, workers: int) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(BENCH_DIR)}
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


# --- wrk ------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk's path; installs the Debian package when it is missing and this user can."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    prefix: list[str] | None = None
    if apt and os.geteuid() == 0:
        prefix = []
    elif apt and shutil.which("sudo"):
        prefix = ["sudo", "-n"]
    if prefix is not None and apt:
        print("wrk is missing: apt-get install -y wrk", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [*prefix, apt, "install", "-y", "wrk"]
        if subprocess.run(install, env=env).returncode != 0:
            subprocess.run([*prefix, apt, "update"], env=env)
            subprocess.run(install, env=env)
    found = shutil.which("wrk")
    if found:
        return found
    sys.exit(
        "error: the benchmark needs wrk (the HTTP load generator) and could not install it.\n"
        "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y wrk\n"
        "  macOS:         brew install wrk\n"
        "  elsewhere:     build wg/wrk from source and put it on PATH\n"
        "then run `make bench` again."
    )


@dataclass
class Scenario:
    key: str
    label: str
    path: str
    method: str = "GET"
    body: str | None = None
    token: str = ""
    items: int = 1  # messages per request (the batch)
    connections: int | None = None  # wrk connections, when not the plan's
    delay_ms: int = 0  # each connection's pause between requests

    @property
    def expected_status(self) -> int:
        return 201 if self.method == "POST" else 200


@dataclass
class Measured:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    db_cpu_us: float | None  # the database server's, when it runs apart (PostgreSQL)
    requests: int
    errors: int
    background: float  # cores' worth of CPU other processes used during the run
    raw: dict[str, Any] = field(default_factory=dict)


def run_wrk(wrk: str, server: Server, scenario: Scenario, seconds: int, plan: Plan) -> Measured:
    env = {
        **os.environ,
        "BENCH_METHOD": scenario.method,
        "BENCH_TOKEN": scenario.token,
        "BENCH_BODY": scenario.body or "",
        "BENCH_UNIQUE": "1" if scenario.body and payloads.COUNTER in scenario.body else "",
        "BENCH_DELAY_MS": str(scenario.delay_ms or ""),
    }
    argv = [
        wrk,
        f"-t{plan.threads}",
        f"-c{scenario.connections or plan.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        server.base + scenario.path,
    ]
    database_cpu = server.database_cpu or dict
    cpu_before, wrk_before = server.cpu_seconds(), _children_cpu_seconds()
    db_before = database_cpu()
    busy_before, wall_before = _machine_busy_seconds(), time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    cpu = server.cpu_seconds() - cpu_before
    db_cpu = cpu_seconds_between(db_before, database_cpu())
    wrk_cpu = _children_cpu_seconds() - wrk_before
    # What else ran meanwhile (other people's tests, builds...): it skews every figure.
    others = _machine_busy_seconds() - busy_before - cpu - wrk_cpu - db_cpu
    background = max(0.0, others / (time.monotonic() - wall_before))
    line = next((row for row in done.stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    requests = max(1, raw["requests"])
    errors = sum(value for name, value in raw.items() if name.startswith("errors_"))
    return Measured(
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        cpu_us=cpu * 1e6 / requests,
        db_cpu_us=db_cpu * 1e6 / requests if server.database_cpu else None,
        requests=raw["requests"],
        errors=errors,
        background=background,
        raw={**raw, "cpu_s": round(cpu, 3), "wrk_cpu_s": round(wrk_cpu, 3)},
    )


def settle_database(server: Server, token: str) -> float:
    """Seconds it took to bring the search index up to date (a search, and on SQLite the
    service's background indexer).

    On SQLite the index trails the writes: the service builds it in the background and a
    search indexes what is still waiting first. Left alone, what a write run leaves waiting
    would be indexed while the bare app is measured and slow it down; so after the service's
    write runs and the seeding, searches do it there and then, outside every timed run, and
    their time is reported on its own. Then the database's own
    deferred upkeep is done from this process, so that it does not fall on the service's next
    timed run, of another scenario: on SQLite the write-ahead log is checkpointed to empty; on
    PostgreSQL the tables are vacuumed and analysed (as autovacuum would, mid-run, after a
    bulk load).
    """
    started = time.monotonic()
    response = httpx.get(
        server.base + "/v1/search",
        params={"q": "settle", "limit": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    if response.status_code != 200:
        raise RuntimeError(f"search answered {response.status_code}: {response.text[:200]}")
    if server.sqlite_path is not None:
        wait_for_search_index(server.sqlite_path)
    seconds = time.monotonic() - started
    if server.sqlite_path is not None:
        checkpoint_to_empty(server.sqlite_path)
    if server.postgres_url is not None:
        asyncio.run(execute_autocommit(server.postgres_url, "VACUUM (ANALYZE)"))
    return seconds


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
            time.sleep(0.01)
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


def _shape(value: Any) -> Any:
    """What a response looks like, values left out: keys, and list lengths."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in sorted(value.items()) if key != "preview"}
    if isinstance(value, list):
        return [len(value), _shape(value[0]) if value else None]
    return None


def sanity_check(scenario: Scenario, servers: list[Server]) -> list[str]:
    """One request to each side before measuring: right status, same response shape."""
    problems, shapes = [], {}
    body = (scenario.body or "").replace(payloads.COUNTER, "check")
    headers = {"Authorization": f"Bearer {scenario.token}"}
    if scenario.body:
        headers["Content-Type"] = "application/json"
    for server in servers:
        response = httpx.request(
            scenario.method,
            server.base + scenario.path,
            content=body or None,
            headers=headers,
            timeout=30,
        )
        if response.status_code != scenario.expected_status:
            problems.append(
                f"{scenario.key}: {server.name} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
            continue
        shapes[server.name] = _shape(response.json())
    if len(shapes) == 2 and shapes["service"] != shapes["bare"]:
        problems.append(f"{scenario.key}: the service's and the bare app's responses differ")
    return problems


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize(runs: list[Measured]) -> dict[str, Any]:
    return {
        "rps": round(_median([run.rps for run in runs]), 1),
        "p50_ms": round(_median([run.p50_ms for run in runs]), 3),
        "p99_ms": round(_median([run.p99_ms for run in runs]), 3),
        "cpu_us_per_request": round(_median([run.cpu_us for run in runs]), 1),
        "db_cpu_us_per_request": (
            round(_median([run.db_cpu_us for run in runs if run.db_cpu_us is not None]), 1)
            if runs[0].db_cpu_us is not None
            else None
        ),
        "errors": sum(run.errors for run in runs),
        "background_cores": round(max(run.background for run in runs), 2),
        "runs": [
            {
                "rps": round(run.rps, 1),
                "p50_ms": round(run.p50_ms, 3),
                "p99_ms": round(run.p99_ms, 3),
                "cpu_us_per_request": round(run.cpu_us, 1),
                "db_cpu_us_per_request": None if run.db_cpu_us is None else round(run.db_cpu_us, 1),
                "background_cores": round(run.background, 2),
                **run.raw,
            }
            for run in runs
        ],
    }


def measure(
    wrk: str, scenario: Scenario, service: Server, bare: Server, plan: Plan
) -> dict[str, Any]:
    """Warm up both sides, then `plan.runs` runs each, alternating which side goes first."""
    problems = sanity_check(scenario, [service, bare])
    for problem in problems:
        print(f"  WARNING {problem}", flush=True)
    catch_up = {"seconds": 0.0, "messages": 0}

    def settle(server: Server, measured: Measured) -> None:
        if server is service and scenario.method == "POST":
            catch_up["seconds"] += settle_database(service, scenario.token)
            catch_up["messages"] += measured.requests * scenario.items

    for server in (service, bare):
        settle(server, run_wrk(wrk, server, scenario, plan.warmup, plan))
    runs: dict[str, list[Measured]] = {"service": [], "bare": []}
    for index in range(plan.runs):
        order = (service, bare) if index % 2 == 0 else (bare, service)
        for server in order:
            measured = run_wrk(wrk, server, scenario, plan.duration, plan)
            runs[server.name].append(measured)
            if not server.alive():
                raise RuntimeError(f"{server.name} died:\n{server.log_tail()}")
            settle(server, measured)
    result: dict[str, Any] = {
        "label": scenario.label,
        "method": scenario.method,
        "path": scenario.path,
        "messages_per_request": scenario.items,
        "service": summarize(runs["service"]),
        "bare": summarize(runs["bare"]),
        "problems": problems,
    }
    result["ratio"] = round(result["service"]["rps"] / result["bare"]["rps"], 3)
    if catch_up["messages"]:
        result["search_catch_up"] = {
            "messages": catch_up["messages"],
            "seconds": round(catch_up["seconds"], 3),
            "messages_per_s": round(catch_up["messages"] / max(catch_up["seconds"], 1e-6)),
        }
    if scenario.items > 1:
        result["service"]["messages_per_s"] = round(result["service"]["rps"] * scenario.items)
        result["bare"]["messages_per_s"] = round(result["bare"]["rps"] * scenario.items)
    svc, bar = result["service"], result["bare"]
    flag = f"  ({svc['errors']} errors!)" if svc["errors"] or bar["errors"] else ""
    noise = max(svc["background_cores"], bar["background_cores"])
    if noise >= NOISY_CORES:
        flag += f"  (other processes used {noise:.1f} cores)"
    print(
        f"  {scenario.label:40} service {svc['rps']:8.0f} req/s  bare {bar['rps']:8.0f} req/s"
        f"  ratio {result['ratio']:.2f}  p99 {svc['p99_ms']:6.1f} ms"
        f"  cpu {svc['cpu_us_per_request']:6.0f} us/req{flag}",
        flush=True,
    )
    return result


def measure_search_while_appending(
    wrk: str, search: Scenario, append: Scenario, service: Server, plan: Plan
) -> dict[str, Any]:
    """Searches now and then while 16 writers append without pause, on the service alone (the
    bare app has no search). Both wrk runs go side by side; only their latencies and rates
    mean something here, not the CPU per request (each run sees the other's)."""
    searches: list[Measured] = []
    appends: list[Measured] = []
    for index, seconds in enumerate([plan.warmup] + [plan.duration] * plan.runs):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            writing = pool.submit(run_wrk, wrk, service, append, seconds, plan)
            searching = pool.submit(run_wrk, wrk, service, search, seconds, plan)
            appended, searched = writing.result(), searching.result()
        if not service.alive():
            raise RuntimeError(f"service died:\n{service.log_tail()}")
        settle_database(service, append.token)
        if index > 0:
            appends.append(appended)
            searches.append(searched)
    result = {
        "label": search.label,
        "path": search.path,
        "search_connections": search.connections,
        "search_delay_ms": search.delay_ms,
        "search": summarize(searches),
        "append": summarize(appends),
    }
    found, wrote = result["search"], result["append"]
    errors = found["errors"] + wrote["errors"]
    print(
        f"  {search.label:40} search p50 {found['p50_ms']:6.1f} ms  p99 {found['p99_ms']:6.1f} ms"
        f"  ({found['rps']:.0f}/s); appends {wrote['rps']:8.0f} req/s"
        f"  p99 {wrote['p99_ms']:6.1f} ms{f'  ({errors} errors!)' if errors else ''}",
        flush=True,
    )
    return result


# --- seeding through the API ----------------------------------------------------------------


async def _limited(tasks: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(task: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await task()

    return list(await asyncio.gather(*(one(task) for task in tasks)))


def _ok(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response


class Api:
    """The seeding client: plain API calls, as a tenant or as the operator."""

    def __init__(self, base: str, admin_token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=16)
        )
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    async def close(self) -> None:
        await self.client.aclose()

    async def tenant(self, name: str) -> str:
        response = await self.client.post(
            "/v1/admin/tenants", json={"name": name}, headers=self.admin
        )
        return str(_ok(response, 201).json()["api_key"])

    async def session(self, key: str, i: int | str) -> str:
        response = await self.client.post(
            "/v1/sessions", json=payloads.session(i), headers={"Authorization": f"Bearer {key}"}
        )
        return str(_ok(response, 201).json()["id"])

    async def append(self, key: str, session_id: str, count: int, start: int = 0) -> None:
        auth = {"Authorization": f"Bearer {key}"}
        for offset in range(0, count, BATCH_SEED):
            n = min(BATCH_SEED, count - offset)
            response = await self.client.post(
                f"/v1/sessions/{session_id}/messages/batch",
                content=payloads.encode(payloads.batch(n, start + offset)),
                headers={**auth, "Content-Type": "application/json"},
            )
            _ok(response, 201)

    async def message_total(self) -> int:
        total, cursor = 0, None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get("/v1/admin/tenants", params=params, headers=self.admin)
            page = _ok(response, 200).json()
            total += sum(int(row["message_count"]) for row in page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return total

    async def cursor_for_page(self, key: str, page: int) -> str:
        """The cursor that opens page `page` (1-based) of the list, by walking next_cursor."""
        cursor: str | None = None
        auth = {"Authorization": f"Bearer {key}"}
        for _ in range(page - 1):
            params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get("/v1/sessions", params=params, headers=auth)
            cursor = _ok(response, 200).json()["next_cursor"]
            if cursor is None:
                raise RuntimeError(f"the list ended before page {page}")
        assert cursor is not None
        return cursor


@dataclass
class Fixture:
    main_key: str
    list_key: str
    hot_session: str  # holds plan.hot_messages messages: read, got
    append_session: str  # appends land here (one session: the contended case)
    batch_session: str


async def seed_small(api: Api, plan: Plan) -> Fixture:
    started = time.monotonic()
    main_key = await api.tenant("bench-main")
    list_key = await api.tenant("bench-list")
    hot = await api.session(main_key, "hot")
    await api.append(main_key, hot, plan.hot_messages)
    append_session = await api.session(main_key, "append")
    batch_session = await api.session(main_key, "batch")

    async def listed(i: int) -> None:
        session_id = await api.session(list_key, i)
        await api.append(list_key, session_id, 1, start=i)

    await _limited([functools.partial(listed, i) for i in range(plan.list_sessions)], 8)
    took = time.monotonic() - started
    print(f"  seeded {plan.small_total:,} messages in {took:.1f} s", flush=True)
    return Fixture(main_key, list_key, hot, append_session, batch_session)


async def seed_big(api: Api, plan: Plan, have: int) -> None:
    """Grow the database to plan.big_total messages in filler tenants and sessions."""
    started = time.monotonic()
    missing = plan.big_total - have
    sessions = plan.filler_tenants * plan.filler_sessions
    per_session, extra = divmod(max(0, missing), sessions)
    jobs: list[Callable[[], Awaitable[Any]]] = []
    for t in range(plan.filler_tenants):
        key = await api.tenant(f"bench-filler-{t}")
        for s in range(plan.filler_sessions):
            count = per_session + (1 if t * plan.filler_sessions + s < extra else 0)

            async def fill(key: str = key, i: str = f"{t}-{s}", count: int = count) -> None:
                session_id = await api.session(key, i)
                await api.append(key, session_id, count)

            jobs.append(fill)
    await _limited(jobs, 4)
    took = time.monotonic() - started
    print(
        f"  seeded {missing:,} more messages in {took:.1f} s ({missing / took:,.0f}/s)",
        flush=True,
    )


async def prepare_small(base: str, admin_token: str, plan: Plan) -> tuple[Fixture, int, str]:
    """Seed the small database; its message total and the deep page's cursor."""
    api = Api(base, admin_token)
    try:
        fx = await seed_small(api, plan)
        total = await api.message_total()
        return fx, total, await api.cursor_for_page(fx.list_key, plan.deep_page)
    finally:
        await api.close()


async def grow(base: str, admin_token: str, plan: Plan, have: int) -> int:
    api = Api(base, admin_token)
    try:
        await seed_big(api, plan, have)
        return await api.message_total()
    finally:
        await api.close()


async def deep_cursor(base: str, admin_token: str, fx: Fixture, plan: Plan) -> str:
    api = Api(base, admin_token)
    try:
        return await api.cursor_for_page(fx.list_key, plan.deep_page)
    finally:
        await api.close()


# --- PostgreSQL -----------------------------------------------------------------------------


async def execute_autocommit(url: Any, statement: str) -> None:
    """One statement outside a transaction (CREATE DATABASE and VACUUM refuse to run in one)."""
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


# --- reporting ------------------------------------------------------------------------------


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    # Uncommitted changes that the figures depend on (not the benchmark's own files).
    dirty = git("status", "--porcelain", "--", "src", "migrations", "pyproject.toml")
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(dirty)}


def table_rows(scenarios: dict[str, Any]) -> list[list[str]]:
    rows = []
    for result in scenarios.values():
        svc, bare = result["service"], result["bare"]
        db = svc.get("db_cpu_us_per_request")
        rows.append(
            [
                result["label"],
                f"{svc['rps']:,.0f}",
                f"{bare['rps']:,.0f}",
                f"{result['ratio']:.2f}x",
                f"{svc['p50_ms']:.2f}",
                f"{svc['p99_ms']:.2f}",
                f"{svc['cpu_us_per_request']:,.0f}" + ("" if db is None else f" +{db:,.0f} db"),
                f"{bare['cpu_us_per_request']:,.0f}",
            ]
        )
    return rows


HEADER = [
    "scenario",
    "service req/s",
    "bare req/s",
    "ratio",
    "p50 ms",
    "p99 ms",
    "CPU us/req",
    "bare CPU us/req",
]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells)

    return "\n".join([line(HEADER), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(rows: list[list[str]]) -> str:
    header = [cell.replace("us", "µs") for cell in HEADER]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def growth_rows(growth: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, item in growth.items():
        rows.append(
            [
                item["label"],
                f"{item['small']['p50_ms']:.2f} / {item['small']['p99_ms']:.2f}",
                f"{item['big']['p50_ms']:.2f} / {item['big']['p99_ms']:.2f}",
                f"{item['p50_ratio']:.2f}x",
                f"{item['cpu_ratio']:.2f}x",
            ]
        )
        del key
    return rows


def targets_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    def target(name: str, value: float | None, op: str, limit: float) -> dict[str, Any]:
        ok = value is not None and (value >= limit if op == ">=" else value <= limit)
        return {"target": name, "value": value, "op": op, "limit": limit, "pass": ok}

    return [
        target("append one message >= 0.35x bare", report["append_ratio"], ">=", 0.35),
        target("append one message p99 <= 20 ms", report["append_p99_ms"], "<=", 20.0),
        target("read the last 50 >= 0.5x bare", report["read_last50_ratio"], ">=", 0.5),
        target("batch of 20 >= 40,000 messages/s", report["batch_messages_per_s"], ">=", 40_000),
        target("read the last 50: 1M vs 10k <= 1.5x", report["read_growth_1m_vs_10k"], "<=", 1.5),
        target(
            "deep list page: 1M vs 10k <= 1.5x",
            report["list_deep_growth_1m_vs_10k"],
            "<=",
            1.5,
        ),
        target(
            "deep list page vs first page <= 1.5x (keyset)",
            report["list_growth_deep_vs_first"],
            "<=",
            1.5,
        ),
        target(
            "search p99 while 16 writers append <= 100 ms",
            report.get("search_while_appending_p99_ms"),
            "<=",
            100.0,
        ),
    ]


def verdict_lines(targets: list[dict[str, Any]]) -> list[str]:
    lines = []
    for item in targets:
        value = item["value"]
        shown = "n/a" if value is None else f"{value:,.2f}"
        lines.append(f"{'PASS' if item['pass'] else 'FAIL'}  {item['target']:48} measured {shown}")
    return lines


NOTES_MARKER = "<!-- notes: kept by bench/run.py when it rewrites this file -->"


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    """Rewrite the results page; whatever follows NOTES_MARKER in it (a diagnosis written by
    hand) is kept."""
    notes = ""
    if path.exists():
        previous = path.read_text()
        if NOTES_MARKER in previous:
            notes = previous[previous.index(NOTES_MARKER) :]
    first = report["workers"][str(report["worker_counts"][0])]
    plan = report["plan"]
    parts = [
        f"# Benchmark results ({report['engine']})",
        "",
        f"Last run: {report['date']}, commit `{report['commit']}`"
        + (" (with uncommitted changes to the service)" if report["dirty"] else "")
        + f", {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores. wrk -t{plan['threads']} -c{plan['connections']}, "
        f"{plan['runs']} x {plan['duration']} s per scenario and side after "
        f"{plan['warmup']} s of warm-up, service and bare runs alternating; medians. "
        "p50/p99 and CPU are the service's. Regenerate with `make bench`.",
        "",
    ]
    if report["background_cores_max"] >= NOISY_CORES:
        parts += [
            f"**Noisy run:** other processes used up to {report['background_cores_max']:.1f} "
            "cores of the machine during some runs, so absolute figures are low and tails "
            "long; ratios taken within the run are the figures to trust.",
            "",
        ]
    for workers in report["worker_counts"]:
        scenarios = report["workers"][str(workers)]["scenarios"]
        parts += [
            f"## {workers} worker{'s' if workers > 1 else ''}, "
            f"database of {report['sizes']['big_messages']:,} messages",
            "",
            markdown_table(table_rows(scenarios)),
            "",
        ]
    growth = first["growth"]
    parts += [
        f"## Growth: {report['sizes']['small_messages']:,} → "
        f"{report['sizes']['big_messages']:,} messages",
        "",
        f"Small: the {plan['hot_session_messages']:,}-message session that is read and the "
        f"listed tenant's {plan['list_tenant_sessions']:,} sessions of one message each. Large: "
        f"the same plus {plan['filler_tenants']} tenants of {plan['filler_sessions_per_tenant']} "
        "sessions, seeded through the batch route, to the total shown. Keys `*_1m_vs_10k` of "
        "latest.json are the p50 ratios below.",
        "",
        "| scenario | small p50 / p99 ms | large p50 / p99 ms | p50 ratio | CPU ratio |",
        "|---|---:|---:|---:|---:|",
        *("| " + " | ".join(row) + " |" for row in growth_rows(growth)),
        "",
        *search_index_lines(report),
        *under_writes_lines(report),
        "## Targets (1 worker, 16 connections)",
        "",
        "```",
        *verdict_lines(report["targets"]),
        "```",
        "",
        "## What it means",
        "",
        interpretation(report),
        "",
    ]
    text = "\n".join(parts)
    path.write_text(text + ("\n" + notes if notes else ""))


def under_writes_lines(report: dict[str, Any]) -> list[str]:
    """The search scenario that runs beside the appends (the service alone)."""
    lines = []
    for workers in report["worker_counts"]:
        result = report["workers"][str(workers)].get(UNDER_WRITES)
        if not result:
            continue
        found, wrote = result["search"], result["append"]
        lines.append(
            f"- {workers} worker{'s' if workers > 1 else ''}: search p50 {found['p50_ms']:.1f} ms,"
            f" p99 {found['p99_ms']:.1f} ms ({found['rps']:.1f} searches/s); the appends beside"
            f" them {wrote['rps']:,.0f} req/s, p50 {wrote['p50_ms']:.2f} ms, p99"
            f" {wrote['p99_ms']:.2f} ms."
        )
    if not lines:
        return []
    return [
        "## Searching while writers append",
        "",
        f"One client searches (a rare word, `limit=10`) every {SEARCH_PAUSE_MS} ms while "
        f"{report['plan']['connections']} writers append to one session without pause; two wrk "
        "runs side by side, on the service alone:",
        "",
        *lines,
        "",
    ]


def search_index_lines(report: dict[str, Any]) -> list[str]:
    """What building the search index behind the writes cost, measured apart (SQLite)."""
    build = report.get("search_index_build") or {}
    if report["engine"] != "sqlite" or not build:
        return []
    first = report["workers"][str(report["worker_counts"][0])]["scenarios"]
    lines = [
        "## Search index, built behind the writes",
        "",
        "On SQLite, appends do not index their messages for search; the service does it in "
        "the background and before a search. After seeding and after each of the service's "
        "write runs the benchmark waits until the index is current, outside the timed runs "
        "(otherwise the work would land in the bare app's runs):",
        "",
        f"- after seeding: {build['messages']:,} messages indexed in {build['seconds']:.1f} s "
        f"({build['messages_per_s']:,} messages/s);",
    ]
    for scenario in first.values():
        catch_up = scenario.get("search_catch_up")
        if catch_up:
            lines.append(
                f'- after "{scenario["label"]}": {catch_up["messages"]:,} messages in '
                f"{catch_up['seconds']:.1f} s ({catch_up['messages_per_s']:,} messages/s);"
            )
    lines[-1] = lines[-1].removesuffix(";") + "."
    return [*lines, ""]


def interpretation(report: dict[str, Any]) -> str:
    scenarios = report["workers"][str(report["worker_counts"][0])]["scenarios"]
    missed = [item["target"] for item in report["targets"] if not item["pass"]]
    append, read = scenarios["append"], scenarios["read_last50"]
    text = (
        "The bare app is the ceiling: the same routes and JSON on the same server, without "
        "database or auth, so a ratio says what share of the framework's own throughput the "
        "service keeps and `CPU µs/req` minus the bare figure is what the service adds per "
        f"request. Appending one message costs {append['service']['cpu_us_per_request']:,.0f} "
        f"µs of server CPU against {append['bare']['cpu_us_per_request']:,.0f} µs bare "
        f"({append['ratio']:.2f}x the bare throughput, p99 {append['service']['p99_ms']:.1f} "
        f"ms, 16 writers on one session); reading the last 50 costs "
        f"{read['service']['cpu_us_per_request']:,.0f} µs against "
        f"{read['bare']['cpu_us_per_request']:,.0f} µs ({read['ratio']:.2f}x). Batches reach "
        f"{report['batch_messages_per_s']:,.0f} messages/s. Growing the database "
        f"{report['sizes']['big_messages'] / report['sizes']['small_messages']:.0f}-fold "
        f"changes the last-50 read by {report['read_growth_1m_vs_10k']:.2f}x and a deep list "
        f"page by {report['list_deep_growth_1m_vs_10k']:.2f}x, and a deep page costs "
        f"{report['list_growth_deep_vs_first']:.2f}x the first"
    )
    growth_ok = all(item["pass"] for item in report["targets"] if "1.5x" in item["target"])
    text += (
        ": indexed keyset reads, whose cost does not depend on how much is stored or how far "
        "one has paged. "
        if growth_ok
        else ": some read grows with the data (look for a scan or an OFFSET). "
    )
    if missed:
        text += "Missed: " + "; ".join(missed) + "."
    else:
        text += "Every target is met."
    return text


# --- the run --------------------------------------------------------------------------------


def build_scenarios(fx: Fixture, plan: Plan, cursor: str) -> dict[str, Scenario]:
    hot = fx.hot_session
    return {
        "get_session": Scenario("get_session", "get one session", f"/v1/sessions/{hot}"),
        "list_first": Scenario(
            "list_first", "list sessions, first page", "/v1/sessions", token=fx.list_key
        ),
        "list_deep": Scenario(
            "list_deep",
            f"list sessions, page {plan.deep_page} (cursor)",
            f"/v1/sessions?cursor={cursor}",
            token=fx.list_key,
        ),
        "read_last50": Scenario(
            "read_last50",
            f"read the last 50 (of {plan.hot_messages:,})",
            f"/v1/sessions/{hot}/messages?order=desc&limit=50",
        ),
        "create_session": Scenario(
            "create_session",
            "create a session",
            "/v1/sessions",
            method="POST",
            body=payloads.WRK_SESSION,
        ),
        "append": Scenario(
            "append",
            "append one message (one session)",
            f"/v1/sessions/{fx.append_session}/messages",
            method="POST",
            body=payloads.WRK_MESSAGE,
        ),
        "append_batch_20": Scenario(
            "append_batch_20",
            "append a batch of 20 (one session)",
            f"/v1/sessions/{fx.batch_session}/messages/batch",
            method="POST",
            body=payloads.WRK_BATCH_20,
            items=20,
        ),
        "search_while_appending": Scenario(
            "search_while_appending",
            f"search every {SEARCH_PAUSE_MS} ms while {plan.connections} writers append",
            "/v1/search?q=check&limit=10",
            connections=1,
            delay_ms=SEARCH_PAUSE_MS,
        ),
    }


def with_token(scenarios: dict[str, Scenario], key: str) -> dict[str, Scenario]:
    for scenario in scenarios.values():
        if not scenario.token:
            scenario.token = key
    return scenarios


GROWTH_KEYS = ("read_last50", "list_first", "list_deep")
READS = ("get_session", "list_first", "list_deep", "read_last50")
WRITES = ("create_session", "append", "append_batch_20")
UNDER_WRITES = "search_while_appending"  # the service alone: the bare app has no search
SCENARIOS = (*READS, *WRITES, UNDER_WRITES)
# Searches come now and then, each after what was written since the one before; the writers
# never pause.
SEARCH_PAUSE_MS = 1000


def run(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = dataclasses.replace(plan, runs=args.runs)
    if args.duration:
        plan = dataclasses.replace(plan, duration=args.duration)
    wrk = ensure_wrk()
    # What is measured is what the service loads at start: note the commit and date now.
    commit = git_commit()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    engine = "postgresql" if args.database_url else "sqlite"
    worker_counts = args.workers
    selected = args.scenarios or list(SCENARIOS)
    started = time.monotonic()
    print(
        f"chat-sessions benchmark: {engine}, workers {worker_counts}, "
        f"wrk -t{plan.threads} -c{plan.connections}, {plan.runs} x {plan.duration} s per "
        f"scenario and side{' (quick)' if args.quick else ''}",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chat-bench-")))
        database_url = None
        if args.database_url:
            database_url = stack.enter_context(fresh_postgres_database(args.database_url))
        admin_token = secrets.token_urlsafe(24)
        report_workers: dict[str, Any] = {}
        growth: dict[str, Any] = {}
        sizes: dict[str, int] = {}
        fx: Fixture | None = None
        search_build: dict[str, Any] = {}
        for position, workers in enumerate(worker_counts):
            service = service_server(
                workdir, workers=workers, database_url=database_url, admin_token=admin_token
            )
            bare = bare_server(workdir, workers=workers)
            stack.callback(service.stop)
            stack.callback(bare.stop)
            service.start()
            bare.start()
            print(
                f"\n[{workers} worker{'s' if workers > 1 else ''}] service on {service.base},"
                f" bare app on {bare.base}",
                flush=True,
            )
            scenarios_out: dict[str, Any] = {}
            if position == 0:
                fx, sizes["small_messages"], cursor = asyncio.run(
                    prepare_small(service.base, admin_token, plan)
                )
                small = with_token(build_scenarios(fx, plan, cursor), fx.main_key)
                seconds = settle_database(service, fx.main_key)
                built = f"; search index built in {seconds:.1f} s" if engine == "sqlite" else ""
                print(f"\nsmall database ({sizes['small_messages']:,} messages{built})", flush=True)
                small_results = {
                    key: measure(wrk, small[key], service, bare, plan)
                    for key in GROWTH_KEYS
                    if key in selected
                }
                print("\ngrowing the database", flush=True)
                sizes["big_messages"] = asyncio.run(
                    grow(service.base, admin_token, plan, sizes["small_messages"])
                )
                seconds = settle_database(service, fx.main_key)
                if engine == "sqlite":  # PostgreSQL indexes as it writes
                    grown = sizes["big_messages"] - sizes["small_messages"]
                    search_build = {
                        "messages": grown,
                        "seconds": round(seconds, 3),
                        "messages_per_s": round(grown / max(seconds, 1e-6)),
                    }
                    print(
                        f"search index built for the {grown:,} new messages in {seconds:.1f} s"
                        f" ({search_build['messages_per_s']:,} messages/s)",
                        flush=True,
                    )
            assert fx is not None
            cursor = asyncio.run(deep_cursor(service.base, admin_token, fx, plan))
            scenarios = with_token(build_scenarios(fx, plan, cursor), fx.main_key)
            print(f"\nlarge database ({sizes['big_messages']:,} messages)", flush=True)
            for key in (*READS, *WRITES):
                if key in selected:
                    scenarios_out[key] = measure(wrk, scenarios[key], service, bare, plan)
            under_writes = None
            if UNDER_WRITES in selected:
                search, append = scenarios[UNDER_WRITES], scenarios["append"]
                for problem in sanity_check(search, [service]):
                    print(f"  WARNING {problem}", flush=True)
                under_writes = measure_search_while_appending(wrk, search, append, service, plan)
            if position == 0:
                for key in small_results:
                    before, after = small_results[key]["service"], scenarios_out[key]["service"]
                    growth[key] = {
                        "label": scenarios[key].label,
                        "small": before,
                        "big": after,
                        "small_bare": small_results[key]["bare"],
                        "p50_ratio": round(after["p50_ms"] / before["p50_ms"], 3),
                        "p99_ratio": round(after["p99_ms"] / before["p99_ms"], 3),
                        "cpu_ratio": round(
                            after["cpu_us_per_request"] / before["cpu_us_per_request"], 3
                        ),
                        "rps_ratio": round(after["rps"] / before["rps"], 3),
                    }
            report_workers[str(workers)] = {
                "scenarios": scenarios_out,
                "growth": growth,
                UNDER_WRITES: under_writes,
            }
            service.stop()
            bare.stop()

    first = report_workers[str(worker_counts[0])]["scenarios"]
    first_under_writes = report_workers[str(worker_counts[0])][UNDER_WRITES]

    def figure(key: str, pick: Callable[[dict[str, Any]], float]) -> float | None:
        """A figure of the first worker count's `key` scenario; None when it was not run."""
        return pick(first[key]) if key in first else None

    def growth_of(key: str) -> float | None:
        return growth[key]["p50_ratio"] if key in growth else None

    report: dict[str, Any] = {
        "date": date,
        "commit": commit["commit"],
        "dirty": commit["dirty"],
        "engine": engine,
        "quick": bool(args.quick),
        "worker_counts": worker_counts,
        "scenarios_run": selected,
        "append_ratio": figure("append", lambda result: result["ratio"]),
        "append_p99_ms": figure("append", lambda result: result["service"]["p99_ms"]),
        "read_last50_ratio": figure("read_last50", lambda result: result["ratio"]),
        "read_last50_p99_ms": figure("read_last50", lambda result: result["service"]["p99_ms"]),
        "batch_messages_per_s": figure(
            "append_batch_20", lambda result: result["service"]["messages_per_s"]
        ),
        "read_growth_1m_vs_10k": growth_of("read_last50"),
        "list_deep_growth_1m_vs_10k": growth_of("list_deep"),
        "list_growth_deep_vs_first": (
            round(
                first["list_deep"]["service"]["p50_ms"] / first["list_first"]["service"]["p50_ms"],
                3,
            )
            if "list_deep" in first and "list_first" in first
            else None
        ),
        "search_while_appending_p99_ms": (
            first_under_writes["search"]["p99_ms"] if first_under_writes else None
        ),
        "sizes": sizes,
        # SQLite builds its search index behind the writes; the bench has it done outside
        # the timed runs (settle_database) and reports what that took here.
        "search_index_build": search_build,
        "plan": {
            "runs": plan.runs,
            "duration": plan.duration,
            "warmup": plan.warmup,
            "connections": plan.connections,
            "threads": plan.threads,
            "hot_session_messages": plan.hot_messages,
            "list_tenant_sessions": plan.list_sessions,
            "deep_page": plan.deep_page,
            "page_size": PAGE,
            "filler_tenants": plan.filler_tenants,
            "filler_sessions_per_tenant": plan.filler_sessions,
        },
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[
                0
            ],
        },
        "workers": report_workers,
    }
    report["targets"] = targets_of(report)
    report["background_cores_max"] = max(
        (
            result[side]["background_cores"]
            for entry in report_workers.values()
            for result in entry["scenarios"].values()
            for side in ("service", "bare")
        ),
        default=0.0,
    )
    report["seconds"] = round(time.monotonic() - started, 1)

    for workers in worker_counts:
        print(
            f"\n== {engine}, {workers} worker{'s' if workers > 1 else ''}, "
            f"{sizes['big_messages']:,} messages; p50/p99/CPU are the service's ==",
            flush=True,
        )
        print(text_table(table_rows(report_workers[str(workers)]["scenarios"])))
    if "append_batch_20" in first:
        print(
            f"\nbatch of 20: {report['batch_messages_per_s']:,.0f} messages/s (service), "
            f"{first['append_batch_20']['bare']['messages_per_s']:,.0f} (bare)"
        )
    for workers in worker_counts:
        under_writes = report_workers[str(workers)][UNDER_WRITES]
        if under_writes:
            found, wrote = under_writes["search"], under_writes["append"]
            print(
                f"\n{under_writes['label']} ({workers} worker{'s' if workers > 1 else ''}): "
                f"search p50 {found['p50_ms']:.1f} ms, p99 {found['p99_ms']:.1f} ms; "
                f"appends {wrote['rps']:,.0f} req/s, p99 {wrote['p99_ms']:.1f} ms"
            )
    print(f"\n== growth {sizes['small_messages']:,} -> {sizes['big_messages']:,} messages ==")
    for row in growth_rows(growth):
        print(f"  {row[0]:40} p50/p99 ms {row[1]:>13} -> {row[2]:>13}  p50 {row[3]}  cpu {row[4]}")
    print(
        "\n== targets (first worker count; defined for 1 worker, 16 connections) ==",
    )
    print("\n".join(verdict_lines(report["targets"])))
    if report["background_cores_max"] >= NOISY_CORES:
        print(
            f"\nWARNING: other processes used up to {report['background_cores_max']:.1f} cores "
            "during the runs: the figures are noisy; run again on a quiet machine."
        )

    errors = sum(
        result[side]["errors"]
        for entry in report_workers.values()
        for result in entry["scenarios"].values()
        for side in ("service", "bare")
    ) + sum(
        entry[UNDER_WRITES][side]["errors"]
        for entry in report_workers.values()
        if entry[UNDER_WRITES]
        for side in ("search", "append")
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    name = "postgresql" if engine == "postgresql" else "latest"
    if args.quick:
        name = f"quick-{engine}"
    if args.scenarios:
        name = f"partial-{engine}"
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}", end="")
    if not args.quick and not args.scenarios:
        md = BENCH_DIR / ("RESULTS.md" if engine == "sqlite" else "RESULTS-postgresql.md")
        write_markdown(md, report)
        print(f" and {md.relative_to(ROOT)}", end="")
    print(f" ({report['seconds']:.0f} s in all)")
    if errors:
        print(f"error: {errors} requests failed during the runs (see the JSON)", file=sys.stderr)
        return 1
    if args.strict and not all(item["pass"] for item in report["targets"]):
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run x 2 s, small seeds")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL") or None,
        help="a PostgreSQL server URL (env BENCH_DATABASE_URL); the benchmark creates a fresh "
        "database there and drops it afterwards. Default: SQLite in a temporary folder",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="uvicorn workers for both apps; several counts give one table each (e.g. 1 2)",
    )
    parser.add_argument("--runs", type=int, help="measured runs per scenario and side")
    parser.add_argument("--duration", type=int, help="seconds per run")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        help="measure only these (default: all); targets of the others read n/a. "
        "Results then go to bench/results/partial-<engine>.json only",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if any(n < 1 for n in args.workers):
        parser.error("--workers must be >= 1")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
