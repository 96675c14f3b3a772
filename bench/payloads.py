"""The request bodies the benchmark sends, shared by the seeding code, the wrk scripts and the
bare app (which answers reads with messages of the same shape and size as the seeded ones)."""

from __future__ import annotations

from typing import Any

import msgspec

# wrk's Lua replaces this marker by a per-request counter, so every body differs.
COUNTER = "@N@"

_WORDS = (
    "the itinerary for Lisbon includes a tram ride, a visit to the castle and dinner in "
    "Alfama; tell me if you want hotel suggestions near the river or in the old town"
)


def message(i: int | str, k: int | None = None) -> dict[str, Any]:
    """One chat message of a realistic size (~170 characters of content); user and assistant
    alternate with `k` (by default `i`)."""
    k = i if k is None else k
    if isinstance(k, int) and k % 2 == 0:
        return {"role": "user", "content": f"[{i}] {_WORDS}", "token_count": 42}
    return {
        "role": "assistant",
        "content": f"[{i}] {_WORDS}",
        "metadata": {"model": "gpt-x", "latency_ms": 812},
        "token_count": 42,
    }


def batch(n: int, start: int = 0) -> dict[str, Any]:
    return {"messages": [message(start + k) for k in range(n)]}


def session(i: int | str) -> dict[str, Any]:
    return {
        "user_id": f"u-{i}",
        "title": f"Trip to Lisbon {i}",
        "traits": {"plan": "pro", "locale": "pt-PT", "tags": ["bench"]},
    }


def encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# Bodies for wrk, with the counter marker where a unique value goes.
WRK_SESSION = encode(session(COUNTER))
WRK_MESSAGE = encode(message(COUNTER))
WRK_BATCH_20 = encode({"messages": [message(f"{COUNTER}.{k}", k) for k in range(20)]})
