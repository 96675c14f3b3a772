"""The live-events scenario, run on its own (`make bench-streams`): 1,000 open event streams on
one service, one append every 10 ms spread over their sessions.

It measures, on a fresh database: the latency from an append's response reaching its client
to the `message.created` event reaching the stream that follows that session (p50, p99; an
event that arrives before the append's own response counts 0), the service's CPU and RSS
while the appends run, and the memory one idle open stream costs the server (its RSS with
the streams open, less its RSS before, over the number of streams). The streams are raw
sockets in this one client process (uvloop), the appends an httpx client.

    .venv/bin/python bench/streams.py                       # SQLite, 1 process
    .venv/bin/python bench/streams.py --database-url postgresql+asyncpg://postgres@127.0.0.1/pg \
        --workers 2                                         # 2 processes on PostgreSQL
    .venv/bin/python bench/streams.py --quick               # 200 streams, 5 s

Targets (issue 14): p99 <= 50 ms on SQLite, <= 100 ms on PostgreSQL; an idle stream <= 64 KiB.
Writes bench/results/streams-<engine>-<workers>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import uvloop
from servers import Server, _process_tree, fresh_postgres_database, service_server

BENCH_DIR = Path(__file__).resolve().parent
APPEND_INTERVAL = 0.010  # one append every 10 ms
IDLE_STREAM_TARGET_KIB = 64
P99_TARGET_MS = {"sqlite": 50.0, "postgresql": 100.0}


@dataclass
class StreamsResult:
    engine: str
    workers: int
    streams: int
    appends: int
    events_missing: int
    events_before_response: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    # From the append's request leaving the client: the commit happened in between.
    from_request_p50_ms: float
    from_request_p99_ms: float
    service_cpu_percent: float  # of one core, while the appends ran
    rss_mib_before: float
    rss_mib_streams_open: float
    rss_mib_after_appends: float
    idle_stream_kib: float
    p99_target_ms: float
    verdict: str


def rss_bytes(server: Server) -> int:
    assert server.process is not None
    total = 0
    for pid in _process_tree(server.process.pid):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


class Streams:
    """Raw event-stream connections; when each `message.created` arrived, by message id."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.arrived: dict[str, float] = {}
        self.writers: list[asyncio.StreamWriter] = []
        self.opened = 0

    async def open(self, session_id: str) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            (
                f"GET /v1/sessions/{session_id}/events HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Authorization: Bearer {self.key}\r\n\r\n"
            ).encode()
        )
        status = await reader.readline()
        assert b" 200 " in status, status
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.writers.append(writer)
        self.opened += 1
        asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        created = False
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while line := await reader.readline():
                if line.startswith(b"event: "):
                    created = line == b"event: message.created\r\n"
                elif created and line.startswith(b'data: {"id":"'):
                    self.arrived[line[13:49].decode()] = time.perf_counter()
                    created = False

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


async def open_all(streams: Streams, sessions: list[str]) -> None:
    for start in range(0, len(sessions), 100):  # 100 connections at a time
        await asyncio.gather(*(streams.open(s) for s in sessions[start : start + 100]))


async def scenario(
    server: Server, engine: str, workers: int, count: int, seconds: float
) -> StreamsResult:
    admin = {"Authorization": f"Bearer {server.env['ADMIN_TOKEN']}"}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=server.base, timeout=30, limits=limits) as client:
        tenant = await client.post(
            "/v1/admin/tenants", json={"name": "bench-streams"}, headers=admin
        )
        key = tenant.json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        semaphore = asyncio.Semaphore(16)

        async def new_session() -> str:
            async with semaphore:
                response = await client.post("/v1/sessions", json={}, headers=auth)
                return str(response.json()["id"])

        sessions = list(await asyncio.gather(*(new_session() for _ in range(count))))
        await asyncio.sleep(2)  # the service settles after the creates
        rss_before = rss_bytes(server)
        streams = Streams("127.0.0.1", server.port, key)
        await open_all(streams, sessions)
        await asyncio.sleep(3)  # idle, open
        rss_open = rss_bytes(server)

        responded: dict[str, float] = {}
        sent: dict[str, float] = {}

        async def append(n: int) -> None:
            sent_at = time.perf_counter()
            response = await client.post(
                f"/v1/sessions/{sessions[n % count]}/messages",
                json={"role": "user", "content": f"bench message {n}"},
                headers=auth,
            )
            message_id = response.json()["id"]
            responded[message_id], sent[message_id] = time.perf_counter(), sent_at

        total = int(seconds / APPEND_INTERVAL)
        cpu_before = server.cpu_seconds()
        started = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = started + n * APPEND_INTERVAL - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(append(n)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds() - cpu_before
        for _ in range(50):  # the last events' way to their streams
            if all(message_id in streams.arrived for message_id in responded):
                break
            await asyncio.sleep(0.1)
        rss_after = rss_bytes(server)
        streams.close()
    latencies = sorted(
        max(0.0, streams.arrived[m] - t) * 1000
        for m, t in responded.items()
        if m in streams.arrived
    )
    from_send = sorted(
        (streams.arrived[m] - t) * 1000 for m, t in sent.items() if m in streams.arrived
    )
    early = sum(streams.arrived[m] < t for m, t in responded.items() if m in streams.arrived)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    idle_kib = (rss_open - rss_before) / count / 1024
    target = P99_TARGET_MS[engine]
    passed = p99 <= target and idle_kib <= IDLE_STREAM_TARGET_KIB and len(latencies) == total
    mib = 1024 * 1024
    return StreamsResult(
        engine=engine,
        workers=workers,
        streams=streams.opened,
        appends=total,
        events_missing=total - len(latencies),
        events_before_response=early,
        p50_ms=round(statistics.median(latencies), 2),
        p99_ms=round(p99, 2),
        max_ms=round(latencies[-1], 2),
        from_request_p50_ms=round(statistics.median(from_send), 2),
        from_request_p99_ms=round(
            from_send[min(len(from_send) - 1, int(len(from_send) * 0.99))], 2
        ),
        service_cpu_percent=round(100 * cpu / elapsed, 1),
        rss_mib_before=round(rss_before / mib, 1),
        rss_mib_streams_open=round(rss_open / mib, 1),
        rss_mib_after_appends=round(rss_after / mib, 1),
        idle_stream_kib=round(idle_kib, 1),
        p99_target_ms=target,
        verdict="PASS" if passed else "FAIL",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL") or None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0, help="of appends")
    parser.add_argument("--quick", action="store_true", help="200 streams, 5 s of appends")
    args = parser.parse_args()
    count, seconds = (200, 5.0) if args.quick else (args.streams, args.seconds)
    engine = "postgresql" if args.database_url else "sqlite"
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chat-streams-")))
        database_url = None
        if args.database_url:
            database_url = stack.enter_context(fresh_postgres_database(args.database_url))
        server = service_server(
            workdir,
            workers=args.workers,
            database_url=database_url,
            admin_token=secrets.token_urlsafe(24),
        )
        server.env["MAX_STREAMS_PER_TENANT"] = str(count)  # all of them on one process at most
        stack.callback(server.stop)
        server.start()
        result = uvloop.run(scenario(server, engine, args.workers, count, seconds))
    print(json.dumps(asdict(result), indent=2))
    out = BENCH_DIR / "results" / f"streams-{engine}-{args.workers}.json"
    out.write_text(json.dumps(asdict(result), indent=2) + "\n")
    sys.exit(0 if result.verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
