"""Prometheus metrics by route template, at a few microseconds a request.

The same families and labels as Litestar's `PrometheusMiddleware` (dashboards built on it keep
working), without what made it cost ~50 µs a request, as much as a whole bare route: a
`Request` object, a `functools.wraps` closure and four `labels()` look-ups under a lock on
every request. Here each (method, route, status) keeps its label children in a dict.
`/metrics` is served by Litestar's `PrometheusController` (documented as text, below) from the
same default registry.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import MediaType, Response, get
from litestar.plugins.prometheus import PrometheusController
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from chat_sessions.errors import problem_responses

APP_NAME = "chat_sessions"
LABELS = ("method", "path", "status_code", "app_name")
NOT_MEASURED = ("/metrics", "/schema")

REQUESTS = Counter(f"{APP_NAME}_requests_total", "Total requests", LABELS)
ERRORS = Counter(f"{APP_NAME}_requests_error_total", "Total errors in requests", LABELS)
DURATION = Histogram(f"{APP_NAME}_request_duration_seconds", "Request duration, in seconds", LABELS)
IN_PROGRESS = Gauge(
    f"{APP_NAME}_requests_in_progress",
    "Total requests currently in progress",
    LABELS,
    multiprocess_mode="livesum",
)

_finished: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
_in_progress: dict[tuple[str, str], Any] = {}


def _finished_children(method: str, path: str, status: int) -> tuple[Any, Any, Any]:
    key = (method, path, status)
    children = _finished.get(key)
    if children is None:
        labels = (method, path, str(status), APP_NAME)
        errors = ERRORS.labels(*labels) if status >= 500 else None
        children = _finished[key] = (REQUESTS.labels(*labels), DURATION.labels(*labels), errors)
    return children


def _in_progress_child(method: str, path: str) -> Any:
    child = _in_progress.get((method, path))
    if child is None:
        # As Litestar's middleware does, in-progress requests carry status 200.
        child = _in_progress[(method, path)] = IN_PROGRESS.labels(method, path, "200", APP_NAME)
    return child


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count and time every HTTP request by method, route template and status."""

    async def measured(scope: Scope, receive: Receive, send: Send) -> None:
        # Litestar runs middleware after routing: the template is known, never a raw id.
        path = scope.get("path_template") or scope["path"]  # type: ignore[typeddict-item]
        if scope["type"] != "http" or path.startswith(NOT_MEASURED):
            await app(scope, receive, send)
            return
        method = scope["method"]  # type: ignore[typeddict-item]  # an HTTP scope here
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        in_progress = _in_progress_child(method, path)
        in_progress.inc()
        try:
            await app(scope, receive, send_and_note_status)
        finally:
            in_progress.dec()
            requests, duration, errors = _finished_children(method, path, status)
            requests.inc()
            duration.observe(time.perf_counter() - started)
            if errors is not None:
                errors.inc()

    return measured


class MetricsController(PrometheusController):
    """Litestar's `/metrics`, documented as what it answers: Prometheus text, not JSON."""

    @get(
        media_type=MediaType.TEXT,
        tags=["operations"],
        summary="Prometheus text format",
        responses=problem_responses(400),
    )
    async def get(self) -> Response[str]:  # type: ignore[override]
        return await PrometheusController.get.fn(self)  # type: ignore[no-any-return]
