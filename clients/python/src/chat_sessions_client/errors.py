"""The exceptions the client raises: an `APIError` per answered status (carrying the service's
problem JSON), and `APIConnectionError` when no answer came (after the retries it allows)."""

from __future__ import annotations

from typing import Any

import httpx


class ChatSessionsError(Exception):
    """Every error this client raises."""


class APIConnectionError(ChatSessionsError):
    """No answer from the service (connection refused, reset, or lost), after any retries."""


class APITimeoutError(APIConnectionError):
    """The service did not answer within the client's timeout."""


class APIError(ChatSessionsError):
    """The service answered an error status. `problem` is its problem JSON document
    (`type`, `title`, `status`, `detail`, and `errors` for validation failures)."""

    def __init__(self, status: int, problem: dict[str, Any], headers: httpx.Headers) -> None:
        self.status = status
        self.problem = problem
        self.headers = headers
        self.detail = str(problem.get("detail") or problem.get("title") or "")
        super().__init__(f"{status}: {self.detail}" if self.detail else str(status))


class BadRequestError(APIError):
    """400: the request broke a rule (shape, types, limits, cursor)."""


class AuthenticationError(APIError):
    """401: a missing, unknown or revoked API key."""


class NotFoundError(APIError):
    """404: no such resource in this tenant."""


class ConflictError(APIError):
    """409: an idempotency key reused with another body, an `external_id` taken, an illegal
    status move."""


class PreconditionFailedError(APIError):
    """412: `If-Match` or `expected_last_seq` no longer names what is stored."""


class PayloadTooLargeError(APIError):
    """413: over one of the service's size limits."""


class RateLimitError(APIError):
    """429: over the tenant's rate limit (the client retries these first)."""


class ServerError(APIError):
    """5xx: the service could not do it now (the client retries where it is safe)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def error_for(response: httpx.Response) -> APIError:
    """The exception for an error answer, with its problem document (or a stand-in when the
    body is not JSON, e.g. from a proxy)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {"detail": response.reason_phrase}
    openai_error = problem.get("error")
    if isinstance(openai_error, dict):  # OpenAI's shape, from /v1/conversations
        problem = {"detail": openai_error.get("message"), **problem}
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else APIError
    return kind(response.status_code, problem, response.headers)
