"""State changes that ride on an append (ADK's `state_delta`): a merge patch of the session's
traits and one of its end-user's traits, applied in the appending transaction, so "store this
event and this change of state" happens whole or not at all.

`append_messages` calls `apply_state_changes` after it has advanced the session row (which
holds the row's lock and counts the request's one new version) and before it stores the
messages; anything refused here (400, 413) rolls the whole request back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from chat_sessions.db import Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.jsonvalues import patched_traits
from chat_sessions.models import sessions
from chat_sessions.users.service import change_user_traits


async def apply_state_changes(
    tx: Transaction,
    *,
    tenant_id: str,
    session_id: str,
    traits_patch: dict[str, Any] | None,
    user_traits_patch: dict[str, Any] | None,
    max_json_bytes: int,
) -> None:
    """Merge-patch the (already locked) session's traits and its user's traits. The session's
    version is not raised again: the append raised it once for the whole request."""
    this_session = (sessions.c.id == session_id, sessions.c.tenant_id == tenant_id)
    row = (
        await tx.execute(select(sessions.c.traits, sessions.c.user_id).where(*this_session))
    ).one()
    if user_traits_patch is not None and row.user_id is None:
        raise BadRequest("user_traits_patch needs a session with a user_id; this one has none")
    if traits_patch is not None:
        traits = patched_traits(row.traits, traits_patch, "traits", max_json_bytes)
        if traits is not None:
            await tx.execute(update(sessions).where(*this_session).values(traits=traits))
    if user_traits_patch is not None:
        await change_user_traits(
            tx,
            tenant_id=tenant_id,
            user_id=row.user_id,
            traits=user_traits_patch,
            merge=True,
            expected_versions=None,
            max_json_bytes=max_json_bytes,
        )
