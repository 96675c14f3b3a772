"""Wire shapes of OpenAI's Conversations API, as OpenAI's SDKs send and read them.

Items are OpenAI Responses items, free-form JSON objects: they are stored verbatim in a
message's `item` and come back as they were sent (service.py says what is derived from them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

# OpenAI's limits on metadata, which apply on these routes only: 16 keys of up to 64
# characters, string values of up to 512.
MAX_METADATA_KEYS = 16
MetadataKey = Annotated[str, Meta(max_length=64)]
MetadataValue = Annotated[str, Meta(max_length=512)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Meta(max_length=MAX_METADATA_KEYS)]
# OpenAI's limit of items a request adds ("You may add up to 20 items at a time").
MAX_ITEMS_PER_REQUEST = 20
Item = dict[str, Any]


class ConversationCreate(Struct, forbid_unknown_fields=True):
    items: Annotated[list[Item], Meta(max_length=MAX_ITEMS_PER_REQUEST)] | None = None
    metadata: Metadata | None = None
    # Sent by OpenAI's SDKs when the caller gives one; accepted and ignored.
    safety_identifier: Annotated[str, Meta(max_length=64)] | None = None


class ConversationUpdate(Struct, forbid_unknown_fields=True):
    """The new metadata, replacing the old; null clears it."""

    metadata: Metadata | None


class ItemsCreate(Struct, forbid_unknown_fields=True):
    items: Annotated[list[Item], Meta(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)]


class Conversation(Struct):
    id: str
    created_at: int  # Unix seconds
    metadata: dict[str, str]
    object: Literal["conversation"] = "conversation"


class ConversationDeleted(Struct):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool = True


class ItemList(Struct):
    """A page of items; `first_id` and `last_id` are null when `data` is empty."""

    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: Literal["list"] = "list"


class OpenAIErrorDetail(Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(Struct):
    """Every error of these routes, in OpenAI's shape."""

    error: OpenAIErrorDetail
