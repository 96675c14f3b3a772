"""End-user erasure: every session of one end-user of this tenant, and all under them."""

from __future__ import annotations

from sqlalchemy import delete

from chat_sessions.db import Transaction
from chat_sessions.models import sessions


async def erase_user(tx: Transaction, *, tenant_id: str, user_id: str) -> int:
    """One transaction; messages and tool calls go by the database's cascade."""
    result = await tx.execute(
        delete(sessions).where(sessions.c.tenant_id == tenant_id, sessions.c.user_id == user_id)
    )
    return int(result.rowcount)
