"""Errors of the Conversations routes in OpenAI's shape, `{"error": {message, type, param,
code}}`, with the status codes every other route answers.

These are the exception handlers of the Conversations router alone (app.py): Litestar looks a
request's handlers up on its route (the router's own before the app's), the `before_request`
hook's errors included, so a bad key is a 401 in OpenAI's shape here and a problem document
everywhere else. Each handler is the app's own (errors.py), whose answer is then reshaped:
one place decides what an error is, this one only how these routes write it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from litestar import MediaType, Request, Response
from litestar.openapi import ResponseSpec

from chat_sessions.conversations.schemas import OpenAIError, OpenAIErrorDetail
from chat_sessions.errors import EXCEPTION_HANDLERS, STATUS_MEANINGS, BadRequest

# OpenAI's error types and codes, where it has one for the status.
_TYPES = {401: "invalid_request_error", 429: "requests"}
_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
# msgspec names the field at fault: "... - at `$.metadata[...]`", "- at `key` in `$.items`".
_BODY_FIELD = re.compile(r"`\$\.([A-Za-z_][A-Za-z0-9_]*)")


class BadParameter(BadRequest):
    """A 400 that names the parameter at fault (OpenAI's `param`)."""

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f"{param}: {detail}")
        self.param = param


Handler = Callable[[Request[Any, Any, Any], Any], Response[Any]]


def openai_error(
    status: int, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
) -> Response[OpenAIError]:
    kind = "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error")
    body = OpenAIError(error=OpenAIErrorDetail(message, kind, param, _CODES.get(status)))
    return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)


def _reshaped(handler: Handler) -> Handler:
    def handle(request: Request[Any, Any, Any], exc: Any) -> Response[Any]:
        problem = handler(request, exc)
        param, message = _param_of(exc, problem.content)
        # The status line's own headers (Content-Type, Content-Length) are the new body's.
        headers = {
            name: value
            for name, value in problem.headers.items()
            if name.lower() not in ("content-type", "content-length")
        }
        status = problem.status_code or 500
        return openai_error(status, message, param=param, headers=headers)

    return handle


def _param_of(exc: Exception, problem: dict[str, Any]) -> tuple[str | None, str]:
    """The parameter an error is about, if one is known, and the error's message."""
    message = str(problem.get("detail") or problem.get("title") or "error")
    if isinstance(exc, BadParameter):
        return exc.param, message
    errors = problem.get("errors")
    if errors:  # Litestar's validation of query and path parameters
        param, rule = errors[0].get("key"), errors[0].get("message")
        return param, f"{message}: {param}: {rule}" if param else message
    found = _BODY_FIELD.search(message)  # msgspec's, of the body
    return (found.group(1) if found else None), message


OPENAI_EXCEPTION_HANDLERS: dict[Any, Any] = {
    exc_type: _reshaped(handler) for exc_type, handler in EXCEPTION_HANDLERS.items()
}


def openai_errors(*statuses: int, body: bool = False) -> dict[int, ResponseSpec]:
    """`errors.tenant_errors` for these routes: the same statuses, in OpenAI's shape."""
    every = {400, 401, 429, 503, *((413, 415) if body else ()), *statuses}
    return {
        status: ResponseSpec(
            data_container=OpenAIError,
            media_type=MediaType.JSON,
            description=STATUS_MEANINGS[status],
            generate_examples=False,
        )
        for status in sorted(every)
    }
