"""End-users: their traits (state shared by all of one end-user's sessions, ADK's `user:`
scope) and their erasure. Every function is scoped by `tenant_id`.

A user's traits live in `end_users`, one row per (tenant, user) once something was written;
a user without a row reads as empty traits at version 0. Changes follow the sessions' rules:
under the row's lock, `If-Match` against the version, and a change that changes nothing
writes nothing (no new version).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from chat_sessions.db import Prepared, Transaction
from chat_sessions.errors import Conflict
from chat_sessions.jsonvalues import patched_traits, replaced_traits
from chat_sessions.models import end_users, sessions, utcnow
from chat_sessions.preconditions import check_version
from chat_sessions.users.schemas import UserTraits
from chat_sessions.wire import build, columns

THE_TRAITS = "the user's traits"
_THIS_USER = (
    end_users.c.tenant_id == bindparam("tenant_id"),
    end_users.c.user_id == bindparam("user_id"),
)
_GET = Prepared(select(*columns(UserTraits, end_users)).where(*_THIS_USER))
_GET_LOCKED = Prepared(_GET.statement.with_for_update())
# The first write of a user's traits. Two first writes at once: one inserts, the other's
# insert does nothing and it goes round again, then finding (and locking) the row.
_INSERT_UNLESS_PRESENT = {
    name: dialect_insert(end_users)
    .on_conflict_do_nothing(index_elements=[end_users.c.tenant_id, end_users.c.user_id])
    .returning(*columns(UserTraits, end_users))
    for name, dialect_insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
_ROUNDS = 3


async def get_user_traits(tx: Transaction, *, tenant_id: str, user_id: str) -> UserTraits:
    rows = await tx.run(_GET, {"tenant_id": tenant_id, "user_id": user_id})
    return build(UserTraits, rows)[0] if rows else UserTraits(user_id, {}, 0, None)


async def change_user_traits(
    tx: Transaction,
    *,
    tenant_id: str,
    user_id: str,
    traits: dict[str, Any],
    merge: bool,
    expected_versions: frozenset[int] | None,
    max_json_bytes: int,
) -> UserTraits:
    """`traits` applied as a JSON Merge Patch (RFC 7396) with `merge`, else as the new traits
    wholesale, under the row's lock; the row is made by the first change.
    `If-Match: "0"` (`expected_versions` {0}) holds only while there is none."""
    change = patched_traits if merge else replaced_traits
    key = {"tenant_id": tenant_id, "user_id": user_id}
    for _ in range(_ROUNDS):
        rows = await tx.run(_GET_LOCKED, key)
        current = build(UserTraits, rows)[0] if rows else UserTraits(user_id, {}, 0, None)
        check_version(expected_versions, current.version, THE_TRAITS)
        new = change(current.traits, traits, "user traits", max_json_bytes)
        if new is None:
            return current
        now = utcnow()
        if rows:
            statement = (
                update(end_users)
                .where(end_users.c.tenant_id == tenant_id, end_users.c.user_id == user_id)
                .values(traits=new, updated_at=now, version=end_users.c.version + 1)
                .returning(*columns(UserTraits, end_users))
            )
            return build(UserTraits, await tx.execute(statement))[0]
        values = {**key, "traits": new, "created_at": now, "updated_at": now, "version": 1}
        inserted = build(UserTraits, await tx.execute(_INSERT_UNLESS_PRESENT[tx.dialect], values))
        if inserted:
            return inserted[0]
    raise Conflict("the user's traits kept changing meanwhile: retry")


async def erase_user(tx: Transaction, *, tenant_id: str, user_id: str) -> int:
    """Every session of the user and the user's traits, in one transaction; messages and tool
    calls go by the database's cascade. (Sessions first, then traits: the order in which an
    append with a user traits patch locks them.)"""
    erased = (
        await tx.execute(
            delete(sessions)
            .where(sessions.c.tenant_id == tenant_id, sessions.c.user_id == user_id)
            .returning(sessions.c.id)
        )
    ).all()
    await tx.execute(
        delete(end_users).where(end_users.c.tenant_id == tenant_id, end_users.c.user_id == user_id)
    )
    for (session_id,) in erased:
        tx.note_change(session_id)  # their event streams end
    return len(erased)
