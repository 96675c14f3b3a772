"""The message tree: each message names its parent (`parent_seq`, 0 for a first message), a
session names the last message of its active branch (`head_seq`). This module reads
branches (a page of one, the whole path, the children of a message) and finds where a head
goes (switching, removals). Appends set parents in service.py.

How a branch is read. `sessions.first_branch_seq` is the lowest seq at which the history
stops being one line in seq order: an append whose parent is not the session's last seq sets
it to min(itself, that parent); NULL means the session never branched. Every message up to it
follows the one before it, so every branch reaching past it holds exactly the seqs 1..it
(whatever exists of them), and above it, the branch's own path. A page is therefore two
indexed reads in one statement: the plain (session_id, seq) range up to first_branch_seq,
and a walk from the leaf down the parents (a recursive CTE, one index seek a step) over what
is above. A session that never branched is the range alone, read by the statement of
before (service.py's `_history_statement`), which checks first_branch_seq IS NULL in a
scalar subquery: one primary-key look-up, evaluated once. Removals may leave
first_branch_seq lower than it need be (never higher): that costs walking, never a wrong
answer. Walks downwards stop after the page's `limit + 1` rows when the page is newest first
(the last 50: 51 steps); oldest first, and with a `role` filter, they walk from the leaf to
the page's start.
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


def _walk(bounded: bool) -> Any:
    """The path from `leaf` down the parents, above `floor`: (seq, parent_seq, taken), where
    `taken` counts the rows below `upper` (what a page can use). `bounded` stops the walk
    once `want` of those are found."""
    anchor = select(
        messages.c.seq,
        messages.c.parent_seq,
        case((messages.c.seq < bindparam("upper"), 1), else_=0).label("taken"),
    ).where(_SESSION, messages.c.seq == bindparam("leaf"), messages.c.seq > bindparam("floor"))
    walk = anchor.cte("walk", recursive=True)
    step = messages.alias("step")
    conditions = [walk.c.parent_seq > bindparam("floor")]
    if bounded:
        conditions.append(walk.c.taken < bindparam("want"))
    recursive = (
        select(
            step.c.seq,
            step.c.parent_seq,
            walk.c.taken + case((step.c.seq < bindparam("upper"), 1), else_=0),
        )
        .join(
            walk,
            and_(step.c.session_id == bindparam("session_id"), step.c.seq == walk.c.parent_seq),
        )
        .where(*conditions)
    )
    return walk.union_all(recursive)


@functools.cache
def branch_page_statement(
    selected: tuple[Any, ...], descending: bool, role: bool, bounded: bool
) -> Prepared:
    """A page of the branch ending at `leaf`: `selected` columns of the messages with
    `lower` < seq < `upper` on it, `limit` of them from the `descending` end."""
    walk = _walk(bounded)
    seq = messages.c.seq
    in_page = [
        _SESSION,
        messages.c.tenant_id == bindparam("tenant_id"),
        seq < bindparam("upper"),
        seq > bindparam("lower"),
    ]
    if role:
        in_page.append(messages.c.role == bindparam("role"))
    order = seq.desc() if descending else seq.asc()
    walked = select(*selected).where(*in_page, seq.in_(select(walk.c.seq)))
    ranged = select(*selected).where(*in_page, seq <= bindparam("linear_top"))
    parts = [
        part.order_by(order).limit(bindparam("limit")).subquery().select()
        for part in (walked, ranged)
    ]
    page = union_all(*parts).subquery()
    position = page.c.seq
    return Prepared(
        select(*page.c)
        .order_by(position.desc() if descending else position.asc())
        .limit(bindparam("limit"))
    )


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
    """Rows of `selected` for one page of the branch that ends at `leaf` (limit rows)."""
    bounded = descending and role is None
    statement = branch_page_statement(tuple(selected), descending, role is not None, bounded)
    parameters = {
        "session_id": session_id,
        "tenant_id": tenant_id,
        "leaf": leaf,
        "floor": max(first_branch_seq, lower),
        "upper": upper,
        "lower": lower,
        "want": limit,
        "linear_top": min(first_branch_seq, leaf),
        "role": role,
        "limit": limit,
    }
    return await tx.run(statement, parameters)


# The walk alone, (seq, parent_seq) of every step: whole paths and removals' ancestors.
_WHOLE_WALK = _walk(False)
_WALK = Prepared(select(_WHOLE_WALK.c.seq, _WHOLE_WALK.c.parent_seq))
_RANGE = Prepared(
    select(messages.c.seq).where(_SESSION, messages.c.seq <= bindparam("top")).order_by(messages.c.seq)
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
