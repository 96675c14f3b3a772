"""Micro-benchmark: what the strict-input checks cost an append (bodies.py, jsonvalues.py).

    .venv/bin/python bench/input_checks.py

Times, per call, the duplicate-key check on the benchmark's own append bodies (payloads.py),
the exact parse it falls back to, and the storage encoder against a plain encode.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable

import msgspec
from payloads import batch, message

from chat_sessions.bodies import _has_duplicate_keys, _refuse_twins
from chat_sessions.jsonvalues import encode_for_storage

BODIES = {
    "user message": msgspec.json.encode(message(1, 0)),
    "assistant message + metadata": msgspec.json.encode(message(1, 1)),
    "content with a colon in a string start": msgspec.json.encode(
        {"role": "user", "content": ": a string that starts with a colon"}
    ),
    "batch of 20": msgspec.json.encode(batch(20)),
}


def per_call_us(function: Callable[[], object]) -> float:
    number = 2_000
    # The best of many short runs: the least disturbed by whatever else the machine runs.
    return min(timeit.repeat(function, number=number, repeat=50)) / number * 1e6


def main() -> None:
    for name, body in BODIES.items():
        check = per_call_us(lambda body=body: _has_duplicate_keys(body))
        exact = per_call_us(lambda body=body: json.loads(body, object_pairs_hook=_refuse_twins))
        print(f"{name:40} {len(body):5} B  check {check:5.2f} µs  exact parse {exact:5.2f} µs")
    metadata = message(1, 1)["metadata"]
    plain = per_call_us(lambda: msgspec.json.encode(metadata).decode())
    stored = per_call_us(lambda: encode_for_storage(metadata))
    print(f"metadata encode: plain {plain:.2f} µs, for storage {stored:.2f} µs")


if __name__ == "__main__":
    main()
