"""Stats route."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.stats.schemas import Stats
from chat_sessions.stats.service import tenant_stats


@get(
    "/stats",
    tags=["stats"],
    summary="Sessions, messages, tokens and users of this tenant",
    responses=tenant_errors(),
)
async def get_stats(caller: NamedDependency[Caller]) -> Stats:
    return await tenant_stats(caller.tx, tenant_id=caller.tenant_id)
