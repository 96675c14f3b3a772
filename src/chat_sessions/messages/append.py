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
  count + its ordinal, its parent the seq before. It applies only while the session's head is
  its last seq (the common case: a linear history, or a branch being extended at its tip):
  when no row comes back (no such session, or a head moved back by a switch or a removal),
  nothing was written and the caller takes the two-statement path, which tells the two apart.

Extending: a column of `messages` that each message carries (in `message_row`) becomes one
more array by itself. A column computed from the session row (a parent seq from a head seq)
goes in `_from_advanced`, with what it needs added to ADVANCE_SESSION's RETURNING; a column
the session row gains goes in ADVANCE_SESSION's `values`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, bindparam, case, func, or_, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import UserDefinedType

from chat_sessions.db.prepared import Prepared
from chat_sessions.db.transaction import Transaction
from chat_sessions.jsonvalues import encode_for_storage
from chat_sessions.messages.branches import lowest_branch_seq
from chat_sessions.models import UTCDateTime, messages, sessions

# Parameters: scope_session, scope_tenant, count (messages), tokens (their token counts'
# sum), now (their created_at); ADVANCE_SESSION also parent_seq (named by the request, or None).
_PARENT: Any = bindparam("parent_seq", type_=Integer())


def _advance(*, at_head: bool) -> Any:
    """The UPDATE that advances a session for `count` new messages. `at_head`: only while the
    head is the last seq (the one-statement append), the new last message becoming the head.
    Otherwise the new messages become the head when they follow it (no parent named, the head
    at the last seq) or name their parent; a head moved back (PATCH head_seq, a removal)
    stays, so RETURNING tells the parent the first message takes (messages/service.py then
    moves the head)."""
    statement = update(sessions).where(
        sessions.c.id == bindparam("scope_session"),
        sessions.c.tenant_id == bindparam("scope_tenant"),
    )
    advanced_last = sessions.c.last_seq + bindparam("count")
    if at_head:
        statement = statement.where(sessions.c.head_seq == sessions.c.last_seq)
        branch_columns: dict[str, Any] = {"head_seq": advanced_last}
    else:
        branch_columns = {
            "head_seq": case(
                (
                    or_(_PARENT.isnot(None), sessions.c.head_seq == sessions.c.last_seq),
                    advanced_last,
                ),
                else_=sessions.c.head_seq,
            ),
            # A named parent other than the last seq starts a branch there (branches.py).
            "first_branch_seq": lowest_branch_seq(_PARENT, _PARENT.is_(None)),
        }
    return statement.values(
        last_seq=advanced_last,
        **branch_columns,
        message_count=sessions.c.message_count + bindparam("count"),
        token_total=sessions.c.token_total + bindparam("tokens"),
        last_message_at=bindparam("now", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
        version=sessions.c.version + 1,
    ).returning(sessions.c.last_seq, sessions.c.head_seq)


ADVANCE_SESSION = Prepared(_advance(at_head=False))
INSERT_MESSAGES = Prepared(messages.insert())


def _from_advanced(advanced: Any, ordinal: Any) -> dict[str, Any]:
    """The message columns the one-statement append computes instead of taking per row."""
    return {
        "tenant_id": bindparam("scope_tenant"),
        "session_id": bindparam("scope_session"),
        "created_at": bindparam("now", type_=UTCDateTime()),
        "seq": advanced.c.last_seq - bindparam("count") + ordinal,
        "parent_seq": advanced.c.last_seq - bindparam("count") + ordinal - 1,
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
    advanced = _advance(at_head=True).cte("advanced")
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


async def append_in_one(
    tx: Transaction, advance: dict[str, Any], rows: Sequence[dict[str, Any]]
) -> int | None:
    """Advance the session (`advance`: ADVANCE_SESSION's parameters, no parent named) and
    insert `rows` (`message_row`s, their `seq` and `parent_seq` filled in here) after its last
    seq, in one statement; the session's new last seq. None, having written nothing, where
    this does not apply (see the module notes): the caller then takes the two statements."""
    if tx.dialect != "postgresql":
        return None
    arrays = {f"each_{key}": [row[key] for row in rows] for key in _PER_ROW}
    for key in _JSON_KEYS:
        arrays[f"each_{key}"] = [
            None if value is None else encode_for_storage(value) for value in arrays[f"each_{key}"]
        ]
    found = await tx.run_alone(_APPEND_IN_ONE, {**advance, **arrays})
    return numbered(rows, found[0][0]) if found else None


async def advance_session(tx: Transaction, advance: dict[str, Any]) -> tuple[int, int] | None:
    """The multi-statement append's first statement: the session's new last seq and its head
    (its row locked until the transaction ends), or None when the session is not there."""
    advanced = await tx.run(ADVANCE_SESSION, advance)
    return (advanced[0][0], advanced[0][1]) if advanced else None


async def insert_messages(tx: Transaction, rows: Sequence[dict[str, Any]]) -> None:
    """The multi-statement append's last statement: `rows`, already `numbered`."""
    await tx.run(INSERT_MESSAGES, rows if len(rows) > 1 else rows[0])


def numbered(rows: Sequence[dict[str, Any]], last_seq: int, first_parent: int | None = None) -> int:
    """Give `rows` the consecutive seqs that end at `last_seq`, each the child of the one
    before, the first of `first_parent` (default: the seq before it); `last_seq`."""
    first_seq = last_seq - len(rows) + 1
    for offset, row in enumerate(rows):
        row["seq"] = first_seq + offset
        row["parent_seq"] = first_seq + offset - 1
    if first_parent is not None:
        rows[0]["parent_seq"] = first_parent
    return last_seq
