"""Three details of HTTP (RFC 9110) that Litestar 2 leaves to the application, at the ASGI
entry point, before Litestar routes the request:

- `HEAD` on every `GET` route: routed as the `GET`, answered with its status and headers and
  no body (Litestar 2 answers 405 to a HEAD it has no handler for). The scope says so
  (`HEAD_AS_GET`), for a route whose body never ends (an event stream).
- `OPTIONS` lists every method of the path. Litestar 2 makes the OPTIONS handler when a path's
  first handler is registered, and it keeps listing that handler's methods only
  (litestar#4169, fixed in Litestar 3): GET and POST of /v1/sessions answered `OPTIONS, POST`.
  The answer's `Allow` is rewritten from the finished route table.
- An encoded slash (`%2F`) in a path is 404: Litestar routes on the decoded path, where it
  would become a separator (`/v1/sessions/%2F` was the list of sessions).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import msgspec
from litestar import Litestar
from litestar.response.base import ASGIResponse
from litestar.routes import HTTPRoute
from litestar.types import Message, Receive, Scope, Send

from chat_sessions.errors import PROBLEM_JSON, allow_header, problem_body

# In the scope of a HEAD routed as a GET.
HEAD_AS_GET = "chat_sessions.head_as_get"


class App(Litestar):
    """Litestar, with HEAD, OPTIONS and encoded slashes answered as RFC 9110 says."""

    @cached_property
    def allow_by_path(self) -> dict[str, str]:
        """Route template -> its `Allow` value (the route table is complete once serving)."""
        return {
            route.path_format: allow_header(route.methods)
            for route in self.routes
            if isinstance(route, HTTPRoute)
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if b"%2f" in scope.get("raw_path", b"").lower():
            await _not_found(scope, receive, send)
            return
        method = scope["method"]
        if method == "HEAD":
            # A copy: the server's own scope (its access log) keeps saying HEAD.
            as_get: Any = {**scope, "method": "GET", HEAD_AS_GET: True}
            await super().__call__(as_get, receive, _without_body(send))
        elif method == "OPTIONS":
            await super().__call__(scope, receive, self._with_full_allow(scope, send))
        else:
            await super().__call__(scope, receive, send)

    def _with_full_allow(self, scope: Scope, send: Send) -> Send:
        async def send_with_full_allow(message: Message) -> None:
            allow = self.allow_by_path.get(scope.get("path_template", ""))
            if message["type"] == "http.response.start" and allow is not None:
                headers = list(message.get("headers", []))
                kept = [(name, value) for name, value in headers if name.lower() != b"allow"]
                if len(kept) < len(headers):  # Litestar's OPTIONS answer, not a 401 or 404
                    message = {**message, "headers": [*kept, (b"allow", allow.encode())]}
            await send(message)

        return send_with_full_allow


def _without_body(send: Send) -> Send:
    async def send_without_body(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}  # type: ignore[typeddict-item]
        await send(message)

    return send_without_body


async def _not_found(scope: Any, receive: Receive, send: Send) -> None:
    body = problem_body(404, "Not Found", "no such resource: a path may not hold an encoded /")
    response = ASGIResponse(
        body=msgspec.json.encode(body), status_code=404, media_type=PROBLEM_JSON
    )
    await response(scope, receive, _without_body(send) if scope["method"] == "HEAD" else send)
