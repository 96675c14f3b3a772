"""Micro-benchmark: what strict query strings cost a request (bodies.py, `_check_query`).

    .venv/bin/python bench/micro_query.py

Times `_check_query` on a history read (`GET /v1/sessions/{id}/messages`) with 3 query
parameters, on the app's own handler and its shape, strict (the unknown-name check) and
lenient (`opt={LENIENT_QUERY: True}`: the same checks without it), taken in turn. Each call
gets a fresh request, so each pays for parsing the query string once, as a real request does
(Litestar keeps the parse for the handler's own parameters).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from litestar.routes import HTTPRoute

from chat_sessions.app import create_app
from chat_sessions.bodies import HandlerShape, StrictRequest, _check_query, shape_of
from chat_sessions.settings import Settings

QUERY = b"order=desc&limit=50&after_seq=10"
HISTORY = "/v1/sessions/{session_id:str}/messages"


def interleaved_us(a: Callable[[], object], b: Callable[[], object]) -> tuple[float, float]:
    """Per call, the best of short runs taken in turn, so a busy moment hits both alike (as
    micro_checks.py, which no longer imports: it names db._Plan, now gone)."""
    number, best_a, best_b = 1_000, float("inf"), float("inf")
    for _ in range(200):
        best_a = min(best_a, timeit.timeit(a, number=number) / number * 1e6)
        best_b = min(best_b, timeit.timeit(b, number=number) / number * 1e6)
    return best_a, best_b


def new_app() -> Any:
    settings = Settings(_env_file=None, database_path=":memory:", database_url=None)  # type: ignore[call-arg]
    return create_app(settings)


def main() -> None:
    app = new_app()
    handler = next(
        route.route_handler_map["GET"][0]
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path == HISTORY
    )
    scope: Any = {
        "type": "http",
        "method": "GET",
        "path": "/v1/sessions/s-1/messages",
        "query_string": QUERY,
        "headers": [],
        "litestar_app": app,
        "route_handler": handler,
    }

    def strict() -> None:
        _check_query(StrictRequest({**scope, "state": {}}))

    strict()
    shape = shape_of(StrictRequest({**scope, "state": {}}))
    assert shape.query_names is not None and len(shape.query_names) == 6
    lenient_app = new_app()
    lenient_app.state["handler_shapes"][handler] = HandlerShape(
        shape.decoder, None, shape.integer_query_names
    )

    def lenient() -> None:
        _check_query(StrictRequest({**scope, "litestar_app": lenient_app, "state": {}}))

    lenient()
    with_check, without = interleaved_us(strict, lenient)
    print(f"history read, ?{QUERY.decode()}:")
    print(f"  _check_query strict {with_check:.2f} µs, lenient {without:.2f} µs")
    print(f"  the unknown-name check: {with_check - without:.2f} µs a request")


if __name__ == "__main__":
    main()
