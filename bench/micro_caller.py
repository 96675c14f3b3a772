"""Micro-benchmark: one dependency (`Caller`) against the three it replaced (the transaction,
the tenant id, the settings), per request through Litestar.

    .venv/bin/python bench/micro_caller.py

Two apps alike but for the handler's dependencies, each driven over ASGI directly (no
socket, no HTTP client: what is measured is Litestar's work plus ours). The transaction is a
stand-in generator dependency, as the real one is (commit after the handler).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

REQUESTS = 3_000
ROUNDS = 7


@dataclass(slots=True, frozen=True)
class Caller:
    tx: object
    tenant_id: str
    settings: object


async def provide_tx() -> AsyncGenerator[object, None]:
    yield object()


async def provide_caller(state: State, request: Request[Any, Any, Any]) -> AsyncGenerator[Caller]:
    yield Caller(
        tx=object(), tenant_id=request.scope["state"]["tenant_id"], settings=state.settings
    )


async def provide_tenant_id(request: Request[Any, Any, Any]) -> str:
    return str(request.scope["state"]["tenant_id"])


def provide_settings(state: State) -> object:
    return state.settings


@get("/one", dependencies={"caller": Provide(provide_caller)})
async def one(caller: NamedDependency[Caller]) -> dict[str, str]:
    return {"tenant": caller.tenant_id}


@get(
    "/three",
    dependencies={
        "tx": Provide(provide_tx),
        "tenant_id": Provide(provide_tenant_id),
        "settings": Provide(provide_settings, sync_to_thread=False),
    },
)
async def three(
    tx: NamedDependency[object],
    tenant_id: NamedDependency[str],
    settings: NamedDependency[object],
) -> dict[str, str]:
    return {"tenant": tenant_id}


def before_request(request: Request[Any, Any, Any]) -> None:
    request.scope["state"]["tenant_id"] = "t"


APP = Litestar(
    [one, three],
    before_request=before_request,
    state=State({"settings": object()}),
    signature_namespace={"Caller": Caller},
    openapi_config=None,
)


async def request_us(path: str) -> float:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    start = time.perf_counter()
    for _ in range(REQUESTS):
        await APP({**scope, "state": {}}, receive, send)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / REQUESTS * 1e6


async def main() -> None:
    results: dict[str, list[float]] = {"/one": [], "/three": []}
    for _ in range(ROUNDS):  # interleaved, so a busy moment of the machine hits both
        for path, runs in results.items():
            runs.append(await request_us(path))
    for path, runs in results.items():
        best, median = min(runs), statistics.median(runs)
        print(f"{path:7} best {best:6.1f} µs, median {median:6.1f} µs per request")


if __name__ == "__main__":
    asyncio.run(main())
