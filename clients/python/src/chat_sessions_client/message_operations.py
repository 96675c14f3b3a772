"""The message operations of the tenant API (the rest are in operations.py): appends, single
and batched, each under an `Idempotency-Key` (the caller's, or one made here) so it may be
sent again; the history; truncate and pop; a streamed answer's deltas and close; `/context`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chat_sessions_client.calls import Answer, Call, Resend, query, segment
from chat_sessions_client.models import Content, ContextMessage, DeltaAck, Message, NewMessage, Page
from chat_sessions_client.operations import UNSET, new_idempotency_key


def _message(answer: Answer) -> Message:
    message = Message.from_json(answer.body)
    message.replayed = answer.headers.get("Idempotent-Replayed") == "true"
    return message


def _message_page(answer: Answer) -> Page[Message]:
    return Page(
        [Message.from_json(item) for item in answer.body["data"]], answer.body["next_cursor"]
    )


def _messages(answer: Answer) -> list[Message]:
    replayed = answer.headers.get("Idempotent-Replayed") == "true"
    stored = [Message.from_json(item) for item in answer.body["data"]]
    for message in stored:
        message.replayed = replayed
    return stored


def _append_body(
    parent_seq: int | None,
    traits_patch: Mapping[str, Any] | None,
    user_traits_patch: Mapping[str, Any] | None,
    end_user_traits_patches: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if parent_seq is not None:
        body["parent_seq"] = parent_seq
    if traits_patch is not None:
        body["traits_patch"] = dict(traits_patch)
    if user_traits_patch is not None:
        body["user_traits_patch"] = dict(user_traits_patch)
    if end_user_traits_patches is not None:
        body["end_user_traits_patches"] = {
            user_id: dict(patch) for user_id, patch in end_user_traits_patches.items()
        }
    return body


def append_message(
    session_id: str,
    role: str,
    content: Content = "",
    *,
    name: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    token_count: int | None = None,
    item: Mapping[str, Any] | None = None,
    status: str | None = None,
    parent_seq: int | None = None,
    traits_patch: Mapping[str, Any] | None = None,
    user_traits_patch: Mapping[str, Any] | None = None,
    end_user_traits_patches: Mapping[str, Mapping[str, Any]] | None = None,
    expected_last_seq: int | None = None,
    idempotency_key: str | None = None,
) -> Call[Message]:
    """Append one message (a string or content parts; `item` a provider-native object kept
    verbatim). It follows the session's head, or `parent_seq` (0: a new first message): a new
    branch there (an edited question, a regenerated answer); either way it becomes the head.
    `traits_patch`/`user_traits_patch` change the session's and its user's traits in the same
    transaction, and `end_user_traits_patches` ({user_id: patch}, up to 10) other users'.
    `expected_last_seq` refuses (412) if another writer appended first (it is the session's
    highest seq, on any branch). Retried safely: the Idempotency-Key makes a
    second delivery answer the first."""
    message = NewMessage(
        role,
        content,
        name=name,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        metadata=dict(metadata) if metadata is not None else None,
        token_count=token_count,
        item=dict(item) if item is not None else None,
        status=status,
    )
    body = {
        **message.to_json(),
        **_append_body(parent_seq, traits_patch, user_traits_patch, end_user_traits_patches),
    }
    return Call(
        "POST",
        f"/v1/sessions/{segment(session_id)}/messages",
        _message,
        params=query(expected_last_seq=expected_last_seq),
        json=body,
        headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
    )


def append_messages(
    session_id: str,
    messages: Sequence[NewMessage | Mapping[str, Any]],
    *,
    parent_seq: int | None = None,
    traits_patch: Mapping[str, Any] | None = None,
    user_traits_patch: Mapping[str, Any] | None = None,
    end_user_traits_patches: Mapping[str, Mapping[str, Any]] | None = None,
    expected_last_seq: int | None = None,
    idempotency_key: str | None = None,
) -> Call[list[Message]]:
    """Append up to 500 messages at once, all or nothing, with consecutive seqs; the first
    follows the head (or `parent_seq`), each next one the one before."""
    body = _append_body(parent_seq, traits_patch, user_traits_patch, end_user_traits_patches)
    body["messages"] = [m.to_json() if isinstance(m, NewMessage) else dict(m) for m in messages]
    return Call(
        "POST",
        f"/v1/sessions/{segment(session_id)}/messages/batch",
        _messages,
        params=query(expected_last_seq=expected_last_seq),
        json=body,
        headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
    )


def list_messages(
    session_id: str,
    *,
    order: str | None = None,
    after_seq: int | None = None,
    before_seq: int | None = None,
    role: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    branch: str | None = None,
    leaf_seq: int | None = None,
    parent_seq: int | None = None,
) -> Call[Page[Message]]:
    """One page of the history (`order="desc", limit=50`: the last 50, newest first). By
    default the active branch (root to the session's head); `branch="all"`: every message in
    seq order; `leaf_seq=N`: the branch that ends at N; `parent_seq=N`: the children of N,
    the alternatives at that point."""
    params = query(
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
    return Call("GET", f"/v1/sessions/{segment(session_id)}/messages", _message_page, params=params)


def get_message(session_id: str, message_id: str) -> Call[Message]:
    path = f"/v1/sessions/{segment(session_id)}/messages/{segment(message_id)}"
    return Call("GET", path, _message)


def truncate_messages(
    session_id: str, after_seq: int, *, expected_last_seq: int | None = None
) -> Call[int]:
    """Delete every message after `after_seq` (0: all); how many went."""
    return Call(
        "DELETE",
        f"/v1/sessions/{segment(session_id)}/messages",
        lambda answer: int(answer.body["deleted"]),
        params=query(after_seq=after_seq, expected_last_seq=expected_last_seq),
        resend=Resend.IF_NOT_RECEIVED,
    )


def pop_message(session_id: str, *, expected_last_seq: int | None = None) -> Call[Message]:
    """Remove the message with the highest seq and answer it (atomic: two pops never answer
    the same message). NotFoundError when the session has none."""
    return Call(
        "DELETE",
        f"/v1/sessions/{segment(session_id)}/messages/last",
        _message,
        params=query(expected_last_seq=expected_last_seq),
        resend=Resend.IF_NOT_RECEIVED,
    )


def append_delta(session_id: str, message_id: str, content: str) -> Call[DeltaAck]:
    """Add text to an `in_progress` message (sent once: a delta has no idempotency key)."""
    path = f"/v1/sessions/{segment(session_id)}/messages/{segment(message_id)}/deltas"
    return Call(
        "POST",
        path,
        lambda answer: DeltaAck.from_json(answer.body),
        json={"content": content},
        resend=Resend.IF_NOT_RECEIVED,
    )


def close_message(
    session_id: str,
    message_id: str,
    status: str = "completed",
    *,
    content: Content = UNSET,
    token_count: int | None = UNSET,
    metadata: Mapping[str, Any] | None = UNSET,
    item: Mapping[str, Any] | None = UNSET,
) -> Call[Message]:
    """Close an `in_progress` message `completed` or `interrupted`."""
    fields = {"content": content, "token_count": token_count, "metadata": metadata, "item": item}
    body = {"status": status, **{k: v for k, v in fields.items() if v is not UNSET}}
    path = f"/v1/sessions/{segment(session_id)}/messages/{segment(message_id)}"
    return Call("PATCH", path, _message, json=body, resend=Resend.IF_NOT_RECEIVED)


def get_context(
    session_id: str, *, max_messages: int | None = None, max_tokens: int | None = None
) -> Call[list[ContextMessage]]:
    """The history as a ready LLM prompt, trimmed to the budget."""
    return Call(
        "GET",
        f"/v1/sessions/{segment(session_id)}/context",
        lambda answer: [ContextMessage.from_json(m) for m in answer.body["messages"]],
        params=query(max_messages=max_messages, max_tokens=max_tokens),
    )
