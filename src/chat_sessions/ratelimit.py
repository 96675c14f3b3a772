"""Rate limiting: a fixed one-minute window per key, counted in this process.

Keys are tenants (their `rate_limit_per_minute`) and client addresses (failed
authentications, AUTH_FAILURES_PER_MINUTE). With several processes (PostgreSQL, WORKERS=N)
each counts on its own, so a tenant may reach N times its limit in all; the README says so. A
shared counter would cost a database write on every request, including reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from chat_sessions.errors import DomainError

WINDOW_SECONDS = 60.0


class TooManyRequests(DomainError):
    status_code = 429
    title = "Too Many Requests"


class RateLimiter:
    """Windows of at most `max_keys` keys: past that the oldest window is forgotten (its key
    starts afresh), so a flood of new keys (client addresses) cannot grow the table."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        # Kept in the order the windows started: the first is the oldest.
        self._windows: dict[str, tuple[float, int]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, key: str, limit_per_minute: int | None, what: str = "requests") -> None:
        """Count one event; 429 with Retry-After once the key's window is full."""
        if limit_per_minute is None:
            return
        now = self._clock()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= WINDOW_SECONDS or count == 0:
            self._windows.pop(key, None)
            if len(self._windows) >= self._max_keys:
                del self._windows[next(iter(self._windows))]
            start, count = now, 0
        if count >= limit_per_minute:
            retry_after = max(1, math.ceil(start + WINDOW_SECONDS - now))
            raise TooManyRequests(
                f"rate limit of {limit_per_minute} {what} a minute reached",
                headers={"Retry-After": str(retry_after)},
            )
        self._windows[key] = (start, count + 1)
