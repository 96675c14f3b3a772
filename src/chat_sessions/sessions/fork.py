"""Fork: a new session whose history is a copy of one branch of another, renumbered 1..k
(each message following the one before), with the tool calls of those messages, in one
transaction. The source is untouched.

The messages are copied by the database, one INSERT ... SELECT over the seqs to copy and
their new ids: their values never travel to the service and back (on PostgreSQL a fork of
1,000 had spent ~32 ms of the service's CPU reading and writing them, beside the server's
~68 ms)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.exc import IntegrityError

from chat_sessions.db import Prepared, Transaction
from chat_sessions.jsonvalues import check_json
from chat_sessions.messages.branches import has_message, no_such_seq, path_seqs
from chat_sessions.models import messages, new_id, sessions, tool_calls, utcnow
from chat_sessions.sessions.schemas import SessionFork, SessionRead
from chat_sessions.sessions.service import _locked_session, external_id_taken, get_session

_SESSION: Any = bindparam("session_id")
_TOOL_CALLS = Prepared(
    select(tool_calls).where(
        tool_calls.c.session_id == _SESSION, tool_calls.c.message_id.isnot(None)
    )
)
_TOOL_CALL_KEYS = [column.key for column in tool_calls.c]
_INSERT_TOOL_CALLS = Prepared(tool_calls.insert())
# What the copy needs to know of each message: which to copy, in what order, and what the
# new session row sums up.
_LISTED = Prepared(
    select(messages.c.seq, messages.c.id, messages.c.token_count, messages.c.created_at).where(
        messages.c.session_id == _SESSION, messages.c.seq <= bindparam("top")
    )
)
_LISTED_KEYS = ["seq", "id", "token_count", "created_at"]
# `copies`, a JSON array of [old seq, new id] in order, as rows (old_seq, id, seq 1..k).
_COPIES = {
    "postgresql": "(SELECT (value->>0)::bigint AS old_seq, value->>1 AS id, ordinality AS seq"
    " FROM json_array_elements(CAST(:copies AS json)) WITH ORDINALITY)",
    "sqlite": "(SELECT json_extract(value, '$[0]') AS old_seq, json_extract(value, '$[1]') AS id,"
    " key + 1 AS seq FROM json_each(:copies))",
}


def _copy(dialect: str) -> Any:
    """INSERT ... SELECT of the listed messages: every column as it is, but those the copy
    renumbers, and the request's idempotency key and digest, which stay with the original."""
    computed = {
        "id": "copy.id",
        "session_id": ":fork_id",
        "seq": "copy.seq",
        "parent_seq": "copy.seq - 1",
        # Nothing streams into the copy: the generator's deltas go to the original.
        "status": "CASE WHEN m.status = 'in_progress' THEN 'interrupted' ELSE m.status END",
        "idempotency_key": "NULL",
        "request_hash": "NULL",
    }
    names = [column.name for column in messages.c]
    values = [computed.get(column.key, f"m.{column.name}") for column in messages.c]
    return text(
        f"INSERT INTO messages ({', '.join(names)}) SELECT {', '.join(values)}"
        # CROSS JOIN: SQLite then walks the list and looks each message up by its key (its
        # planner would otherwise scan the session's messages for each entry of the list).
        f" FROM {_COPIES[dialect]} AS copy CROSS JOIN messages AS m"
        " WHERE m.session_id = :source AND m.seq = copy.old_seq"
    )


_COPY = {dialect: _copy(dialect) for dialect in _COPIES}


async def fork_session(
    tx: Transaction, *, tenant_id: str, session_id: str, data: SessionFork, max_json_bytes: int
) -> SessionRead:
    # The source's row is locked so its branch cannot change while it is copied.
    source = await _locked_session(tx, tenant_id=tenant_id, session_id=session_id)
    at_seq = source.head_seq if data.at_seq is None else data.at_seq
    if not await has_message(tx, session_id, at_seq):
        raise no_such_seq("at_seq", at_seq)
    first_branch_seq = (
        await tx.execute(select(sessions.c.first_branch_seq).where(sessions.c.id == session_id))
    ).scalar_one()
    path = await path_seqs(
        tx, session_id=session_id, leaf=at_seq, first_branch_seq=first_branch_seq
    )
    on_branch = None if path is None else set(path)
    rows = sorted(
        (
            dict(zip(_LISTED_KEYS, row, strict=True))
            for row in await tx.run(_LISTED, {"session_id": session_id, "top": at_seq})
        ),
        key=lambda row: row["seq"],
    )
    copied = [row for row in rows if on_branch is None or row["seq"] in on_branch]

    fork_id = new_id()
    traits = source.traits if data.traits is UNSET else data.traits
    check_json(traits, "traits", max_json_bytes)
    now = utcnow()
    try:
        await tx.execute(
            insert(sessions).values(
                id=fork_id,
                tenant_id=tenant_id,
                user_id=source.user_id if data.user_id is UNSET else data.user_id,
                external_id=data.external_id,
                title=source.title if data.title is UNSET else data.title,
                traits=traits,
                message_count=len(copied),
                last_seq=len(copied),
                head_seq=len(copied),
                token_total=sum(row["token_count"] or 0 for row in copied),
                last_message_at=copied[-1]["created_at"] if copied else None,
                created_at=now,
                updated_at=now,
            )
        )
    except IntegrityError:
        # The tenant's unique external_ids; the transaction is rolled back with the error.
        raise external_id_taken() from None
    new_ids = {row["id"]: new_id() for row in copied}
    if copied:
        copies = [[row["seq"], new_ids[row["id"]]] for row in copied]
        await tx.execute(
            _COPY[tx.dialect],
            {
                "source": session_id,
                "fork_id": fork_id,
                "copies": msgspec.json.encode(copies).decode(),
            },
        )
    calls = [
        dict(zip(_TOOL_CALL_KEYS, row, strict=True))
        for row in await tx.run(_TOOL_CALLS, {"session_id": session_id})
    ]
    calls_copied: list[dict[str, Any]] = [
        {**call, "id": new_id(), "session_id": fork_id, "message_id": new_ids[call["message_id"]]}
        for call in calls
        if call["message_id"] in new_ids
    ]
    if calls_copied:
        await tx.run(_INSERT_TOOL_CALLS, calls_copied)
    return await get_session(tx, tenant_id=tenant_id, session_id=fork_id)
