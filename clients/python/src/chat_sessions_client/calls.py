"""What one API call is, apart from how it is sent: `Call` (method, path, query, body, how its
answer becomes a typed result, and whether it is safe to send twice), and `Retries`, the rule
that decides, after each failed attempt, whether and when to send it again. The sync and async
clients share both; only their waiting differs."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

T = TypeVar("T")


class Resend(Enum):
    """When a call may be sent again after a failed attempt."""

    # The call changes nothing, or changes it the same way twice (reads; an append under its
    # Idempotency-Key; a get-or-create; a wholesale PUT): after any connection error, 408,
    # 429, 5xx.
    ALWAYS = "always"
    # Sending it twice could do it twice (a pop, a truncation, a create without an
    # external_id): only when the service surely did not act on it, i.e. the connection was
    # never made, or it answered 408 or 429.
    IF_NOT_RECEIVED = "if_not_received"


@dataclass(frozen=True)
class Answer:
    """A successful answer, as an operation's parser sees it."""

    status: int
    headers: httpx.Headers
    body: Any


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Answer], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    resend: Resend = Resend.ALWAYS


def segment(value: str) -> str:
    """One path segment. The service answers 404 for an encoded slash (it never splits a
    path on one), so an id holding "/" cannot be addressed: say so before sending."""
    if "/" in value:
        raise ValueError(f"an id with '/' cannot be used in a path: {value!r}")
    return quote(value, safe="")


def query(**values: Any) -> dict[str, Any]:
    """The query parameters that were given (the service refuses unknown or empty ones)."""
    return {name: value for name, value in values.items() if value is not None}


# Statuses after which the service did not act on the request: 408 (not read in full) and
# 429 (refused before it ran).
_NOT_ACTED_ON = {408, 429}
# Connection errors raised before the request could reach the service.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Retries:
    """`attempts` in all (1: never retry), waiting `backoff_seconds` doubled after each failed
    attempt, capped at `max_backoff_seconds`, with jitter; a `Retry-After` the service sends is
    honoured (up to the cap)."""

    attempts: int = 4
    backoff_seconds: float = 0.25
    max_backoff_seconds: float = 8.0

    def delay_after_error(
        self, call: Call[Any], error: httpx.TransportError, attempt: int
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if attempt >= self.attempts:
            return None
        if call.resend is Resend.IF_NOT_RECEIVED and not isinstance(error, _NOT_SENT):
            return None
        return self._backoff(attempt)

    def delay_after_status(
        self, call: Call[Any], response: httpx.Response, attempt: int
    ) -> float | None:
        if attempt >= self.attempts:
            return None
        status = response.status_code
        if status in _NOT_ACTED_ON:
            pass
        elif status < 500 or call.resend is not Resend.ALWAYS:
            return None
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isdigit():
            return min(float(retry_after), self.max_backoff_seconds)
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_seconds * 2.0 ** (attempt - 1), self.max_backoff_seconds)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter, not a secret
