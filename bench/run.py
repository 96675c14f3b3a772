"""The chat-sessions benchmark (`make bench`): the service against a bare Litestar app.

One run starts the service the way users run it (`chat-sessions serve --migrate`: uvicorn,
uvloop + httptools, no access log) on a fresh database in a temporary folder, and the bare app
of bench/bare_app.py (same routes and response shapes, no database, no auth) on the same
uvicorn settings, then drives both from wrk, a separate process, at 16 connections. Every
scenario is warmed up, then measured `--runs` times on each side, service and bare runs
alternating so that drift hits both; figures are medians. The server's CPU time per request
comes from /proc/<pid>/stat (utime + stime of the uvicorn process and its children). One more
scenario runs on the service alone: a search every second while 16 writers append.

Growth: the database is seeded through the API (batches of 500) to ~10k messages, the
"read the last 50" and deep list page scenarios are measured, then it is seeded to 1M
messages spread over more tenants and sessions and everything is measured again.

    .venv/bin/python bench/run.py                 # SQLite, 1 worker (what `make bench` runs)
    .venv/bin/python bench/run.py --quick         # smoke check: 1 run x 2 s, small seeds
    .venv/bin/python bench/run.py --database-url postgresql+asyncpg://postgres@127.0.0.1/postgres \
        --workers 1 2                             # PostgreSQL (a fresh database, dropped after)
    .venv/bin/python bench/run.py --quick --scenarios append search_while_appending
    .venv/bin/python bench/run.py --baseline old.json  # append's CPU/req against a results file

Writes bench/results/latest.json (and RESULTS.md) for the default full SQLite run,
bench/results/postgresql.json (and RESULTS-postgresql.md) on PostgreSQL,
bench/results/quick-<engine>.json for --quick and bench/results/partial-<engine>.json for
--scenarios. --strict exits 1 when a target is missed. --baseline names an earlier run's
results file: the string-content append's CPU per request is then held against its (one more
target: within +-10%).

The parts: plan.py (sizes, scenarios), servers.py (the processes, the database between
runs), seeding.py (data through the API), wrk.py (timed runs and measurements), report.py
(typed results and the targets), render.py (the console summary and the results page).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plan import (
    FULL,
    GROWTH_KEYS,
    QUICK,
    READS,
    SCENARIOS,
    UNDER_WRITES,
    WRITES,
    build_scenarios,
)
from render import console_summary, write_markdown
from report import Baseline, CatchUp, Growth, Report, ScenarioResult, WorkerResult
from seeding import Fixture, deep_cursor, grow, prepare_small
from servers import (
    bare_server,
    fresh_postgres_database,
    service_server,
    settle_database,
)
from wrk import ensure_wrk, measure, measure_search_while_appending

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    # Uncommitted changes that the figures depend on (not the benchmark's own files).
    dirty = git("status", "--porcelain", "--", "src", "migrations", "pyproject.toml")
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(dirty)}


def run(args: argparse.Namespace, baseline: Baseline | None) -> int:
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
        results: list[WorkerResult] = []
        growth: dict[str, Growth] = {}
        small_total = big_total = 0
        fx: Fixture | None = None
        search_build: CatchUp | None = None
        for position, workers in enumerate(worker_counts):
            service = service_server(
                workdir, workers=workers, database_url=database_url, admin_token=admin_token
            )
            stack.callback(service.stop)
            service.start()
            print(
                f"\n[{workers} worker{'s' if workers > 1 else ''}] service on {service.base}",
                flush=True,
            )
            small_results: dict[str, ScenarioResult] = {}
            if position == 0:
                fx, small_total, cursor = asyncio.run(
                    prepare_small(service.base, admin_token, plan)
                )
            assert fx is not None
            # Started once the seeding has named the session of messages with parts.
            bare = bare_server(workdir, workers=workers, parts_session=fx.parts_session)
            stack.callback(bare.stop)
            bare.start()
            print(f"  bare app on {bare.base}", flush=True)
            if position == 0:
                small = build_scenarios(plan, fx, cursor)
                seconds = settle_database(service, fx.main_key)
                built = f"; search index built in {seconds:.1f} s" if engine == "sqlite" else ""
                print(f"\nsmall database ({small_total:,} messages{built})", flush=True)
                small_results = {
                    key: measure(wrk, small[key], service, bare, plan)
                    for key in GROWTH_KEYS
                    if key in selected
                }
                print("\ngrowing the database", flush=True)
                big_total = asyncio.run(grow(service.base, admin_token, plan, small_total))
                seconds = settle_database(service, fx.main_key)
                if engine == "sqlite":  # PostgreSQL indexes as it writes
                    search_build = CatchUp(messages=big_total - small_total, seconds=seconds)
                    figures = search_build.to_json()
                    print(
                        f"search index built for the {search_build.messages:,} new messages in"
                        f" {seconds:.1f} s ({figures['messages_per_s']:,} messages/s)",
                        flush=True,
                    )
            cursor = asyncio.run(deep_cursor(service.base, admin_token, fx, plan))
            scenarios = build_scenarios(plan, fx, cursor)
            print(f"\nlarge database ({big_total:,} messages)", flush=True)
            measured = {
                key: measure(wrk, scenarios[key], service, bare, plan)
                for key in (*READS, *WRITES)
                if key in selected
            }
            result = WorkerResult(workers, measured)
            if UNDER_WRITES in selected:
                result.search_while_appending = measure_search_while_appending(
                    wrk, scenarios[UNDER_WRITES], scenarios["append"], service, plan
                )
            results.append(result)
            for key, before in small_results.items():
                growth[key] = Growth(
                    label=scenarios[key].label,
                    small=before.service,
                    big=measured[key].service,
                    small_bare=before.bare,
                )
            service.stop()
            bare.stop()

    report = Report(
        date=date,
        commit=commit["commit"],
        dirty=commit["dirty"],
        engine=engine,
        quick=bool(args.quick),
        scenarios_run=selected,
        plan=plan,
        small_messages=small_total,
        big_messages=big_total,
        results=results,
        growth=growth,
        search_index_build=search_build,
        machine={
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[
                0
            ],
        },
        seconds=round(time.monotonic() - started, 1),
        baseline=baseline,
    )
    print(console_summary(report))

    RESULTS_DIR.mkdir(exist_ok=True)
    name = "postgresql" if engine == "postgresql" else "latest"
    if args.quick:
        name = f"quick-{engine}"
    if args.scenarios:
        name = f"partial-{engine}"
    out = RESULTS_DIR / f"{name}.json"
    out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}", end="")
    if not args.quick and not args.scenarios:
        md = BENCH_DIR / ("RESULTS.md" if engine == "sqlite" else "RESULTS-postgresql.md")
        write_markdown(md, report)
        print(f" and {md.relative_to(ROOT)}", end="")
    print(f" ({report.seconds:.0f} s in all)")
    if report.errors:
        print(
            f"error: {report.errors} requests failed during the runs (see the JSON)",
            file=sys.stderr,
        )
        return 1
    if args.strict and not all(target.passed for target in report.targets()):
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
    parser.add_argument(
        "--baseline",
        type=Path,
        help="an earlier run's results JSON (e.g. bench/results/latest.json as committed): "
        "the append's CPU per request is held against its, within +-10%%",
    )
    args = parser.parse_args()
    if any(n < 1 for n in args.workers):
        parser.error("--workers must be >= 1")
    baseline = None
    if args.baseline:
        try:
            baseline = Baseline.from_json(str(args.baseline), json.loads(args.baseline.read_text()))
        except (OSError, ValueError, KeyError, IndexError) as error:
            parser.error(f"--baseline {args.baseline}: no append figures there ({error!r})")
    sys.exit(run(args, baseline))


if __name__ == "__main__":
    main()
