"""The request bodies the benchmark sends, shared by the seeding code, the wrk scripts and the
bare app (which answers reads with messages of the same shape and size as the seeded ones)."""

from __future__ import annotations

import base64
import random
from typing import Any

import msgspec

# wrk's Lua replaces this marker by a per-request counter, so every body differs. The counter
# has a fixed width (`counter`), so every body of a scenario, and every answer the service
# gives it, has the same size all through a run: the bare app's answer, built once, is then
# the same size as each of the service's (bench/bare_app.py).
COUNTER = "@N@"


def counter(thread: int, n: int) -> str:
    """What wrk's Lua puts where COUNTER stands (bench/wrk/*.lua: "%d-%07d"): the thread and
    the request's number on it. Thread 0 is this process's: the checks and the seeding."""
    return f"{thread}-{n:07d}"


# The counter of the one request a run sends each side before measuring (wrk.sanity_check).
CHECK_COUNTER = counter(0, 0)

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


def _png_data_url(size: int) -> str:
    """An image as a client inlines it: a PNG signature, then bytes as random as compressed
    image data (the same every run), base64 in a data URL."""
    data = b"\x89PNG\r\n\x1a\n" + random.Random(12).randbytes(size - 8)
    return "data:image/png;base64," + base64.b64encode(data).decode()


IMAGE_URL = _png_data_url(1_300)  # 1,758 characters: the parts are ~2 KB encoded


def parts_message(i: int | str) -> dict[str, Any]:
    """A user message as a multimodal client sends it (~2.4 KB encoded): content as parts, a
    text part and a ~2 KB image, and the provider's own item for it, an OpenAI Responses
    `message` item (the image referenced by file id, as an adapter that uploads it keeps it)."""
    text = f"[{i}] {_WORDS}"
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        ],
        "item": {
            "type": "message",
            "id": f"msg_{i}",
            "role": "user",
            "status": "completed",
            "content": [
                {"type": "input_text", "text": text},
                {"type": "input_image", "file_id": "file-bench-image", "detail": "auto"},
            ],
        },
        "token_count": 130,
    }


def batch(n: int, start: int = 0, make: Any = message) -> dict[str, Any]:
    return {"messages": [make(start + k) for k in range(n)]}


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
WRK_PARTS_MESSAGE = encode(parts_message(COUNTER))
WRK_BATCH_20 = encode({"messages": [message(f"{COUNTER}.{k}", k) for k in range(20)]})
# A fork of the hot session's first 1,000 messages (plan.FORKED_MESSAGES).
WRK_FORK = encode({"at_seq": 1_000})
# A chat turn (plan.py): the user's message, then the assistant's answer (the append's body).
WRK_USER_MESSAGE = encode(message(COUNTER, 0))
WRK_ASSISTANT_MESSAGE = WRK_MESSAGE
# A streamed answer's delta: a token's worth of text, as a model's stream sends it.
WRK_DELTA = encode({"content": " tok"})
# The in-progress answer the deltas grow (seeding.py).
STREAMED_ANSWER = {"role": "assistant", "content": "", "status": "in_progress"}
