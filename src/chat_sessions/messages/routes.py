"""Message routes: append (one or a batch), history, one message, truncate, pop, LLM context,
and a streaming message's deltas and close."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from msgspec import UNSET

from chat_sessions import preconditions
from chat_sessions.bounds import MAX_COUNT, MAX_HISTORY_PAGE, MAX_SEQ
from chat_sessions.caller import Caller
from chat_sessions.errors import tenant_errors
from chat_sessions.messages import history, removal, service, streaming
from chat_sessions.messages.context import build_context
from chat_sessions.messages.schemas import (
    Context,
    DeltaAck,
    MessageAppend,
    MessageBatch,
    MessageClose,
    MessageCreate,
    MessageDelta,
    MessageList,
    MessagePage,
    MessageRead,
    Role,
    Truncation,
)
from chat_sessions.pagination import Cursor

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        description="Retry-safe appends: the same key and body answer the original again",
    ),
]


def seq_parameter(description: str | None = None) -> Any:
    """A seq in the query string, 0..MAX_SEQ. Litestar leaves a bound of 0 out of an optional
    parameter's schema (0 is falsy where it looks; openapi.py repairs body fields alike), and
    schemathesis then sends -1 as valid: `schema_extra` writes the bound in."""
    return QueryParameter(ge=0, le=MAX_SEQ, description=description, schema_extra={"minimum": 0})


ExpectedLastSeq = Annotated[
    int | None,
    seq_parameter("Act only if the session's highest seq is still this (0: no messages)"),
]
Seq = Annotated[int | None, seq_parameter()]


_STATE_CHANGES = (
    "`traits_patch` and `user_traits_patch` (optional JSON Merge Patches of the session's "
    "traits and of its user's traits) are applied in the same transaction as the append: all "
    "of it happens, or nothing (`400`, `412`, `413` or a failure). The session gets one new "
    "version for the request. An idempotent replay applies nothing again; the patches are part "
    "of the request, so the same key with other patches is a `409`. `user_traits_patch` on a "
    "session without `user_id` is a `400`. `end_user_traits_patches` ({user_id: merge patch}, "
    "at most 10 users, any of the tenant's) patches other end-users' traits in the same "
    "transaction (ADK's `app:` state); a user named there and by `user_traits_patch` gets "
    "both, the session's first."
)


def _given(patch: Any) -> Any:
    return None if patch is UNSET else patch


class MessageController(Controller):
    path = "/sessions/{session_id:str}"
    tags = ["messages"]

    async def _append(
        self,
        caller: Caller,
        session_id: str,
        new: list[MessageCreate],
        idempotency_key: str | None,
        expected_last_seq: int | None,
        changes: MessageAppend | MessageBatch,
    ) -> tuple[list[MessageRead], dict[str, str]]:
        stored, replayed = await service.append_messages(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            new=new,
            idempotency_key=preconditions.idempotency_key(idempotency_key),
            expected_last_seq=expected_last_seq,
            traits_patch=_given(changes.traits_patch),
            user_traits_patch=_given(changes.user_traits_patch),
            end_user_traits_patches=_given(changes.end_user_traits_patches),
            parent_seq=_given(changes.parent_seq),
            max_message_bytes=caller.settings.max_message_bytes,
            max_json_bytes=caller.settings.max_json_bytes,
        )
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return stored, headers

    @post(
        "/messages",
        status_code=201,
        summary="Append a message",
        description=_STATE_CHANGES,
        responses=tenant_errors(404, 409, 412, body=True),
    )
    async def append_message(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        data: JSONBody[MessageAppend],
        idempotency_key: IdempotencyKey = None,
        expected_last_seq: ExpectedLastSeq = None,
    ) -> Response[MessageRead]:
        stored, headers = await self._append(
            caller, session_id, [data], idempotency_key, expected_last_seq, data
        )
        return Response(stored[0], status_code=201, headers=headers)

    @post(
        "/messages/batch",
        status_code=201,
        summary="Append up to 500 messages, all or none",
        description=_STATE_CHANGES,
        responses=tenant_errors(404, 409, 412, body=True),
    )
    async def append_batch(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        data: JSONBody[MessageBatch],
        idempotency_key: IdempotencyKey = None,
        expected_last_seq: ExpectedLastSeq = None,
    ) -> Response[MessageList]:
        stored, headers = await self._append(
            caller, session_id, data.messages, idempotency_key, expected_last_seq, data
        )
        return Response(MessageList(data=stored), status_code=201, headers=headers)

    @get(
        "/messages",
        summary="History; the last 50 are order=desc&limit=50",
        responses=tenant_errors(404),
    )
    async def list_messages(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        order: FromQuery[Literal["asc", "desc"]] = "asc",
        after_seq: Seq = None,
        before_seq: Seq = None,
        role: FromQuery[Role | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_HISTORY_PAGE)] = 100,
        cursor: Cursor = None,
        branch: Annotated[
            Literal["active", "all"] | None,
            QueryParameter(
                description="`active` (the default): the messages from the root to the head; "
                "`all`: every message, of every branch"
            ),
        ] = None,
        leaf_seq: Annotated[
            int | None, seq_parameter("Read the branch that ends at this seq (not with branch=all)")
        ] = None,
        parent_seq: Annotated[
            int | None,
            seq_parameter("List the children of this seq: the alternatives at that point"),
        ] = None,
    ) -> MessagePage:
        found, next_cursor = await history.list_messages(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            order=order,
            after_seq=after_seq,
            before_seq=before_seq,
            role=role,
            limit=limit,
            cursor=cursor,
            branch=branch,
            leaf_seq=leaf_seq,
            parent_seq=parent_seq,
        )
        return MessagePage(data=found, next_cursor=next_cursor)

    @get("/messages/{message_id:str}", summary="One message", responses=tenant_errors(404))
    async def get_message(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        message_id: FromPath[str],
    ) -> MessageRead:
        return await service.get_message(
            caller.tx, tenant_id=caller.tenant_id, session_id=session_id, message_id=message_id
        )

    @post(
        "/messages/{message_id:str}/deltas",
        status_code=200,
        summary="Add text to an in_progress message",
        description='Appends `content` to the message\'s text (`""` only keeps it alive: '
        "STREAM_IDLE_SECONDS counts from the last delta); answers its `length` in characters "
        "so far. `409` once the message is no longer `in_progress`; `413` when the content "
        "would pass MAX_MESSAGE_BYTES (nothing added). A delta does not change the session's "
        "`version`.",
        responses=tenant_errors(404, 409, body=True),
    )
    async def append_delta(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        message_id: FromPath[str],
        data: JSONBody[MessageDelta],
    ) -> DeltaAck:
        return await streaming.append_delta(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            message_id=message_id,
            delta=data.content,
            max_message_bytes=caller.settings.max_message_bytes,
        )

    @patch(
        "/messages/{message_id:str}",
        summary="Close an in_progress message",
        description="`status` `completed` or `interrupted`; a given `content` (a string or "
        "parts) replaces the streamed text, and `token_count`, `metadata`, `item` replace "
        "theirs. `409` unless the message is `in_progress`.",
        responses=tenant_errors(404, 409, body=True),
    )
    async def close_message(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        message_id: FromPath[str],
        data: JSONBody[MessageClose],
    ) -> MessageRead:
        return await streaming.close_message(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            message_id=message_id,
            change=data,
            max_message_bytes=caller.settings.max_message_bytes,
            max_json_bytes=caller.settings.max_json_bytes,
        )

    @delete(
        "/messages",
        status_code=200,
        summary="Truncate: delete every message after a seq",
        responses=tenant_errors(404, 412),
    )
    async def truncate_messages(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        after_seq: Annotated[int, seq_parameter("0 clears the history")],
        expected_last_seq: ExpectedLastSeq = None,
    ) -> Truncation:
        deleted = await removal.truncate_after(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            after_seq=after_seq,
            expected_last_seq=expected_last_seq,
        )
        return Truncation(deleted=deleted)

    @delete(
        "/messages/last",
        status_code=200,
        summary="Pop: remove the message with the highest seq and answer it",
        responses=tenant_errors(404, 412),
    )
    async def pop_last_message(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        expected_last_seq: ExpectedLastSeq = None,
    ) -> MessageRead:
        return await removal.pop_last_message(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            expected_last_seq=expected_last_seq,
        )

    @get("/context", summary="The history as a ready LLM prompt", responses=tenant_errors(404))
    async def get_context(
        self,
        caller: NamedDependency[Caller],
        session_id: FromPath[str],
        max_messages: Annotated[int | None, QueryParameter(ge=1, le=MAX_COUNT)] = None,
        max_tokens: Annotated[int | None, QueryParameter(ge=1, le=MAX_COUNT)] = None,
    ) -> Context:
        chosen = await build_context(
            caller.tx,
            tenant_id=caller.tenant_id,
            session_id=session_id,
            max_messages=max_messages,
            max_tokens=max_tokens,
        )
        return Context(messages=chosen)
