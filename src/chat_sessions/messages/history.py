"""Reading history: a page of the active branch (the default), of the branch that ends at a
given seq, of every message, or of a message's children; keyset cursors scoped to each.

A session that never branched is read by one statement over the (session_id, seq) index,
as before branches existed; a branch of one that did is read by branches.py.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, case, select

from chat_sessions.db import Prepared, Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.messages.branches import branch_page, has_message, no_such_seq
from chat_sessions.messages.schemas import MessageRead
from chat_sessions.messages.service import MESSAGE_COLUMNS, build_messages
from chat_sessions.models import messages, sessions
from chat_sessions.pagination import cut_page, decode_cursor
from chat_sessions.sessions.service import not_found

_NEVER_BRANCHED = (
    select(sessions.c.first_branch_seq)
    .where(sessions.c.id == bindparam("session_id"))
    .scalar_subquery()
    .is_(None)
)


@functools.cache
def _history_statement(
    descending: bool,
    after: bool,
    before: bool,
    role: bool,
    cursor: bool,
    never_branched: bool = False,
    children: bool = False,
) -> Prepared:
    """The history query for one combination of filters, built once. `never_branched` reads
    nothing from a session that branched (messages/branches.py reads those); `children`
    only the messages that follow `parent_seq`."""
    seq = messages.c.seq
    statement = select(*MESSAGE_COLUMNS).where(
        messages.c.session_id == bindparam("session_id"),
        messages.c.tenant_id == bindparam("tenant_id"),
    )
    if after:
        statement = statement.where(seq > bindparam("after_seq"))
    if before:
        statement = statement.where(seq < bindparam("before_seq"))
    if role:
        statement = statement.where(messages.c.role == bindparam("role"))
    if cursor:
        position: Any = bindparam("position")
        statement = statement.where(seq < position if descending else seq > position)
    if children:
        # A child comes after its parent: the index range starts there.
        parent: Any = bindparam("parent_seq")
        statement = statement.where(seq > parent, messages.c.parent_seq == parent)
    limit: Any = bindparam("limit")
    if never_branched:
        # The gate is in LIMIT, evaluated once: in WHERE, SQLite would test it on every row
        # of the session's index, finding none (a session of 10,000: 1.8 ms for nothing).
        limit = case((_NEVER_BRANCHED, limit), else_=0)
    return Prepared(statement.order_by(seq.desc() if descending else seq.asc()).limit(limit))


async def list_messages(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    order: str,
    after_seq: int | None,
    before_seq: int | None,
    role: str | None,
    limit: int,
    cursor: str | None,
    branch: str | None = None,
    leaf_seq: int | None = None,
    parent_seq: int | None = None,
) -> tuple[list[MessageRead], str | None]:
    """A page of history, in either direction: of the active branch (the default), of the
    branch ending at `leaf_seq`, of every message (`branch="all"`), or of the children of
    `parent_seq`. Cursors are scoped to what they page through."""
    if branch == "all" and (leaf_seq is not None or parent_seq is not None):
        raise BadRequest("branch=all reads every message: leave out leaf_seq and parent_seq")
    if leaf_seq is not None and parent_seq is not None:
        raise BadRequest("leaf_seq reads a branch, parent_seq a message's children: name one")
    scope: tuple[Any, ...] = ("messages", tenant_id, session_id, order, after_seq, before_seq, role)
    # The active branch keeps the scope of before, so cursors issued before branches work.
    if branch == "all":
        scope += ("all",)
    elif leaf_seq is not None:
        scope += ("leaf", leaf_seq)
    elif parent_seq is not None:
        scope += ("children", parent_seq)
    descending = order == "desc"
    parameters: dict[str, Any] = {
        "session_id": session_id,
        "tenant_id": tenant_id,
        "after_seq": after_seq,
        "before_seq": before_seq,
        "role": role,
        "limit": limit + 1,
        "parent_seq": parent_seq,
    }
    position = None
    if cursor is not None:
        (position,) = decode_cursor(cursor, scope, (int,))
        parameters["position"] = position
    found: list[MessageRead] = []
    if leaf_seq is None:
        statement = _history_statement(
            descending,
            after_seq is not None,
            before_seq is not None,
            role is not None,
            cursor is not None,
            never_branched=branch != "all" and parent_seq is None,
            children=parent_seq is not None,
        )
        found = build_messages(await tx.run(statement, parameters))
    if not found:
        # An empty page: tell an empty (or filtered-out) history from a missing session, and
        # read a branch of a session that branched.
        found = await _branch_page(
            tx, parameters, leaf_seq, descending, position, active=branch != "all"
        )
    return cut_page(found, limit, scope, lambda message: [message.seq])


async def _branch_page(
    tx: Transaction,
    parameters: dict[str, Any],
    leaf_seq: int | None,
    descending: bool,
    position: int | None,
    *,
    active: bool,
) -> list[MessageRead]:
    """A page of the branch ending at `leaf_seq` (or the head) of a session that branched;
    nothing for one that never did (the range read it) or for `branch=all`; 404 when the
    session does not exist."""
    session_id, tenant_id = parameters["session_id"], parameters["tenant_id"]
    head_seq, first_branch_seq = await branch_state(tx, tenant_id=tenant_id, session_id=session_id)
    for name, seq in (("leaf_seq", leaf_seq), ("parent_seq", parameters["parent_seq"])):
        if seq is not None and not await has_message(tx, session_id, seq):
            raise no_such_seq(name, seq)
    if not active or parameters["parent_seq"] is not None:
        return []
    leaf = head_seq if leaf_seq is None else leaf_seq
    if first_branch_seq is None:
        first_branch_seq = leaf  # one line: the branch is the range up to the leaf
    if descending and position is not None:
        # The page before was of this branch: go on down from where it stopped, at the cost
        # of one page whatever its depth.
        leaf = position
    uppers = [leaf + 1, parameters["before_seq"], position if descending else None]
    lowers = [0, parameters["after_seq"], None if descending else position]
    rows = await branch_page(
        tx,
        MESSAGE_COLUMNS,
        tenant_id=tenant_id,
        session_id=session_id,
        leaf=leaf,
        first_branch_seq=first_branch_seq,
        descending=descending,
        lower=max(bound for bound in lowers if bound is not None),
        upper=min(bound for bound in uppers if bound is not None),
        role=parameters["role"],
        limit=parameters["limit"],
    )
    return build_messages(rows)


_BRANCH_STATE = Prepared(
    select(sessions.c.head_seq, sessions.c.first_branch_seq).where(
        sessions.c.id == bindparam("session_id"), sessions.c.tenant_id == bindparam("tenant_id")
    )
)


async def branch_state(
    tx: Transaction, *, tenant_id: str, session_id: str
) -> tuple[int, int | None]:
    """The session's head and first branch seq (404 when it does not exist)."""
    rows = await tx.run(_BRANCH_STATE, {"session_id": session_id, "tenant_id": tenant_id})
    if not rows:
        raise not_found()
    return rows[0][0], rows[0][1]
