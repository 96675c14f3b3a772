"""Stats route."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from chat_sessions.db import Transaction
from chat_sessions.stats.service import Stats, tenant_stats


@get("/stats", tags=["stats"], summary="Sessions, messages, tokens and users of this tenant")
async def get_stats(tx: NamedDependency[Transaction], tenant_id: NamedDependency[str]) -> Stats:
    return await tenant_stats(tx, tenant_id=tenant_id)
