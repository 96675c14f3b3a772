"""Tenant statistics.

Read from the per-session counters (`message_count`, `token_total`) that appends and
truncations keep, in one statement over the tenant's sessions index: the cost grows with the
number of sessions, never with the number of messages.
"""

from __future__ import annotations

from sqlalchemy import func, select

from chat_sessions.db import Transaction
from chat_sessions.models import sessions
from chat_sessions.stats.schemas import Stats


async def tenant_stats(tx: Transaction, *, tenant_id: str) -> Stats:
    row = (
        await tx.execute(
            select(
                func.count().label("sessions"),
                func.coalesce(func.sum(sessions.c.message_count), 0).label("messages"),
                func.coalesce(func.sum(sessions.c.token_total), 0).label("tokens"),
                func.count(sessions.c.user_id.distinct()).label("users"),
            ).where(sessions.c.tenant_id == tenant_id)
        )
    ).one()
    return Stats(
        sessions=int(row.sessions),
        messages=int(row.messages),
        tokens=int(row.tokens),
        users=int(row.users),
    )
