"""End-user erasure route."""

from __future__ import annotations

from litestar import delete
from litestar.di import NamedDependency
from litestar.params import FromPath

from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.users.schemas import Erasure
from chat_sessions.users.service import erase_user


@delete(
    "/users/{user_id:str}",
    status_code=200,
    tags=["users"],
    summary="Erase an end-user: every session of theirs in this tenant",
    responses=tenant_errors(404),  # an encoded slash in the user id
)
async def erase_user_route(caller: NamedDependency[Caller], user_id: FromPath[str]) -> Erasure:
    return Erasure(
        deleted_sessions=await erase_user(caller.tx, tenant_id=caller.tenant_id, user_id=user_id)
    )
