"""Compiled hot statements: `Prepared` and its per-dialect `_Plan`, with the column
converters that turn fetched values into what SQLAlchemy would return. No I/O here: the
engines run what a plan gives them (see sqlite.py)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import sqltypes

_UNSET = object()


class Prepared:
    """A hot-path statement, compiled once per engine and run straight on the driver cursor.

    SQLAlchemy's execution path costs ~30 µs a statement on SQLite (execution contexts,
    events, result objects), as much as the statement itself. Of what it does, two things
    matter: compiling, done here once, and converting values, done here with the column
    types' own processors, so values come back exactly as SQLAlchemy would return them. Rows
    are plain tuples in the statement's column order. On PostgreSQL reads and the
    one-statement append run them straight on asyncpg (asyncpg_direct.py); the statements of
    a write transaction run through SQLAlchemy, as any other statement.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._plans: dict[Dialect, _Plan] = {}

    def plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect)
        if plan is None:
            plan = self._plans[dialect] = _Plan(self.statement, dialect)
        return plan


class _Plan:
    """A statement compiled for one dialect with positional parameters, and its converters."""

    # Far below SQLite's limit of 32,766 bound values a statement, for any of our tables.
    MAX_ROWS_PER_INSERT = 256

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        binds = compiled.binds
        names = list(compiled.positiontup or ())
        # Literals in the statement (`version + 1`) are bind parameters with a value.
        self._literals = {
            name: binds[name].effective_value for name in names if binds[name].value is not None
        }
        self._pick = operator.itemgetter(*names) if names else None
        self._one_name = len(names) == 1
        self._bind_processors = [
            (index, processor)
            for index, name in enumerate(names)
            if (processor := binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        # An INSERT of many rows runs as multi-row VALUES statements, which SQLite executes
        # ~15% faster than the same rows one by one (executemany): see multi_row_inserts.
        self.insert_head: str | None = None
        if statement.is_insert and not compiled.returning:
            head, _, group = self.sql.partition(" VALUES ")
            self.insert_head, self._value_group = head + " VALUES ", group
            self._multi_row_sql: dict[int, str] = {}
        columns = statement.exported_columns if compiled.returning or statement.is_select else ()
        self._column_converters = [
            (index, converter)
            for index, column in enumerate(columns)
            if (converter := _column_converter(column.type, dialect))
        ]

    def values(self, parameters: Mapping[str, Any]) -> list[Any]:
        return self.values_many([parameters])[0]

    def values_many(self, parameter_sets: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """Driver parameters for each set. The values are picked in C (itemgetter) and only
        typed ones converted; rows of a batch share their `created_at`, so a value that is the
        same object as the row before's is converted once (measured, bench/micro_prepared.py:
        a batch of 20 43 -> 18 µs, ~1.3 µs a row, the timestamp's formatting)."""
        pick = self._pick
        if pick is None:
            return [[] for _ in parameter_sets]
        if self._literals:
            parameter_sets = [{**self._literals, **one} for one in parameter_sets]
        if self._one_name:
            rows = [[pick(one)] for one in parameter_sets]
        else:
            rows = [list(pick(one)) for one in parameter_sets]
        for index, process in self._bind_processors:
            last_in: Any = _UNSET
            last_out: Any = None
            for row in rows:
                value = row[index]
                if value is not last_in:
                    last_in, last_out = value, process(value)
                row[index] = last_out
        return rows

    def multi_row_inserts(self, rows: list[list[Any]]) -> list[tuple[str, list[Any]]]:
        """`rows` as INSERT statements of 2**k rows each (and their flattened values), largest
        first (a batch of 20 is 16 + 4), at most MAX_ROWS_PER_INSERT rows each. Sizes that are
        powers of two keep the distinct statements, each compiled once by SQLite and cached by
        the driver, at nine."""
        assert self.insert_head is not None
        statements: list[tuple[str, list[Any]]] = []
        start, remaining = 0, len(rows)
        while remaining:
            size = min(1 << (remaining.bit_length() - 1), self.MAX_ROWS_PER_INSERT)
            sql = self._multi_row_sql.get(size)
            if sql is None:
                sql = self._multi_row_sql[size] = self.insert_head + ", ".join(
                    [self._value_group] * size
                )
            statements.append(
                (sql, list(itertools.chain.from_iterable(rows[start : start + size])))
            )
            start += size
            remaining -= size
        return statements

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Convert the typed columns (a page of history: timestamps and JSON), a column at a
        time: a few times cheaper than a generator over every value of every row."""
        if not self._column_converters or not fetched:
            return fetched
        columns: list[Sequence[Any]] = list(zip(*fetched, strict=True))
        for index, convert in self._column_converters:
            columns[index] = convert(columns[index])
        return list(zip(*columns, strict=True))


ColumnConverter = Callable[[Sequence[Any]], Sequence[Any]]


def _column_converter(column_type: Any, dialect: Dialect) -> ColumnConverter | None:
    """What turns one column of fetched values into what SQLAlchemy would return, for the
    whole column in one call: a type's own `column_converter` (UTCDateTime's, in C), JSON
    decoded by the engine's deserializer directly (a page of 50 JSON objects: ~7.5 against
    ~15 µs through SQLAlchemy's SQLite processor, bench/micro_prepared.py), else the type's
    result processor."""
    own = getattr(column_type, "column_converter", None)
    if own is not None and (converter := own(dialect)) is not None:
        return converter  # type: ignore[no-any-return]
    impl = column_type.dialect_impl(dialect)
    process = impl.result_processor(dialect, None)
    if process is None:
        # Decoded by the driver already (asyncpg's JSON codecs, set by SQLAlchemy on connect).
        return None
    decode = getattr(dialect, "_json_deserializer", None)
    if isinstance(impl, sqltypes.JSON) and decode is not None:
        # SQLite gives a JSON column NUMERIC affinity: a stored scalar such as 5 comes back as
        # a number, not as text to decode (SQLAlchemy's processor passes those through too).
        return lambda values: [
            decode(value) if value.__class__ is str else value for value in values
        ]
    return lambda values: [None if value is None else process(value) for value in values]
