"""The history as a ready LLM prompt, trimmed to a budget.

Rules: keep the newest messages that fit `max_messages` and `max_tokens`; always keep the
`system` and `developer` messages (they count against the budget first); never send a `tool`
message without the assistant message that called it. An assistant message that requested
tool calls and the tool results answering it form one unit, kept or dropped together; a tool
result whose call is not in the history at all is dropped. Consecutive assistant messages that
request tool calls (the Responses API's parallel calls, stored one `function_call` item each)
are one unit, sent as one assistant message: chat-completions wants every call answered before
the next message. Messages without a `token_count` are estimated at four characters a token.
Content is the text column: for a message sent as content parts, the text of its text parts.
In-progress messages (an answer still streaming) are left out; interrupted ones are kept.
Only the active branch is read: the messages from the root to the session's head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, or_, select

from chat_sessions.db import Prepared, Transaction
from chat_sessions.messages.branches import path_seqs
from chat_sessions.messages.history import branch_state
from chat_sessions.messages.schemas import ContextMessage
from chat_sessions.models import messages

CHUNK = 500
# Instructions to the model: always sent, whatever the budget.
ALWAYS_KEPT = ("system", "developer")
_COLUMNS = (
    messages.c.seq,
    messages.c.role,
    messages.c.content,
    messages.c.name,
    messages.c.tool_calls,
    messages.c.tool_call_id,
    messages.c.token_count,
)


class _Row(NamedTuple):
    """A row of _COLUMNS."""

    seq: int
    role: str
    content: str
    name: str | None
    tool_calls: list[Any] | None
    tool_call_id: str | None
    token_count: int | None


# Built once, run as `Prepared` (on PostgreSQL straight on asyncpg): a request's two or three
# statements cost what building them would.
_SCOPE = (
    messages.c.session_id == bindparam("session_id"),
    messages.c.tenant_id == bindparam("tenant_id"),
    # An answer still being generated is not part of the prompt; an interrupted one is.
    messages.c.status != "in_progress",
    # The active branch ends at the head; a branched session's other messages below it are
    # left out by `of_branch`.
    messages.c.seq <= bindparam("head_seq"),
)
# Comparisons one by one: IN with a list is an expanding parameter, which Prepared has not.
_SYSTEM = Prepared(
    select(*_COLUMNS)
    .where(*_SCOPE, or_(*(messages.c.role == role for role in ALWAYS_KEPT)))
    .order_by(messages.c.seq)
)
_NEWEST = select(*_COLUMNS).where(*_SCOPE, *(messages.c.role != role for role in ALWAYS_KEPT))
_NEWEST_CHUNKS = {
    before: Prepared(
        (_NEWEST.where(messages.c.seq < bindparam("before")) if before else _NEWEST)
        .order_by(messages.c.seq.desc())
        .limit(CHUNK)
    )
    for before in (False, True)
}


def estimated_tokens(row: Any) -> int:
    if row.token_count is not None:
        return int(row.token_count)
    return (len(row.content) + 3) // 4


def _called_ids(row: Any) -> set[str]:
    return {str(call.get("id")) for call in row.tool_calls or () if isinstance(call, dict)}


def _calls_tools(row: Any) -> bool:
    return row.role == "assistant" and bool(row.tool_calls)


def newest_units(rows_newest_first: Sequence[Any]) -> Iterable[list[Any]]:
    """Group non-system messages, newest first, into units that must stay together."""
    waiting_tools: list[Any] = []
    index = 0
    while index < len(rows_newest_first):
        row = rows_newest_first[index]
        index += 1
        if row.role == "tool":
            waiting_tools.append(row)
            continue
        unit = [row]
        while _calls_tools(row) and index < len(rows_newest_first):
            if not _calls_tools(earlier := rows_newest_first[index]):
                break
            unit.insert(0, earlier)
            index += 1
        if waiting_tools:
            called = set().union(*map(_called_ids, unit)) if _calls_tools(row) else set()
            # Tool results came after their call: put them back in seq order behind it.
            unit += [tool for tool in reversed(waiting_tools) if tool.tool_call_id in called]
            waiting_tools = []
        yield unit
    # Tool results left waiting here have no calling message: they are never sent.


async def build_context(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    max_messages: int | None,
    max_tokens: int | None,
) -> list[ContextMessage]:
    head_seq, first_branch_seq = await branch_state(tx, tenant_id=tenant_id, session_id=session_id)
    path = await path_seqs(
        tx, session_id=session_id, leaf=head_seq, first_branch_seq=first_branch_seq
    )
    on_branch = None if path is None else set(path)

    def of_branch(rows: Iterable[Sequence[Any]]) -> list[_Row]:
        read = [_Row(*row) for row in rows]
        return read if on_branch is None else [row for row in read if row.seq in on_branch]

    scope = {"session_id": session_id, "tenant_id": tenant_id, "head_seq": head_seq}
    system = of_branch(await tx.run(_SYSTEM, scope))
    messages_left = None if max_messages is None else max_messages - len(system)
    tokens_left = None if max_tokens is None else max_tokens - sum(map(estimated_tokens, system))

    async def newest_first() -> list[Any]:
        rows: list[Any] = []
        before: int | None = None
        while True:
            chunk = await tx.run(_NEWEST_CHUNKS[before is not None], {**scope, "before": before})
            rows.extend(of_branch(chunk))
            budget_spent = messages_left is not None and len(rows) > messages_left + 1
            if len(chunk) < CHUNK or budget_spent or _tokens_spent(rows, tokens_left):
                return rows
            before = chunk[-1][0]  # seq

    kept: list[Any] = []
    for unit in newest_units(await newest_first()):
        unit_tokens = sum(map(estimated_tokens, unit))
        if messages_left is not None and len(unit) > messages_left:
            break
        if tokens_left is not None and unit_tokens > tokens_left:
            break
        kept.extend(unit)
        if messages_left is not None:
            messages_left -= len(unit)
        if tokens_left is not None:
            tokens_left -= unit_tokens
    chosen = sorted([*system, *kept], key=lambda row: row.seq)
    prompt: list[ContextMessage] = []
    for row in chosen:
        previous = prompt[-1] if prompt else None
        if previous is not None and _calls_tools(previous) and _calls_tools(row):
            # One unit (newest_units): the calls of one turn, in one message.
            previous.content += row.content
            previous.tool_calls = [*(previous.tool_calls or ()), *row.tool_calls]
            continue
        prompt.append(
            ContextMessage(
                role=row.role,
                content=row.content,
                name=row.name,
                tool_calls=row.tool_calls,
                tool_call_id=row.tool_call_id,
            )
        )
    return prompt


def _tokens_spent(rows: list[Any], tokens_left: int | None) -> bool:
    # Loading stops once the rows read so far already exceed the budget by a whole chunk's
    # worth of margin; a unit straddling the chunk edge is still seen whole.
    if tokens_left is None:
        return False
    return sum(map(estimated_tokens, rows[: -CHUNK // 2])) > tokens_left
