"""wrk, the load generator: one timed run of a scenario against a server (`run_wrk`), and
the measurements built from runs: a scenario on the service and the bare app (`measure`),
and searches beside appending writers (`measure_search_while_appending`).

A write run on the service is charged with the upkeep its writes leave behind (`with_upkeep`):
on SQLite the service indexes new messages for search behind the writes, on the event loop,
as it does in production; what is still waiting when wrk stops, and the write-ahead log not
yet copied into the database file, are brought up to date right after the run
(servers.settle_database), and that time is added to the run's duration, its CPU to the
service's. A write figure is therefore what the service sustains with its search index and
its WAL kept current."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import payloads
from answers import sanity_check
from plan import Plan, Scenario
from report import NOISY_CORES, CatchUp, ScenarioResult, SearchUnderWrites, Side
from servers import (
    Server,
    Upkeep,
    children_cpu_seconds,
    cpu_seconds_between,
    machine_busy_seconds,
    settle_database,
)

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "scenario.lua"
TURN_SCRIPT = Path(__file__).resolve().parent / "wrk" / "chat_turn.lua"


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


def script_of(scenario: Scenario, workdir: Path) -> tuple[Path, dict[str, str]]:
    """The Lua script that runs a scenario, and its environment."""
    if scenario.turn is not None:
        sessions = workdir / f"{scenario.key}-sessions.txt"
        sessions.write_text("\n".join(scenario.turn.sessions) + "\n")
        return TURN_SCRIPT, {
            "BENCH_TOKEN": scenario.token,
            "BENCH_SESSIONS_FILE": str(sessions),
            "BENCH_USER_BODY": scenario.turn.user_body,
            "BENCH_ASSISTANT_BODY": scenario.turn.assistant_body,
            "BENCH_CONTEXT_QUERY": scenario.turn.context_query,
        }
    paths = ""
    if scenario.paths:
        paths_file = workdir / f"{scenario.key}-paths.txt"
        paths_file.write_text("\n".join(scenario.paths) + "\n")
        paths = str(paths_file)
    return LUA_SCRIPT, {
        "BENCH_PATHS_FILE": paths,
        "BENCH_METHOD": scenario.method,
        "BENCH_TOKEN": scenario.token,
        "BENCH_BODY": scenario.body or "",
        "BENCH_UNIQUE": "1" if scenario.body and payloads.COUNTER in scenario.body else "",
        "BENCH_DELAY_MS": str(scenario.delay_ms or ""),
    }


def run_wrk(wrk: str, server: Server, scenario: Scenario, seconds: int, plan: Plan) -> Measured:
    with tempfile.TemporaryDirectory(prefix="chat-bench-wrk-") as workdir:
        script, settings = script_of(scenario, Path(workdir))
        return _run_wrk(wrk, server, scenario, seconds, plan, script, {**os.environ, **settings})


def _run_wrk(
    wrk: str,
    server: Server,
    scenario: Scenario,
    seconds: int,
    plan: Plan,
    script: Path,
    env: dict[str, str],
) -> Measured:
    argv = [
        wrk,
        # the chat turn: one connection a thread, whose state is then the connection's
        f"-t{scenario.connections if scenario.turn else plan.threads}",
        f"-c{scenario.connections or plan.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        server.base + scenario.path,
    ]
    database_cpu = server.database_cpu or dict
    cpu_before, wrk_before = server.cpu_seconds(), children_cpu_seconds()
    db_before = database_cpu()
    busy_before, wall_before = machine_busy_seconds(), time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    cpu = server.cpu_seconds() - cpu_before
    db_cpu = cpu_seconds_between(db_before, database_cpu())
    wrk_cpu = children_cpu_seconds() - wrk_before
    # What else ran meanwhile (other people's tests, builds...): it skews every figure.
    others = machine_busy_seconds() - busy_before - cpu - wrk_cpu - db_cpu
    background = max(0.0, others / (time.monotonic() - wall_before))
    line = next((row for row in done.stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    requests = max(1, raw["requests"])
    errors = sum(value for name, value in raw.items() if name.startswith("errors_"))
    return Measured(
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        # the chat turn's are a turn's (chat_turn.lua), the others' a request's
        p50_ms=raw["turn_p50_us" if scenario.turn else "p50_us"] / 1000,
        p99_ms=raw["turn_p99_us" if scenario.turn else "p99_us"] / 1000,
        cpu_us=cpu * 1e6 / requests,
        db_cpu_us=db_cpu * 1e6 / requests if server.database_cpu else None,
        requests=raw["requests"],
        errors=errors,
        background=background,
        raw={**raw, "cpu_s": round(cpu, 3), "wrk_cpu_s": round(wrk_cpu, 3)},
    )


def summarize(runs: list[Measured], items: int = 1, requests_per_turn: int = 1) -> Side:
    """One side's runs as medians (and each run); `items` messages per request, or
    `requests_per_turn` requests a turn (the chat turn: its latencies are a turn's)."""

    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    rps = median([run.rps for run in runs])
    db_cpu = [run.db_cpu_us for run in runs if run.db_cpu_us is not None]
    return Side(
        rps=round(rps, 1),
        p50_ms=round(median([run.p50_ms for run in runs]), 3),
        p99_ms=round(median([run.p99_ms for run in runs]), 3),
        cpu_us_per_request=round(median([run.cpu_us for run in runs]), 1),
        db_cpu_us_per_request=round(median(db_cpu), 1) if db_cpu else None,
        errors=sum(run.errors for run in runs),
        background_cores=round(max(run.background for run in runs), 2),
        runs=[
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
        # rps as rounded above, as the figures were always derived
        messages_per_s=round(round(rps, 1) * items) if items > 1 else None,
        turns_per_s=round(rps / requests_per_turn, 1) if requests_per_turn > 1 else None,
    )


def with_upkeep(measured: Measured, upkeep: Upkeep) -> Measured:
    """A service write run's figures with the upkeep its writes left counted in (see the
    module's first lines): its seconds added to the run's duration, its CPU to the service's.
    The latencies stay wrk's: no request waited for it (in production it runs between them,
    as the background indexing during the run does)."""
    seconds = measured.raw["duration_us"] / 1e6
    requests = max(1, measured.requests)
    return dataclasses.replace(
        measured,
        rps=measured.requests / (seconds + upkeep.seconds),
        cpu_us=measured.cpu_us + upkeep.cpu_seconds * 1e6 / requests,
        raw={
            **measured.raw,
            "upkeep_s": round(upkeep.seconds, 3),
            "upkeep_cpu_s": round(upkeep.cpu_seconds, 3),
            "rps_without_upkeep": round(measured.rps, 1),
        },
    )


def measure(
    wrk: str, scenario: Scenario, service: Server, bare: Server, plan: Plan
) -> ScenarioResult:
    """Check both sides answer alike, warm up both, then `plan.runs` runs each, alternating
    which side goes first; the service's write runs with their upkeep (`with_upkeep`)."""
    check = sanity_check(scenario, [service, bare])
    for problem in check.problems:
        print(f"  WARNING {problem}", flush=True)
    catch_up = CatchUp(messages=0, seconds=0.0)

    def timed(server: Server, seconds: int, counted: bool = True) -> Measured:
        measured = run_wrk(wrk, server, scenario, seconds, plan)
        if not server.alive():
            raise RuntimeError(f"{server.name} died:\n{server.log_tail()}")
        if server is not service or not scenario.writes:
            return measured
        upkeep = settle_database(service, scenario.token)
        if counted:
            catch_up.seconds += upkeep.seconds
            catch_up.messages += round(measured.requests * scenario.messages_per_request)
        return with_upkeep(measured, upkeep)

    for server in (service, bare):
        timed(server, plan.warmup, counted=False)
    runs: dict[str, list[Measured]] = {"service": [], "bare": []}
    for index in range(plan.runs):
        order = (service, bare) if index % 2 == 0 else (bare, service)
        for server in order:
            runs[server.name].append(timed(server, plan.duration))
    per_turn = scenario.requests_per_turn
    result = ScenarioResult(
        label=scenario.label,
        method=scenario.method,
        path=scenario.path,
        messages_per_request=scenario.items,
        service=summarize(runs["service"], scenario.items, per_turn),
        bare=summarize(runs["bare"], scenario.items, per_turn),
        problems=check.problems,
        search_catch_up=catch_up if catch_up.messages else None,
        requests_per_turn=per_turn,
        answer_bytes=check.sizes,
    )
    svc, bar = result.service, result.bare
    flag = f"  ({svc.errors} errors!)" if svc.errors or bar.errors else ""
    noise = max(svc.background_cores, bar.background_cores)
    if noise >= NOISY_CORES:
        flag += f"  (other processes used {noise:.1f} cores)"
    unit = "turn" if per_turn > 1 else "req"
    print(
        f"  {scenario.label:40} service {svc.rps / per_turn:8.0f} {unit}/s"
        f"  bare {bar.rps / per_turn:8.0f} {unit}/s  ratio {result.ratio:.2f}"
        f"  p99 {svc.p99_ms:6.1f} ms  cpu {svc.cpu_us_per_request * per_turn:6.0f} us/{unit}"
        f"{flag}",
        flush=True,
    )
    return result


def measure_search_while_appending(
    wrk: str, search: Scenario, append: Scenario, service: Server, plan: Plan
) -> SearchUnderWrites:
    """Searches now and then while 16 writers append without pause, on the service alone (the
    bare app has no search). Both wrk runs go side by side; only their latencies and rates
    mean something here, not the CPU per request (each run sees the other's). The appends'
    rate counts the upkeep their writes left, as `measure` does."""
    for problem in sanity_check(search, [service]).problems:
        print(f"  WARNING {problem}", flush=True)
    searches: list[Measured] = []
    appends: list[Measured] = []
    for index, seconds in enumerate([plan.warmup] + [plan.duration] * plan.runs):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            writing = pool.submit(run_wrk, wrk, service, append, seconds, plan)
            searching = pool.submit(run_wrk, wrk, service, search, seconds, plan)
            appended, searched = writing.result(), searching.result()
        if not service.alive():
            raise RuntimeError(f"service died:\n{service.log_tail()}")
        appended = with_upkeep(appended, settle_database(service, append.token))
        if index > 0:
            appends.append(appended)
            searches.append(searched)
    result = SearchUnderWrites(
        label=search.label,
        path=search.path,
        search_connections=search.connections,
        search_delay_ms=search.delay_ms,
        search=summarize(searches),
        append=summarize(appends),
    )
    found, wrote = result.search, result.append
    errors = found.errors + wrote.errors
    print(
        f"  {search.label:40} search p50 {found.p50_ms:6.1f} ms  p99 {found.p99_ms:6.1f} ms"
        f"  ({found.rps:.0f}/s); appends {wrote.rps:8.0f} req/s"
        f"  p99 {wrote.p99_ms:6.1f} ms{f'  ({errors} errors!)' if errors else ''}",
        flush=True,
    )
    return result
