"""OpenAI's Conversations over sessions and messages: a translation, no storage of its own.

A conversation is a session (same id); its items are the session's messages in seq order. The
rows are written and read by the sessions and messages services; this module only maps
between OpenAI's shapes and theirs:

- An item is stored verbatim in its message's `item`, with `role` and `content` derived so that
  search, stats, export and `/context` read it like any message: a `message` item gives its
  role and content; a `function_call` an assistant message whose `tool_calls` holds the call
  (chat-completions shape: `id` = `call_id`, the function's name and arguments); a
  `function_call_output` a tool message answering `call_id` with the output; any other type an
  assistant message with empty content.
- An item comes back as it was sent, with `id` set to its message's id (a UUIDv7), `"type":
  "message"` added to a message sent in the short form `{role, content}`, a message item's
  `status` `"completed"` unless it was sent with one (OpenAI's SDKs read `status` as a
  required field of a message item, and a stored message is complete), and a message's
  string content as one text part (`input_text`, `output_text` for the assistant), as
  OpenAI's service answers it and its SDKs' types read it. The message keeps what was sent.
  Items have no `created_at` (OpenAI's have none); the message's is on
  /v1/sessions/{id}/messages.
- A message appended through /v1/sessions without an `item`, or with one that is no OpenAI
  item (neither a `type` nor a `role`: an ADK event, say), is a `message` item of its role and
  content.
- `metadata` is the session's traits: written as given (OpenAI's limits are checked on the
  wire, schemas.py), read as strings (a value that is not one, set through /v1/sessions, as
  its JSON text).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from chat_sessions.conversations.errors import BadParameter
from chat_sessions.conversations.schemas import (
    Conversation,
    ConversationCreate,
    ConversationDeleted,
    Item,
    ItemList,
)
from chat_sessions.db import Transaction
from chat_sessions.errors import BadRequest, NotFound, PayloadTooLarge
from chat_sessions.messages import history, removal
from chat_sessions.messages import service as messages
from chat_sessions.messages.schemas import MessageCreate, MessageRead
from chat_sessions.sessions import service as sessions
from chat_sessions.sessions.schemas import SessionCreate, SessionRead

# The roles OpenAI's Responses API takes in a message item.
MESSAGE_ROLES = frozenset({"user", "assistant", "system", "developer"})


@contextmanager
def _not_found_as(what: str) -> Iterator[None]:
    """A 404 of the services, worded for this API (the same for another tenant's id)."""
    try:
        yield
    except NotFound:
        raise NotFound(f"{what} not found") from None


def _conversation(session: SessionRead) -> Conversation:
    return Conversation(
        id=session.id,
        created_at=int(session.created_at.timestamp()),
        metadata={
            key: value if isinstance(value, str) else msgspec.json.encode(value).decode()
            for key, value in session.traits.items()
        },
    )


def message_of(item: Item, index: int = 0) -> MessageCreate:
    """The message that stores `item` (module docstring); 400 for an item that is not one."""
    where = f"items[{index}]"
    kind = item.get("type", "message" if "role" in item else None)
    fields: dict[str, Any]
    if not isinstance(kind, str):
        raise BadParameter(where, "an item needs a string `type` (or a message's `role`)")
    if kind == "message":
        if item.get("role") not in MESSAGE_ROLES:
            raise BadParameter(where, f"a message's role is one of {sorted(MESSAGE_ROLES)}")
        fields = {"role": item["role"], "content": item.get("content")}
    elif kind == "function_call":
        call = {"id": item.get("call_id"), "name": item.get("name"), "args": item.get("arguments")}
        if not all(isinstance(value, str) and value for value in call.values()):
            raise BadParameter(where, "a function_call needs string call_id, name and arguments")
        function = {"name": call["name"], "arguments": call["args"]}
        fields = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": call["id"], "type": "function", "function": function}],
        }
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str) or not item["call_id"]:
            raise BadParameter(where, "a function_call_output needs a string call_id")
        fields = {
            "role": "tool",
            "content": item.get("output"),
            "tool_call_id": item.get("call_id"),
        }
    else:
        fields = {"role": "assistant", "content": ""}
    try:
        return msgspec.convert({**fields, "item": item}, MessageCreate, strict=True)
    except msgspec.ValidationError as error:
        raise BadParameter(where, f"{kind} item: {error}") from None


# A message's status as OpenAI names an item's (a streaming answer, one cut off).
_ITEM_STATUS = {"in_progress": "in_progress", "interrupted": "incomplete"}


def item_of(message: MessageRead) -> Item:
    """The item a message is (module docstring)."""
    item = message.item
    if item is None or not (isinstance(item.get("type"), str) or "role" in item):
        # No OpenAI item (none, or another framework's, appended through /v1/sessions).
        item = {"role": message.role, "content": message.content}
    kind = item.get("type", "message")
    shown: Item = {"id": message.id, "type": kind}
    if kind == "message":
        shown["status"] = _ITEM_STATUS.get(message.status, "completed")
    shown.update(item)
    shown["id"] = message.id
    if kind == "message" and isinstance(shown.get("content"), str):
        shown["content"] = [_text_part(shown.get("role"), shown["content"])]
    return shown


def _text_part(role: Any, text: str) -> Item:
    """A message's string content as the one text part OpenAI answers for it: the SDKs' types
    read a message's content as a list of parts (a string makes `item.content[0].text` fail
    and pydantic warn on every dump), and OpenAI's service answers string input that way."""
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def _item_list(found: list[MessageRead], has_more: bool) -> ItemList:
    data = [item_of(message) for message in found]
    return ItemList(
        data=data,
        first_id=data[0]["id"] if data else None,
        last_id=data[-1]["id"] if data else None,
        has_more=has_more,
    )


def _messages(
    items: list[Item], *, max_message_bytes: int, max_json_bytes: int
) -> list[MessageCreate]:
    """The items' messages, each checked as an append checks it, so an error names its item
    (`items[3]: ...`) before anything is written."""
    new = []
    for index, item in enumerate(items):
        message = message_of(item, index)
        try:
            messages.check_message(
                message, max_message_bytes=max_message_bytes, max_json_bytes=max_json_bytes
            )
        except PayloadTooLarge as error:
            raise PayloadTooLarge(f"items[{index}]: {error.detail}") from None
        except BadRequest as error:
            raise BadParameter(f"items[{index}]", error.detail) from None
        new.append(message)
    return new


async def _append(
    tx: Transaction,
    *,
    tenant_id: str,
    conversation_id: str,
    new: list[MessageCreate],
    max_message_bytes: int,
    max_json_bytes: int,
) -> list[MessageRead]:
    stored, _ = await messages.append_messages(
        tx,
        tenant_id=tenant_id,
        session_id=conversation_id,
        new=new,
        max_message_bytes=max_message_bytes,
        max_json_bytes=max_json_bytes,
    )
    return stored


async def create_conversation(
    tx: Transaction,
    *,
    tenant_id: str,
    data: ConversationCreate,
    max_message_bytes: int,
    max_json_bytes: int,
) -> Conversation:
    """A new session with the metadata as traits, and the items as its first messages: all
    in the request's transaction, so a refused item leaves no conversation behind."""
    new = _messages(
        data.items or [], max_message_bytes=max_message_bytes, max_json_bytes=max_json_bytes
    )
    # No external_id: always a new session.
    session, _ = await sessions.create_session(
        tx,
        tenant_id=tenant_id,
        data=SessionCreate(traits=dict(data.metadata or {})),
        max_json_bytes=max_json_bytes,
    )
    if new:
        await _append(
            tx,
            tenant_id=tenant_id,
            conversation_id=session.id,
            new=new,
            max_message_bytes=max_message_bytes,
            max_json_bytes=max_json_bytes,
        )
    return _conversation(session)


async def get_conversation(
    tx: Transaction, *, tenant_id: str, conversation_id: str
) -> Conversation:
    with _not_found_as("conversation"):
        session = await sessions.get_session(tx, tenant_id=tenant_id, session_id=conversation_id)
    return _conversation(session)


async def replace_metadata(
    tx: Transaction,
    *,
    tenant_id: str,
    conversation_id: str,
    metadata: dict[str, str] | None,
    max_json_bytes: int,
) -> Conversation:
    with _not_found_as("conversation"):
        session = await sessions.replace_traits(
            tx,
            tenant_id=tenant_id,
            session_id=conversation_id,
            traits=dict(metadata or {}),
            expected_versions=None,
            max_json_bytes=max_json_bytes,
        )
    return _conversation(session)


async def delete_conversation(
    tx: Transaction, *, tenant_id: str, conversation_id: str
) -> ConversationDeleted:
    """Unlike OpenAI's, the conversation's items go with it (the database's cascade)."""
    with _not_found_as("conversation"):
        await sessions.delete_session(tx, tenant_id=tenant_id, session_id=conversation_id)
    return ConversationDeleted(id=conversation_id)


async def add_items(
    tx: Transaction,
    *,
    tenant_id: str,
    conversation_id: str,
    items: list[Item],
    max_message_bytes: int,
    max_json_bytes: int,
) -> ItemList:
    """Append the items, all or none, as consecutive messages."""
    new = _messages(items, max_message_bytes=max_message_bytes, max_json_bytes=max_json_bytes)
    with _not_found_as("conversation"):
        stored = await _append(
            tx,
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            new=new,
            max_message_bytes=max_message_bytes,
            max_json_bytes=max_json_bytes,
        )
    return _item_list(stored, has_more=False)


async def list_items(
    tx: Transaction,
    *,
    tenant_id: str,
    conversation_id: str,
    after: str | None,
    limit: int,
    order: str,
) -> ItemList:
    """A page of items in seq order (`asc`) or its reverse (`desc`), after the item `after`
    in that order; an `after` that is no item of this conversation is a 400."""
    after_seq = before_seq = None
    if after is not None:
        seq = await _seq_of(tx, tenant_id=tenant_id, conversation_id=conversation_id, item_id=after)
        if order == "asc":
            after_seq = seq
        else:
            before_seq = seq
    with _not_found_as("conversation"):
        found, next_cursor = await history.list_messages(
            tx,
            tenant_id=tenant_id,
            session_id=conversation_id,
            order=order,
            after_seq=after_seq,
            before_seq=before_seq,
            role=None,
            limit=limit,
            cursor=None,
        )
    return _item_list(found, has_more=next_cursor is not None)


async def _seq_of(tx: Transaction, *, tenant_id: str, conversation_id: str, item_id: str) -> int:
    try:
        found = await messages.get_message(
            tx, tenant_id=tenant_id, session_id=conversation_id, message_id=item_id
        )
    except NotFound:
        with _not_found_as("conversation"):  # a missing conversation stays a 404
            await sessions.ensure_session(tx, tenant_id=tenant_id, session_id=conversation_id)
        raise BadParameter("after", "no item of this conversation has this id") from None
    return found.seq


async def get_item(tx: Transaction, *, tenant_id: str, conversation_id: str, item_id: str) -> Item:
    with _not_found_as("item"):
        found = await messages.get_message(
            tx, tenant_id=tenant_id, session_id=conversation_id, message_id=item_id
        )
    return item_of(found)


async def delete_item(
    tx: Transaction, *, tenant_id: str, conversation_id: str, item_id: str
) -> Conversation:
    """Remove the item's message; the answer is the conversation, as OpenAI's is."""
    with _not_found_as("item"):
        await removal.delete_message(
            tx, tenant_id=tenant_id, session_id=conversation_id, message_id=item_id
        )
    return await get_conversation(tx, tenant_id=tenant_id, conversation_id=conversation_id)
