"""Per-tenant rate limiting: a fixed one-minute window, counted in this process.

With several processes (PostgreSQL, WORKERS=N) each counts on its own, so a tenant may reach
N times its limit in all; the README says so. A shared counter would cost a database write on
every request, including reads.
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
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, tenant_id: str, limit_per_minute: int | None) -> None:
        """Count one request; 429 with Retry-After once the tenant's window is full."""
        if limit_per_minute is None:
            return
        now = self._clock()
        start, count = self._windows.get(tenant_id, (now, 0))
        if now - start >= WINDOW_SECONDS:
            start, count = now, 0
        if count >= limit_per_minute:
            retry_after = max(1, math.ceil(start + WINDOW_SECONDS - now))
            raise TooManyRequests(
                f"rate limit of {limit_per_minute} requests a minute reached",
                headers={"Retry-After": str(retry_after)},
            )
        self._windows[tenant_id] = (start, count + 1)
