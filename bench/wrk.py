"""wrk, the load generator: one timed run of a scenario against a server (`run_wrk`), and
the measurements built from runs: a scenario on the service and the bare app (`measure`),
and searches beside appending writers (`measure_search_while_appending`)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import payloads
from plan import Plan, Scenario
from report import NOISY_CORES, CatchUp, ScenarioResult, SearchUnderWrites, Side
from servers import (
    Server,
    children_cpu_seconds,
    cpu_seconds_between,
    machine_busy_seconds,
    settle_database,
)

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "scenario.lua"


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
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        cpu_us=cpu * 1e6 / requests,
        db_cpu_us=db_cpu * 1e6 / requests if server.database_cpu else None,
        requests=raw["requests"],
        errors=errors,
        background=background,
        raw={**raw, "cpu_s": round(cpu, 3), "wrk_cpu_s": round(wrk_cpu, 3)},
    )


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


def summarize(runs: list[Measured], items: int = 1) -> Side:
    """One side's runs as medians (and each run); `items` messages per request."""

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
    )


def measure(
    wrk: str, scenario: Scenario, service: Server, bare: Server, plan: Plan
) -> ScenarioResult:
    """Warm up both sides, then `plan.runs` runs each, alternating which side goes first."""
    problems = sanity_check(scenario, [service, bare])
    for problem in problems:
        print(f"  WARNING {problem}", flush=True)
    catch_up = CatchUp(messages=0, seconds=0.0)

    def settle(server: Server, measured: Measured) -> None:
        if server is service and scenario.method == "POST":
            catch_up.seconds += settle_database(service, scenario.token)
            catch_up.messages += measured.requests * scenario.items

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
    result = ScenarioResult(
        label=scenario.label,
        method=scenario.method,
        path=scenario.path,
        messages_per_request=scenario.items,
        service=summarize(runs["service"], scenario.items),
        bare=summarize(runs["bare"], scenario.items),
        problems=problems,
        search_catch_up=catch_up if catch_up.messages else None,
    )
    svc, bar = result.service, result.bare
    flag = f"  ({svc.errors} errors!)" if svc.errors or bar.errors else ""
    noise = max(svc.background_cores, bar.background_cores)
    if noise >= NOISY_CORES:
        flag += f"  (other processes used {noise:.1f} cores)"
    print(
        f"  {scenario.label:40} service {svc.rps:8.0f} req/s  bare {bar.rps:8.0f} req/s"
        f"  ratio {result.ratio:.2f}  p99 {svc.p99_ms:6.1f} ms"
        f"  cpu {svc.cpu_us_per_request:6.0f} us/req{flag}",
        flush=True,
    )
    return result


def measure_search_while_appending(
    wrk: str, search: Scenario, append: Scenario, service: Server, plan: Plan
) -> SearchUnderWrites:
    """Searches now and then while 16 writers append without pause, on the service alone (the
    bare app has no search). Both wrk runs go side by side; only their latencies and rates
    mean something here, not the CPU per request (each run sees the other's)."""
    for problem in sanity_check(search, [service]):
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
        settle_database(service, append.token)
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
