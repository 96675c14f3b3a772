"""Micro-benchmark: the conversions `Prepared` does around a statement (db/prepared.py).

    .venv/bin/python bench/micro_prepared.py

Times, per call, `_Plan.values_many` on a batch append's rows (20 and 500 messages from
payloads.py, sharing their `created_at`, as the service builds them) against the same with a
memo (a value that is the same object as the row before's converted once: ~1.3 µs a row since
UTCDateTime lost its own last-value memo, so `Prepared` keeps it), and the JSON column converter of
`_column_converter` on history pages of 50 rows against SQLAlchemy's result processor.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from payloads import message

from chat_sessions.db.prepared import _Plan
from chat_sessions.db.sqlite import create_sqlite_engine
from chat_sessions.messages.append import INSERT_MESSAGES
from chat_sessions.messages.schemas import MessageCreate
from chat_sessions.messages.service import message_row
from chat_sessions.models import messages, new_id, utcnow
from chat_sessions.settings import Settings


def per_call_us(function: Callable[[], object], number: int) -> float:
    # The best of many short runs: the least disturbed by whatever else the machine runs.
    return min(timeit.repeat(function, number=number, repeat=30)) / number * 1e6


def batch_rows(count: int) -> list[dict[str, Any]]:
    now, session_id = utcnow(), new_id()
    return [
        message_row(
            msgspec.convert(message(k), MessageCreate),
            tenant_id="t",
            session_id=session_id,
            seq=k + 1,
            created_at=now,
        )
        for k in range(count)
    ]


def values_many_without_memo(plan: _Plan, parameter_sets: Sequence[Any]) -> list[list[Any]]:
    """`_Plan.values_many` for a statement without literals, converting every value, even one
    that is the same object as the row before's."""
    pick = plan._pick
    assert pick is not None and not plan._literals
    rows = [list(pick(one)) for one in parameter_sets]
    for index, process in plan._bind_processors:
        for row in rows:
            row[index] = process(row[index])
    return rows


def main() -> None:
    dialect = create_sqlite_engine("sqlite://", Settings()).dialect
    plan = INSERT_MESSAGES.plan(dialect)
    for count in (20, 500):
        rows = batch_rows(count)
        assert plan.values_many(rows) == values_many_without_memo(plan, rows)
        number = 20_000 // count
        memo = per_call_us(lambda rows=rows: plan.values_many(rows), number)
        plain = per_call_us(lambda rows=rows: values_many_without_memo(plan, rows), number)
        print(
            f"values_many, {count:3} rows: {plain:7.1f} µs without the memo, {memo:7.1f} µs with it"
            f" ({(plain - memo) / count * 1000:+.0f} ns a row)"
        )

    metadata = messages.c.metadata
    plan = _Plan(messages.select(), dialect)
    special = dict(plan._column_converters)[list(messages.c).index(metadata)]
    process = metadata.type.dialect_impl(dialect).result_processor(dialect, None)
    stored = msgspec.json.encode(message(1)["metadata"]).decode()
    pages = {"assistant only": [stored] * 50, "user and assistant": [None, stored] * 25}
    for name, page in pages.items():
        assert special(page) == [None if value is None else process(value) for value in page]
        own = per_call_us(lambda page=page: special(page), 20_000)
        generic = per_call_us(
            lambda page=page: [None if value is None else process(value) for value in page],
            20_000,
        )
        print(f"JSON column, 50 rows ({name}): {own:5.1f} µs, result processor {generic:5.1f} µs")


if __name__ == "__main__":
    main()
