"""Micro-benchmark: the shortcuts in an append's checks, against the plain code they replace.

    .venv/bin/python bench/micro_checks.py

- check_message's size test: `len(content) * 4 > limit` before encoding, against encoding
  every content (messages/service.py);
- check_json's bracket count, which skips the walk of a document that cannot hold anything to
  find, against always walking it (jsonvalues.py);
- a SQLite timestamp formatter that remembers the last value formatted (UTCDateTime had one;
  it went) against UTCDateTime's own, which formats each value (models.py): the driver values
  of an append (the session's advance and the message rows, each with a fresh `now`), as
  db.Prepared computes them.

The payloads are the benchmark's own (payloads.py): ~170 characters of content, the
assistant's metadata.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from payloads import message
from sqlalchemy.dialects import sqlite

from chat_sessions.db import append
from chat_sessions.db.prepared import _Plan
from chat_sessions.jsonvalues import MAX_JSON_DEPTH, _check_tree
from chat_sessions.messages import service
from chat_sessions.messages.schemas import MessageCreate
from chat_sessions.models import UTCDateTime

LIMIT = 65536


def per_call_us(function: Callable[[], object]) -> float:
    number = 5_000
    # The best of many short runs: the least disturbed by whatever else the machine runs.
    return min(timeit.repeat(function, number=number, repeat=40)) / number * 1e6


def interleaved_us(a: Callable[[], object], b: Callable[[], object]) -> tuple[float, float]:
    """Per call, the best of short runs taken in turn, so a busy moment hits both alike."""
    number, best_a, best_b = 500, float("inf"), float("inf")
    for _ in range(200):
        best_a = min(best_a, timeit.timeit(a, number=number) / number * 1e6)
        best_b = min(best_b, timeit.timeit(b, number=number) / number * 1e6)
    return best_a, best_b


def size_shortcut(content: str) -> bool:
    return len(content) * 4 > LIMIT and len(content.encode()) > LIMIT


def size_plain(content: str) -> bool:
    return len(content.encode()) > LIMIT


def json_shortcut(value: object) -> None:
    encoded = msgspec.json.encode(value)
    if len(encoded) > LIMIT:
        raise ValueError
    brackets = encoded.count(b"{") + encoded.count(b"[")
    if brackets > MAX_JSON_DEPTH or b"\\u0000" in encoded:
        _check_tree(value, "metadata")


def json_plain(value: object) -> None:
    if len(msgspec.json.encode(value)) > LIMIT:
        raise ValueError
    _check_tree(value, "metadata")


def remembering_bind_processor(self: UTCDateTime, dialect: object) -> object:
    """UTCDateTime's SQLite formatter as it was, remembering the last value formatted."""
    last_value: datetime | None = None
    last_text: str | None = None

    def format_utc(value: datetime | None) -> str | None:
        nonlocal last_value, last_text
        if value is None:
            return None
        if value is not last_value:
            utc = value.astimezone(UTC) if value.utcoffset() else value
            last_value, last_text = value, utc.isoformat(" ", "microseconds")[:26]
        return last_text

    return format_utc


def append_values(plans: tuple[_Plan, _Plan], count: int) -> Callable[[], object]:
    advance, insert = plans
    new = msgspec.convert(message(1, 1), MessageCreate)

    def values() -> object:
        now = datetime.now(UTC)
        parameters = {"scope_session": "s", "scope_tenant": "t", "count": count}
        advance.values({**parameters, "tokens": 42, "now": now})
        rows = [
            service.message_row(new, tenant_id="t", session_id="s", seq=k, created_at=now)
            for k in range(count)
        ]
        return insert.values_many(rows)

    return values


def plans_with(bind_processor: object) -> tuple[_Plan, _Plan]:
    dialect = sqlite.dialect()
    original = UTCDateTime.bind_processor
    UTCDateTime.bind_processor = bind_processor  # type: ignore[method-assign,assignment]
    try:
        return tuple(  # type: ignore[return-value]
            _Plan(prepared.statement, dialect)
            for prepared in (append.ADVANCE_SESSION, append.INSERT_MESSAGES)
        )
    finally:
        UTCDateTime.bind_processor = original  # type: ignore[method-assign]


def main() -> None:
    content = message(1, 1)["content"]
    metadata = message(1, 1)["metadata"]
    for name, text in (("~170 chars", content), ("8 KB", content * 48)):
        fast, plain = (
            per_call_us(lambda t=text: size_shortcut(t)),
            per_call_us(lambda t=text: size_plain(t)),
        )
        print(f"content size, {name:10}: shortcut {fast:5.3f} µs, plain {plain:5.3f} µs")
    fast = per_call_us(lambda: json_shortcut(metadata))
    plain = per_call_us(lambda: json_plain(metadata))
    print(f"check_json, metadata     : bracket skip {fast:5.3f} µs, always walk {plain:5.3f} µs")
    memo = plans_with(remembering_bind_processor)
    plain = plans_with(UTCDateTime.bind_processor)
    format_utc = UTCDateTime().bind_processor(sqlite.dialect())
    one = per_call_us(lambda: format_utc(datetime.now(UTC))) - per_call_us(
        lambda: datetime.now(UTC)
    )
    print(f"one timestamp formatted  : {one:5.3f} µs")
    for count in (1, 20):
        with_memo, without = interleaved_us(append_values(memo, count), append_values(plain, count))
        print(
            f"append of {count:2}, driver values : "
            f"memo {with_memo:6.3f} µs, plain {without:6.3f} µs"
        )


if __name__ == "__main__":
    main()
