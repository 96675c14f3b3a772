"""The tenant API, one function per operation, each building the `Call` that does it: here
sessions, tool calls, search, export and import, stats and end-users; the messages in
message_operations.py. Both clients expose these as their methods (`client.py`), so an
operation is written once: its path, body, parser and whether it may be sent twice."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from chat_sessions_client.calls import Answer, Call, Resend, query, segment
from chat_sessions_client.models import (
    Page,
    SearchHit,
    Session,
    SessionExport,
    SessionSnapshot,
    Stats,
    ToolCall,
    UserTraits,
)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "leave as it is", where None means "clear it"


def new_idempotency_key() -> str:
    return f"csc-{uuid.uuid4()}"


def _if_match(version: int | None) -> dict[str, str]:
    return {} if version is None else {"If-Match": f'"{version}"'}


def _session(answer: Answer) -> Session:
    session = Session.from_json(answer.body)
    session.created = answer.status == 201
    return session


def _session_page(answer: Answer) -> Page[Session]:
    return Page(
        [Session.from_json(item) for item in answer.body["data"]], answer.body["next_cursor"]
    )


def _nothing(answer: Answer) -> None:
    return None


# Sessions


def create_session(
    *,
    external_id: str | None = None,
    user_id: str | None = None,
    title: str | None = None,
    traits: Mapping[str, Any] | None = None,
    status: str | None = None,
) -> Call[Session]:
    """Create a session. With an `external_id` the tenant already uses, that session as it is
    (get-or-create, race-free): `session.created` tells which happened."""
    body = query(external_id=external_id, user_id=user_id, title=title, status=status)
    if traits is not None:
        body["traits"] = dict(traits)
    # A get-or-create may be sent twice; a plain create would make two sessions.
    resend = Resend.ALWAYS if external_id is not None else Resend.IF_NOT_RECEIVED
    return Call("POST", "/v1/sessions", _session, json=body, resend=resend)


def get_session(session_id: str) -> Call[Session]:
    return Call("GET", f"/v1/sessions/{segment(session_id)}", _session)


def get_snapshot(
    session_id: str, *, messages: int | None = None, user_traits: Sequence[str] = ()
) -> Call[SessionSnapshot]:
    """In one request: the session, its `messages` newest messages of the active branch (100
    by default, newest first) and the traits of each end-user named in `user_traits` (up to
    10). What an agent framework loads to resume a session."""
    params = query(messages=messages)
    if user_traits:
        params["user_traits"] = list(user_traits)
    path = f"/v1/sessions/{segment(session_id)}/snapshot"
    return Call("GET", path, lambda answer: SessionSnapshot.from_json(answer.body), params=params)


def find_session(external_id: str) -> Call[Session | None]:
    """The session with this `external_id`, or None (one indexed look-up)."""

    def first(answer: Answer) -> Session | None:
        data = answer.body["data"]
        return Session.from_json(data[0]) if data else None

    return Call("GET", "/v1/sessions", first, params={"external_id": external_id})


def list_sessions(
    *,
    user_id: str | None = None,
    status: str | None = None,
    external_id_prefix: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Session]]:
    """One page: newest activity first, or in `external_id` order with `external_id_prefix`."""
    params = query(
        user_id=user_id,
        status=status,
        external_id_prefix=external_id_prefix,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "/v1/sessions", _session_page, params=params)


def update_session(
    session_id: str,
    *,
    title: str | None = UNSET,
    user_id: str | None = UNSET,
    external_id: str | None = UNSET,
    status: str = UNSET,
    result: str | None = UNSET,
    error: str | None = UNSET,
    traits: Mapping[str, Any] = UNSET,
    head_seq: int = UNSET,
    if_match: int | None = None,
) -> Call[Session]:
    """Change what is named (None clears it); `traits` is a JSON Merge Patch (a key set to
    None is removed). `head_seq=N` switches branch: the head moves to the most recently
    appended message among N and its descendants. `if_match=version` refuses (412) if the
    session changed since."""
    fields = {
        "title": title,
        "user_id": user_id,
        "external_id": external_id,
        "status": status,
        "result": result,
        "error": error,
        "traits": traits,
        "head_seq": head_seq,
    }
    body = {name: value for name, value in fields.items() if value is not UNSET}
    resend = Resend.ALWAYS if if_match is None else Resend.IF_NOT_RECEIVED
    path = f"/v1/sessions/{segment(session_id)}"
    return Call("PATCH", path, _session, json=body, headers=_if_match(if_match), resend=resend)


def fork(
    session_id: str,
    *,
    at_seq: int | None = None,
    title: str | None = UNSET,
    traits: Mapping[str, Any] = UNSET,
    user_id: str | None = UNSET,
    external_id: str | None = None,
) -> Call[Session]:
    """A new session whose history is a copy of the branch from the root to `at_seq`
    (default: the head), renumbered 1..k; title, traits and user_id are copied unless given
    (None clears them). The source is untouched."""
    fields = {"title": title, "traits": traits, "user_id": user_id}
    body = {name: value for name, value in fields.items() if value is not UNSET}
    body.update(query(at_seq=at_seq, external_id=external_id))
    path = f"/v1/sessions/{segment(session_id)}/fork"
    # Sent twice it would make two copies.
    return Call("POST", path, _session, json=body, resend=Resend.IF_NOT_RECEIVED)


def replace_traits(
    session_id: str, traits: Mapping[str, Any], *, if_match: int | None = None
) -> Call[Session]:
    resend = Resend.ALWAYS if if_match is None else Resend.IF_NOT_RECEIVED
    path = f"/v1/sessions/{segment(session_id)}/traits"
    return Call(
        "PUT", path, _session, json=dict(traits), headers=_if_match(if_match), resend=resend
    )


def delete_session(session_id: str, *, if_match: int | None = None) -> Call[None]:
    path = f"/v1/sessions/{segment(session_id)}"
    # Sent twice, the second answers 404: only resend what surely did not arrive.
    return Call(
        "DELETE", path, _nothing, headers=_if_match(if_match), resend=Resend.IF_NOT_RECEIVED
    )


# Tool calls


def _tool_call(answer: Answer) -> ToolCall:
    return ToolCall.from_json(answer.body)


def create_tool_call(
    session_id: str,
    tool_call_id: str,
    tool_name: str,
    *,
    arguments: Any = None,
    message_id: str | None = None,
) -> Call[ToolCall]:
    body = query(tool_call_id=tool_call_id, tool_name=tool_name, message_id=message_id)
    if arguments is not None:
        body["arguments"] = arguments
    path = f"/v1/sessions/{segment(session_id)}/tool-calls"
    return Call("POST", path, _tool_call, json=body, resend=Resend.IF_NOT_RECEIVED)


def update_tool_call(
    session_id: str,
    tool_call_pk: str,
    status: str,
    *,
    result: Any = UNSET,
    error: str | None = UNSET,
    duration_ms: int | None = UNSET,
) -> Call[ToolCall]:
    fields = {"result": result, "error": error, "duration_ms": duration_ms}
    body = {"status": status, **{k: v for k, v in fields.items() if v is not UNSET}}
    path = f"/v1/sessions/{segment(session_id)}/tool-calls/{segment(tool_call_pk)}"
    return Call("PATCH", path, _tool_call, json=body, resend=Resend.IF_NOT_RECEIVED)


def list_tool_calls(
    session_id: str,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[ToolCall]]:
    return Call(
        "GET",
        f"/v1/sessions/{segment(session_id)}/tool-calls",
        lambda answer: Page(
            [ToolCall.from_json(item) for item in answer.body["data"]], answer.body["next_cursor"]
        ),
        params=query(status=status, limit=limit, cursor=cursor),
    )


# Search, export and import, stats, end-users


def search(
    q: str,
    *,
    session_id: str | None = None,
    user_id: str | None = None,
    role: str | None = None,
    limit: int | None = None,
) -> Call[list[SearchHit]]:
    """Full-text search over the tenant's messages, best match first."""
    return Call(
        "GET",
        "/v1/search",
        lambda answer: [SearchHit.from_json(hit) for hit in answer.body["data"]],
        params=query(q=q, session_id=session_id, user_id=user_id, role=role, limit=limit),
    )


def export_session(session_id: str) -> Call[SessionExport]:
    path = f"/v1/sessions/{segment(session_id)}/export"
    return Call("GET", path, lambda answer: SessionExport.from_json(answer.body))


def import_session(document: SessionExport | Mapping[str, Any]) -> Call[Session]:
    """A new session from an export document (of this tenant or another)."""
    body = document.document if isinstance(document, SessionExport) else dict(document)
    return Call("POST", "/v1/sessions/import", _session, json=body, resend=Resend.IF_NOT_RECEIVED)


def get_stats() -> Call[Stats]:
    return Call("GET", "/v1/stats", lambda answer: Stats.from_json(answer.body))


def _user_traits(answer: Answer) -> UserTraits:
    return UserTraits.from_json(answer.body)


def get_user_traits(user_id: str) -> Call[UserTraits]:
    """An end-user's traits, shared by all their sessions ({} at version 0 if never set)."""
    return Call("GET", f"/v1/users/{segment(user_id)}/traits", _user_traits)


def patch_user_traits(
    user_id: str, patch: Mapping[str, Any], *, if_match: int | None = None
) -> Call[UserTraits]:
    """JSON Merge Patch of the end-user's traits (a key set to None is removed)."""
    resend = Resend.ALWAYS if if_match is None else Resend.IF_NOT_RECEIVED
    path = f"/v1/users/{segment(user_id)}/traits"
    return Call(
        "PATCH", path, _user_traits, json=dict(patch), headers=_if_match(if_match), resend=resend
    )


def replace_user_traits(
    user_id: str, traits: Mapping[str, Any], *, if_match: int | None = None
) -> Call[UserTraits]:
    resend = Resend.ALWAYS if if_match is None else Resend.IF_NOT_RECEIVED
    path = f"/v1/users/{segment(user_id)}/traits"
    return Call(
        "PUT", path, _user_traits, json=dict(traits), headers=_if_match(if_match), resend=resend
    )


def erase_user(user_id: str) -> Call[int]:
    """Erase every session of this end-user, and their traits; how many sessions went. Sent
    twice, the second erases nothing more."""
    return Call(
        "DELETE",
        f"/v1/users/{segment(user_id)}",
        lambda answer: int(answer.body["deleted_sessions"]),
    )
