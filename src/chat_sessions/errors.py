"""Domain errors, and how every error becomes an RFC 9457 problem document.

Services raise the domain errors below; the handlers here turn them, Litestar's own HTTP
errors (404 for unknown routes, 405, 413, validation 400) and anything unexpected into JSON.
Never an HTML page, never a stack trace, never a 500 for something the client sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, MethodNotAllowedException, ValidationException
from litestar.openapi import ResponseSpec
from msgspec import Struct
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger("chat_sessions")

PROBLEM_JSON = "application/problem+json"


class ValidationItem(Struct):
    message: str
    key: str | None = None
    source: str | None = None


class Problem(Struct):
    """An error, as every route answers it: RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ValidationItem] | None = None


# What each error status means, for the OpenAPI document.
STATUS_MEANINGS = {
    400: "Malformed JSON, a wrong type, an unknown field, value or query parameter, an invalid "
    "cursor",
    401: "A missing, unknown or revoked key (with `WWW-Authenticate: Bearer`)",
    404: "No such resource in this tenant",
    409: "Conflicts with what is stored",
    412: "A precondition (`If-Match`, `expected_last_seq`) does not hold",
    413: "The body, a message's content or a JSON value is over its limit",
    415: "The body is not `application/json`",
    429: "Over the tenant's rate limit (with `Retry-After`)",
    503: "The database is unavailable; retry (`Retry-After`), a write with its `Idempotency-Key`",
}


def tenant_errors(*statuses: int, body: bool = False) -> dict[int, ResponseSpec]:
    """The errors a tenant route answers, for its OpenAPI `responses`: those of every tenant
    route (400, 401, 429, 503), those of a route that reads a body (413, 415), and `statuses`."""
    return problem_responses(400, 401, 429, 503, *((413, 415) if body else ()), *statuses)


def admin_errors(*statuses: int, body: bool = False) -> dict[int, ResponseSpec]:
    """`tenant_errors` of an admin route: no tenant rate limit, but the limit on failed
    authentications (429); 404 on every one while ADMIN_TOKEN is unset."""
    return problem_responses(400, 401, 404, 429, 503, *((413, 415) if body else ()), *statuses)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI `responses` for these statuses, each an RFC 9457 problem document."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_JSON,
            description=STATUS_MEANINGS[status],
            generate_examples=False,
        )
        for status in sorted(set(statuses))
    }


class DomainError(Exception):
    status_code = 400
    title = "Bad Request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(DomainError):
    status_code = 400
    title = "Bad Request"


class Unauthorized(DomainError):
    status_code = 401
    title = "Unauthorized"

    def __init__(self, detail: str = "a valid API key is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class NotFound(DomainError):
    status_code = 404
    title = "Not Found"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class PreconditionFailed(DomainError):
    status_code = 412
    title = "Precondition Failed"


class PayloadTooLarge(DomainError):
    status_code = 413
    title = "Payload Too Large"


class UnsupportedMediaType(DomainError):
    status_code = 415
    title = "Unsupported Media Type"


class TooManyRequests(DomainError):
    status_code = 429
    title = "Too Many Requests"


class ServiceUnavailable(DomainError):
    status_code = 503
    title = "Service Unavailable"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    body = problem_body(status, title, detail, extra=extra)
    return Response(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_body(
    status: int, title: str, detail: str, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if extra:
        body.update(extra)
    return body


def allow_header(methods: Iterable[str]) -> str:
    """The `Allow` value of a path with these methods: HEAD wherever GET is (see http.py)."""
    allowed = {method.strip().upper() for method in methods}
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def handle_domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return problem(exc.status_code, exc.title, exc.detail, headers=exc.headers)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
}


# Litestar's words (litestar/connection/request.py) when `receive` answers a disconnect
# while the body is read: the client went away (or missed REQUEST_READ_TIMEOUT_SECONDS).
CLIENT_DISCONNECTED = "client disconnected prematurely"
# msgspec's messages quote the offending value ("Invalid enum value 'x'"); types it names
# in backticks stay.
_QUOTED_VALUE = re.compile(r"'[^']*'")


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500 and exc.detail == CLIENT_DISCONNECTED:
        # Nobody is left to answer, and a client must not be able to flood the error log.
        log.info("client went away before sending its whole request: %s", request.method)
        return problem(400, "Bad Request", "the request body was not received in full")
    if status >= 500:
        log.error("unexpected server error: %s", exc.detail, exc_info=exc)
        return problem(500, "Internal Server Error", "the server failed; nothing was changed")
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        # Validation details name the field and the rule; values the client sent are dropped,
        # so nothing from a body or query string is echoed back.
        extra["errors"] = [
            {
                k: _QUOTED_VALUE.sub("'…'", v) if k == "message" and isinstance(v, str) else v
                for k, v in item.items()
                if k in ("key", "message", "source")
            }
            for item in exc.extra
            if isinstance(item, dict)
        ]
    detail = exc.detail or _TITLES.get(status, "error")
    if isinstance(exc, ValidationException):
        # Litestar's detail names the URL with its query string, values included.
        detail = f"Validation failed for {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if isinstance(exc, MethodNotAllowedException) and "allow" in headers:
        headers["allow"] = allow_header(headers["allow"].split(","))
    return problem(status, _TITLES.get(status, "Error"), detail, headers=headers, extra=extra)


def handle_database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A unique index caught a race the service's checks could not (409); the database is
    down, locked past the busy timeout, or the pool is exhausted (503)."""
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    if isinstance(exc, DataError) or sqlstate.startswith("22"):  # SQL "data exception" class
        # A value the database cannot store (PostgreSQL refuses NUL characters in text).
        return problem(400, "Bad Request", "a value in the request cannot be stored")
    if isinstance(exc, IntegrityError):
        return problem(409, "Conflict", "the request conflicts with data stored meanwhile")
    unavailable = isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError | OSError)
    if not unavailable and not getattr(exc, "connection_invalidated", False):
        return handle_unexpected(request, exc)
    log.warning("database unavailable: %s", type(exc).__name__)
    return problem(
        503,
        "Service Unavailable",
        # Not "nothing was changed": a write whose connection died with its COMMIT in flight
        # may have been stored (README, On PostgreSQL).
        "the database is unavailable; retry later (a write with the same Idempotency-Key: "
        "one cut off at its commit may have been stored)",
        headers={"Retry-After": "1"},
    )


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, RecursionError):
        return problem(400, "Bad Request", "JSON is nested too deeply")
    log.exception("unexpected server error")
    return problem(500, "Internal Server Error", "the server failed; nothing was changed")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: handle_domain_error,
    HTTPException: handle_http_exception,
    DBAPIError: handle_database_error,
    PoolTimeoutError: handle_database_error,
    OSError: handle_database_error,
    Exception: handle_unexpected,
}
