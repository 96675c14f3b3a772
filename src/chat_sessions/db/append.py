"""Appending messages to a session: the one place the append's SQL is built, for both engines
and both shapes, and `append_rows`, which picks the shape.

A message's `seq` comes from its session row, advanced in the appending statement
(`UPDATE sessions SET last_seq = last_seq + n ... RETURNING last_seq`): that row's lock
serialises appends to one session across connections and processes, so seqs are gapless.

- Two statements, `ADVANCE_SESSION` then `INSERT_MESSAGES`: SQLite (no round trips to save),
  and the multi-statement appends (an Idempotency-Key, state patches: messages/service.py),
  which do more between the two.
- One statement on PostgreSQL (`_APPEND_IN_ONE`), run in autocommit as the request's only
  statement (`Transaction.run_alone`): one round trip, no BEGIN/COMMIT, the row lock held for
  the statement alone. A CTE advances the session; the messages are inserted from one array
  a column (`unnest(...) WITH ORDINALITY`), each row's seq being the advanced `last_seq` -
  count + its ordinal. No session row, no insert: no row comes back (404).

Extending: a column of `messages` that each message carries (in `message_row`) becomes one
more array by itself. A column computed from the session row (a parent seq from a head seq)
goes in `_from_advanced`, with what it needs added to ADVANCE_SESSION's RETURNING; a column
the session row gains goes in ADVANCE_SESSION's `values`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import UserDefinedType

from chat_sessions.db.prepared import Prepared
from chat_sessions.db.transaction import Transaction
from chat_sessions.jsonvalues import encode_for_storage
from chat_sessions.models import UTCDateTime, messages, sessions

# Parameters: scope_session, scope_tenant, count (messages), tokens (their token counts'
# sum), now (their created_at).
ADVANCE_SESSION = Prepared(
    update(sessions)
    .where(
        sessions.c.id == bindparam("scope_session"),
        sessions.c.tenant_id == bindparam("scope_tenant"),
    )
    .values(
        last_seq=sessions.c.last_seq + bindparam("count"),
        message_count=sessions.c.message_count + bindparam("count"),
        token_total=sessions.c.token_total + bindparam("tokens"),
        last_message_at=bindparam("now", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
        version=sessions.c.version + 1,
    )
    .returning(sessions.c.last_seq)
)
INSERT_MESSAGES = Prepared(messages.insert())


def _from_advanced(advanced: Any, ordinal: Any) -> dict[str, Any]:
    """The message columns the one-statement append computes instead of taking per row."""
    return {
        "tenant_id": bindparam("scope_tenant"),
        "session_id": bindparam("scope_session"),
        "created_at": bindparam("now", type_=UTCDateTime()),
        "seq": advanced.c.last_seq - bindparam("count") + ordinal,
    }


class _DriverArray(UserDefinedType[list[Any]]):
    """An array parameter handed to asyncpg as it is, its elements encoded by asyncpg's own
    codecs: no per-element processing here (SQLAlchemy's ARRAY runs each column type's
    processor on each element, and reads a list value, content parts, as one more dimension).
    A JSON column's values are encoded first (`encode_for_storage`, as the engine's serializer
    does for one value); a timestamp's are aware datetimes, which asyncpg stores as UTC."""

    cache_ok = True
    render_bind_cast = True

    def __init__(self, element: str) -> None:
        self.element = element

    def get_col_spec(self, **_: Any) -> str:
        return f"{self.element}[]"


def _array_of(column: Any) -> _DriverArray:
    return _DriverArray(column.type.compile(dialect=_DIALECT))


def _is_json(column: Any) -> bool:
    return isinstance(column.type.dialect_impl(_DIALECT), sqltypes.JSON)


def _append_in_one() -> tuple[Prepared, list[str], list[str]]:
    """The one-statement append, the message columns it takes an array of, and which of
    these are JSON (encoded before they are sent)."""
    advanced = ADVANCE_SESSION.statement.cte("advanced")
    computed_names = set(_from_advanced(advanced, None))
    per_row = [column.key for column in messages.c if column.key not in computed_names]
    arrays = {key: _array_of(messages.c[key]) for key in per_row}
    new = (
        func.unnest(*(bindparam(f"each_{key}", type_=arrays[key]) for key in per_row))
        .table_valued(*per_row, with_ordinality="ordinal")
        .render_derived(name="new")
    )
    computed = _from_advanced(advanced, new.c.ordinal)
    names = [*per_row, *computed]
    rows = select(*(new.c[key] for key in per_row), *computed.values())
    inserted = messages.insert().from_select(names, rows.select_from(advanced).join(new, true()))
    statement = select(advanced.c.last_seq).add_cte(inserted.cte("inserted"))
    encoded = [key for key in per_row if _is_json(messages.c[key])]
    return Prepared(statement), per_row, encoded


_DIALECT = postgresql.dialect()
_APPEND_IN_ONE, _PER_ROW, _JSON_KEYS = _append_in_one()


async def append_rows(
    tx: Transaction, advance: dict[str, Any], rows: Sequence[dict[str, Any]]
) -> int | None:
    """Advance the session (`advance`: ADVANCE_SESSION's parameters) and insert `rows`
    (`message_row`s, their `seq` filled in here) with consecutive seqs after its last one; the
    session's new last seq, or None (nothing written) when the session is not there.

    On PostgreSQL, as the transaction's only statement when it is the first (see the module
    notes); otherwise as the two statements, in the caller's transaction.
    """
    if tx.dialect == "postgresql":
        arrays = {f"each_{key}": [row[key] for row in rows] for key in _PER_ROW}
        for key in _JSON_KEYS:
            arrays[f"each_{key}"] = [
                None if value is None else encode_for_storage(value)
                for value in arrays[f"each_{key}"]
            ]
        found = await tx.run_alone(_APPEND_IN_ONE, {**advance, **arrays})
        if found is not None:
            return _numbered(rows, found[0][0]) if found else None
    last_seq = await advance_session(tx, advance)
    if last_seq is not None:
        await insert_messages(tx, rows, last_seq)
    return last_seq


async def advance_session(tx: Transaction, advance: dict[str, Any]) -> int | None:
    """The multi-statement append's first statement: the session's new last seq (its row
    locked until the transaction ends), or None when the session is not there."""
    advanced = await tx.run(ADVANCE_SESSION, advance)
    return advanced[0][0] if advanced else None


async def insert_messages(tx: Transaction, rows: Sequence[dict[str, Any]], last_seq: int) -> None:
    """The multi-statement append's last statement: `rows`, numbered up to `last_seq`."""
    _numbered(rows, last_seq)
    await tx.run(INSERT_MESSAGES, rows if len(rows) > 1 else rows[0])


def _numbered(rows: Sequence[dict[str, Any]], last_seq: int) -> int:
    """Give `rows` the consecutive seqs that end at `last_seq`; `last_seq`."""
    first_seq = last_seq - len(rows) + 1
    for offset, row in enumerate(rows):
        row["seq"] = first_seq + offset
    return last_seq
