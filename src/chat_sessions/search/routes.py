"""Search route."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from chat_sessions.bounds import PageLimit
from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.messages.schemas import Role
from chat_sessions.search.schemas import SearchResults
from chat_sessions.search.service import search_messages


@get(
    "/search",
    tags=["search"],
    summary="Full-text search over this tenant's messages",
    responses=tenant_errors(),
)
async def search(
    caller: NamedDependency[Caller],
    state: State,
    q: Annotated[str, QueryParameter(max_length=1000, description="plain text; every word")],
    session_id: FromQuery[str | None] = None,
    user_id: FromQuery[str | None] = None,
    role: FromQuery[Role | None] = None,
    limit: PageLimit = 20,
) -> SearchResults:
    hits = await search_messages(
        state.search,
        caller.tx,
        tenant_id=caller.tenant_id,
        query=q,
        session_id=session_id,
        user_id=user_id,
        role=role,
        limit=limit,
    )
    return SearchResults(data=hits)
