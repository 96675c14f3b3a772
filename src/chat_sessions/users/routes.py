"""End-user routes: the traits shared by a user's sessions, and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter

from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.preconditions import IfMatch, if_match_versions, tagged
from chat_sessions.users import service
from chat_sessions.users.schemas import Erasure, UserTraits

UserIdPath = Annotated[
    str, PathParameter(min_length=1, max_length=256, description="The end-user's id")
]


def _one(traits: UserTraits) -> Response[UserTraits]:
    return tagged(traits, traits.version)


class UserTraitsController(Controller):
    """State shared by every session of one end-user (ADK's `user:` scope): a JSON object,
    versioned, read and changed as a session's traits are."""

    path = "/users/{user_id:str}/traits"
    tags = ["users"]

    @get(
        "/",
        summary="An end-user's traits (with ETag)",
        description='A user nothing was written for has `{}` at version 0 (ETag `"0"`).',
        responses=tenant_errors(404),  # an encoded slash in the user id
    )
    async def get_user_traits(
        self, caller: NamedDependency[Caller], user_id: UserIdPath
    ) -> Response[UserTraits]:
        return _one(
            await service.get_user_traits(caller.tx, tenant_id=caller.tenant_id, user_id=user_id)
        )

    @patch(
        "/",
        summary="Change an end-user's traits by a JSON Merge Patch",
        description="The body is an RFC 7396 merge patch of the traits: keys set to null are "
        "removed, objects merge recursively. A patch that changes nothing keeps the version. "
        '`If-Match: "0"` applies it only while the user has no traits written yet.',
        responses=tenant_errors(404, 409, 412, body=True),
    )
    async def patch_user_traits(
        self,
        caller: NamedDependency[Caller],
        user_id: UserIdPath,
        data: JSONBody[dict[str, Any]],
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
    ) -> Response[UserTraits]:
        return await _change(caller, user_id, data, if_match_versions(request, if_match), True)

    @put(
        "/",
        summary="Replace an end-user's traits wholesale",
        responses=tenant_errors(404, 409, 412, body=True),
    )
    async def replace_user_traits(
        self,
        caller: NamedDependency[Caller],
        user_id: UserIdPath,
        data: JSONBody[dict[str, Any]],
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
    ) -> Response[UserTraits]:
        return await _change(caller, user_id, data, if_match_versions(request, if_match), False)


async def _change(
    caller: Caller,
    user_id: str,
    traits: dict[str, Any],
    expected_versions: frozenset[int] | None,
    merge: bool,
) -> Response[UserTraits]:
    changed = await service.change_user_traits(
        caller.tx,
        tenant_id=caller.tenant_id,
        user_id=user_id,
        traits=traits,
        merge=merge,
        expected_versions=expected_versions,
        max_json_bytes=caller.settings.max_json_bytes,
    )
    return _one(changed)


@delete(
    "/users/{user_id:str}",
    status_code=200,
    tags=["users"],
    summary="Erase an end-user: every session of theirs in this tenant, and their traits",
    responses=tenant_errors(404),  # an encoded slash in the user id
)
async def erase_user_route(caller: NamedDependency[Caller], user_id: FromPath[str]) -> Erasure:
    return Erasure(
        deleted_sessions=await service.erase_user(
            caller.tx, tenant_id=caller.tenant_id, user_id=user_id
        )
    )
