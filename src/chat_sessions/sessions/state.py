"""State changes that ride on an append (ADK's `state_delta`): a merge patch of the session's
traits, one of its end-user's traits, and ones of other end-users' traits (ADK's `app:` state
lives on an end-user of its own), applied in the appending transaction, so "store this event
and this change of state" happens whole or not at all.

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
    end_user_traits_patches: dict[str, dict[str, Any]] | None = None,
    max_json_bytes: int,
) -> None:
    """Merge-patch the (already locked) session's traits and the end-users' traits. The
    session's version is not raised again: the append raised it once for the whole request."""
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
    patches: list[tuple[str, dict[str, Any]]] = []
    if user_traits_patch is not None:
        patches.append((row.user_id, user_traits_patch))
    patches.extend((end_user_traits_patches or {}).items())
    # One fixed order (by user_id; a stable sort keeps the session's own patch first when
    # both name its user): two appends lock the same users alike, so they never deadlock.
    patches.sort(key=lambda patch: patch[0])
    for user_id, patch in patches:
        await change_user_traits(
            tx,
            tenant_id=tenant_id,
            user_id=user_id,
            traits=patch,
            merge=True,
            expected_versions=None,
            max_json_bytes=max_json_bytes,
        )
