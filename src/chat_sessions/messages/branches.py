"""The message tree: each message names its parent (`parent_seq`, 0 for a first message), a
session names the last message of its active branch (`head_seq`). This module reads
branches (a page of one, the whole path, the children of a message) and finds where a head
goes (switching, removals). Appends set parents in service.py.

How a branch is read. `sessions.first_branch_seq` is the lowest seq at which the history
stops being one line in seq order: an append whose parent is not the session's last seq sets
it to min(itself, that parent); NULL means the session is one line and its head is its last
seq (a head left below the last seq by a removal or an import lowers it to the head). Every
message up to it follows the one before it, so every branch reaching past it holds exactly
the seqs 1..it (whatever exists of them), and above it, the branch's own path. A page is
therefore the plain (session_id, seq) index range up to first_branch_seq, and a walk from the
leaf down the parents (a recursive CTE, one index seek a step) over what is above. A session
whose first_branch_seq is NULL is the range alone, read by the statement of before
(history.py's `_history_statement`, gated by `first_branch_seq IS NULL` in its LIMIT: one
primary-key look-up, evaluated once). Removals may leave first_branch_seq lower than it need
be (never higher): that costs walking, never a wrong answer. Newest-first pages walk
`limit + 1` steps (the last 50: 51); oldest-first ones walk from the leaf to the page's start.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, or_, select, union_all

from chat_sessions.bounds import MAX_SEQ
from chat_sessions.db import Prepared, Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.models import messages, sessions

# Rows of a walk that a filter does not bound.
UNBOUNDED = MAX_SEQ


def lowest_branch_seq(parent: Any, keep: ColumnElement[bool]) -> ColumnElement[Any]:
    """`first_branch_seq` after appending to `parent` (unchanged when `keep` holds, or when
    the parent is the session's last seq: the history goes on in one line)."""
    branch = sessions.c.first_branch_seq
    return case(
        (or_(keep, parent == sessions.c.last_seq), branch),
        (or_(branch.is_(None), parent < branch), parent),
        else_=branch,
    )


def no_such_seq(name: str, seq: int) -> BadRequest:
    return BadRequest(f"{name} {seq}: the session has no message with this seq")


_SESSION = messages.c.session_id == bindparam("session_id")
_HAS_SEQ = Prepared(select(messages.c.seq).where(_SESSION, messages.c.seq == bindparam("seq")))


async def has_message(tx: Transaction, session_id: str, seq: int) -> bool:
    """Whether the session holds a message with this seq (0, the root, always counts)."""
    if seq == 0:
        return True
    return bool(await tx.run(_HAS_SEQ, {"session_id": session_id, "seq": seq}))


def _walk(carried: tuple[Any, ...] = (), *, bounded: bool = False, role: bool = False) -> Any:
    """The path from `leaf` down the parents while above `floor`, leaf first: (seq,
    parent_seq, taken, then the `carried` columns of each message as carried_0, ...).
    `taken` counts the steps a page can use (seq below `upper`, of `role` when `role`);
    `bounded` stops the walk once `want` of those are found. Each step is one seek in the
    (session_id, seq) index, and reads the row it lands on: a page's columns are carried
    along rather than joined again. Callers check the session's tenant first."""

    def columns(table: Any) -> list[Any]:
        return [table.c[column.name].label(f"carried_{n}") for n, column in enumerate(carried)]

    def usable(table: Any) -> Any:
        wanted = [table.c.seq < bindparam("upper")]
        if role:
            wanted.append(table.c.role == bindparam("role"))
        return case((and_(*wanted), 1), else_=0)

    anchor = select(
        messages.c.seq, messages.c.parent_seq, usable(messages).label("taken"), *columns(messages)
    ).where(_SESSION, messages.c.seq == bindparam("leaf"), messages.c.seq > bindparam("floor"))
    walk = anchor.cte("walk", recursive=True)
    step = messages.alias("step")
    conditions = [walk.c.parent_seq > bindparam("floor")]
    if bounded:
        conditions.append(walk.c.taken < bindparam("want"))
    recursive = (
        select(step.c.seq, step.c.parent_seq, walk.c.taken + usable(step), *columns(step))
        .join(
            walk,
            and_(step.c.session_id == bindparam("session_id"), step.c.seq == walk.c.parent_seq),
        )
        .where(*conditions)
    )
    return walk.union_all(recursive)


def _in_page(table: Any, role: bool) -> list[Any]:
    conditions = [
        table.c.session_id == bindparam("session_id"),
        table.c.tenant_id == bindparam("tenant_id"),
        # One upper bound (the lower of `upper` and the one-line part's top + 1): given two,
        # SQLite ranges over the index by one and filters by the other, the whole session.
        table.c.seq < bindparam("range_upper"),
        table.c.seq > bindparam("lower"),
    ]
    if role:
        conditions.append(table.c.role == bindparam("role"))
    return conditions


@functools.cache
def _newest_first(selected: tuple[Any, ...], role: bool) -> Prepared:
    """Newest first: the walk from the leaf, stopped once it has `want` rows for the page,
    carrying the page's columns; and the one-line part's newest `limit`, by the index. Rows
    in no order (at most 2 x limit; the caller sorts them): an ORDER BY over the two costs
    SQLite temporary B-trees."""
    walk = _walk(selected, bounded=True, role=role)
    conditions = [walk.c.seq < bindparam("upper"), walk.c.seq > bindparam("lower")]
    if role:
        position = [column.name for column in selected].index("role")
        conditions.append(walk.c[f"carried_{position}"] == bindparam("role"))
    walked = select(*(walk.c[f"carried_{n}"] for n in range(len(selected)))).where(*conditions)
    ranged = (
        select(*selected)
        .where(*_in_page(messages, role))
        .order_by(messages.c.seq.desc())
        .limit(bindparam("limit"))
    )
    return Prepared(union_all(walked, ranged.subquery().select()))


@functools.cache
def _oldest_first(selected: tuple[Any, ...], role: bool) -> Prepared:
    """Oldest first, the one-line part: its first `limit`, by the index."""
    return Prepared(
        select(*selected)
        .where(*_in_page(messages, role))
        .order_by(messages.c.seq)
        .limit(bindparam("limit"))
    )


_ROLE_WALK = _walk((messages.c.role,))
_WALK_WITH_ROLES = Prepared(select(_ROLE_WALK.c.seq, _ROLE_WALK.c.carried_0))


async def branch_page(
    tx: Transaction,
    selected: Sequence[Any],
    *,
    tenant_id: str,
    session_id: str,
    leaf: int,
    first_branch_seq: int,
    descending: bool,
    lower: int,
    upper: int,
    role: str | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Rows of `selected` (which include `seq`) for one page of the branch that ends at
    `leaf`: at most `limit` of those with lower < seq < upper, from the `descending` end.

    Newest first costs one page whatever the branch's length. Oldest first starts with the
    one-line part (by the index) and, past it, walks from the leaf down to the page's start:
    a cost that grows with the distance from the leaf."""
    columns = tuple(selected)
    position = [column.name for column in columns].index("seq")
    parameters = {
        "session_id": session_id,
        "tenant_id": tenant_id,
        "leaf": leaf,
        "floor": max(first_branch_seq, lower),
        "upper": upper,
        "lower": lower,
        "want": limit,
        "range_upper": min(upper, first_branch_seq + 1, leaf + 1),
        "role": role,
        "limit": limit,
    }
    if descending:
        rows = await tx.run(_newest_first(columns, role is not None), parameters)
        return sorted(rows, key=lambda row: row[position], reverse=True)[:limit]
    rows = await tx.run(_oldest_first(columns, role is not None), parameters)
    if len(rows) == limit or leaf <= first_branch_seq:
        return rows
    walked = await tx.run(_WALK_WITH_ROLES, parameters)
    picked = sorted(
        seq for seq, its_role in walked if lower < seq < upper and role in (None, its_role)
    )[: limit - len(rows)]
    if not picked:
        return rows
    found = await tx.execute(
        select(*columns)
        .where(messages.c.session_id == session_id, messages.c.seq.in_(picked))
        .order_by(messages.c.seq)
    )
    return [*rows, *(tuple(row) for row in found)]


# The walk alone, (seq, parent_seq) of every step: whole paths and removals' ancestors.
_WHOLE_WALK = _walk()
_WALK = Prepared(select(_WHOLE_WALK.c.seq, _WHOLE_WALK.c.parent_seq))
_RANGE = Prepared(
    select(messages.c.seq)
    .where(_SESSION, messages.c.seq <= bindparam("top"))
    .order_by(messages.c.seq)
)


async def _walked(tx: Transaction, session_id: str, leaf: int, floor: int) -> list[tuple[Any, ...]]:
    """(seq, parent_seq) from `leaf` down the parents, while above `floor`, leaf first."""
    parameters = {"session_id": session_id, "leaf": leaf, "floor": floor, "upper": 0}
    return sorted(await tx.run(_WALK, parameters), reverse=True)


async def path_seqs(
    tx: Transaction, *, session_id: str, leaf: int, first_branch_seq: int | None
) -> list[int] | None:
    """The seqs of the branch ending at `leaf`, ascending; None when it is every seq up to
    `leaf` (a session that never branched, or a leaf in its one-line part)."""
    if first_branch_seq is None or leaf <= first_branch_seq:
        return None
    walked = await _walked(tx, session_id, leaf, first_branch_seq)
    below = await tx.run(_RANGE, {"session_id": session_id, "top": first_branch_seq})
    return [row[0] for row in below] + [row[0] for row in reversed(walked)]


_TREE_FROM = Prepared(
    select(messages.c.seq, messages.c.parent_seq)
    .where(_SESSION, messages.c.seq > bindparam("seq"))
    .order_by(messages.c.seq)
)


async def newest_under(tx: Transaction, *, session_id: str, seq: int) -> int:
    """The most recently appended message among `seq` and its descendants. One pass over
    the messages after it, in seq order (a child comes after its parent): the subtree grows
    by every message whose parent is in it."""
    subtree = {seq}
    newest = seq
    for child, parent in await tx.run(_TREE_FROM, {"session_id": session_id, "seq": seq}):
        if parent in subtree:
            subtree.add(child)
            newest = child
    return newest


async def children_by_parent(tx: Transaction, *, session_id: str) -> dict[int, list[int]]:
    """Every message's seq under its parent's, in seq order: where alternatives exist."""
    children: dict[int, list[int]] = {}
    for child, parent in await tx.run(_TREE_FROM, {"session_id": session_id, "seq": 0}):
        children.setdefault(parent, []).append(child)
    return children


async def nearest_ancestor(tx: Transaction, *, session_id: str, start: int, ceiling: int) -> int:
    """`start` when it is at or below `ceiling`, else its nearest ancestor that is (0: the
    root)."""
    if start <= ceiling:
        return start
    walked = await _walked(tx, session_id, start, ceiling)
    # The walk stops at the last step above the ceiling; that step's parent is the answer.
    return int(walked[-1][1]) if walked else 0
