"""Micro-benchmark: building response shapes from rows, positionally (wire.build, from rows
whose columns are the shape's fields in order) against by name (picking each field from the
row's mapping, as SQLAlchemy rows allow).

    .venv/bin/python bench/micro_rows.py

A page of the benchmark's history (`order=desc&limit=50`) and one session.
"""

from __future__ import annotations

import operator
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chat_sessions.messages.schemas import MessageRead
from chat_sessions.sessions.schemas import SessionRead
from chat_sessions.wire import build

NOW = datetime.now(UTC)


def per_call_us(function: Callable[[], object]) -> float:
    number = 2_000
    # The best of many short runs: the least disturbed by whatever else the machine runs.
    return min(timeit.repeat(function, number=number, repeat=30)) / number * 1e6


def by_name(shape: type[Any], rows: list[dict[str, Any]]) -> list[Any]:
    pick = operator.itemgetter(*shape.__struct_fields__)
    return [shape(*pick(row)) for row in rows]


def main() -> None:
    message = {
        "id": "m",
        "session_id": "s",
        "seq": 1,
        "role": "user",
        "content": "hello " * 30,
        "name": None,
        "tool_calls": None,
        "tool_call_id": None,
        "metadata": {"model": "gpt-x"},
        "token_count": 42,
        "created_at": NOW,
    }
    session = {
        "id": "s",
        "user_id": "u",
        "title": "t",
        "traits": {},
        "status": "active",
        "result": None,
        "error": None,
        "message_count": 3,
        "last_message_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        "version": 4,
    }
    for name, shape, row, count in (
        ("history page of 50", MessageRead, message, 50),
        ("one session", SessionRead, session, 1),
    ):
        mappings = [dict(row) for _ in range(count)]
        tuples = [tuple(row[field] for field in shape.__struct_fields__) for _ in range(count)]
        positional = per_call_us(lambda s=shape, t=tuples: build(s, t))
        named = per_call_us(lambda s=shape, m=mappings: by_name(s, m))
        print(f"{name:20}: positional {positional:6.2f} µs, by name {named:6.2f} µs")


if __name__ == "__main__":
    main()
