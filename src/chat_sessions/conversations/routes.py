"""OpenAI's Conversations API: parse, call one service function, shape the answer.

Errors are in OpenAI's shape (errors.py); the router that serves these routes (app.py) installs
the handlers that write them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from chat_sessions.bounds import MAX_PAGE
from chat_sessions.caller import Caller
from chat_sessions.conversations import service
from chat_sessions.conversations.errors import openai_errors
from chat_sessions.conversations.schemas import (
    Conversation,
    ConversationCreate,
    ConversationDeleted,
    ConversationUpdate,
    Item,
    ItemList,
    ItemsCreate,
)

_IGNORED = "Accepted for OpenAI's SDKs, repeatable, and ignored: items are always returned whole"
# OpenAI's SDKs write a list parameter with brackets (`include[]=a&include[]=b`), others
# without. Typed as one free string: nothing a client sends in it is refused.
Include = Annotated[str | None, QueryParameter(description=_IGNORED)]
IncludeBrackets = Annotated[str | None, QueryParameter(name="include[]", description=_IGNORED)]


class ConversationController(Controller):
    path = "/conversations"
    tags = ["conversations (OpenAI)"]

    @post(
        "/",
        status_code=200,
        summary="Create a conversation (a session), with up to 20 first items",
        responses=openai_errors(body=True),
    )
    async def create_conversation(
        self, caller: NamedDependency[Caller], data: JSONBody[ConversationCreate]
    ) -> Conversation:
        return await service.create_conversation(
            caller.tx,
            tenant_id=caller.tenant_id,
            data=data,
            max_message_bytes=caller.settings.max_message_bytes,
            max_json_bytes=caller.settings.max_json_bytes,
        )

    @get("/{conversation_id:str}", summary="Get a conversation", responses=openai_errors(404))
    async def get_conversation(
        self, caller: NamedDependency[Caller], conversation_id: FromPath[str]
    ) -> Conversation:
        return await service.get_conversation(
            caller.tx, tenant_id=caller.tenant_id, conversation_id=conversation_id
        )

    @post(
        "/{conversation_id:str}",
        status_code=200,
        summary="Replace a conversation's metadata",
        responses=openai_errors(404, body=True),
    )
    async def update_conversation(
        self,
        caller: NamedDependency[Caller],
        conversation_id: FromPath[str],
        data: JSONBody[ConversationUpdate],
    ) -> Conversation:
        return await service.replace_metadata(
            caller.tx,
            tenant_id=caller.tenant_id,
            conversation_id=conversation_id,
            metadata=data.metadata,
            max_json_bytes=caller.settings.max_json_bytes,
        )

    @delete(
        "/{conversation_id:str}",
        status_code=200,
        summary="Delete a conversation and its items",
        responses=openai_errors(404),
    )
    async def delete_conversation(
        self, caller: NamedDependency[Caller], conversation_id: FromPath[str]
    ) -> ConversationDeleted:
        return await service.delete_conversation(
            caller.tx, tenant_id=caller.tenant_id, conversation_id=conversation_id
        )

    @post(
        "/{conversation_id:str}/items",
        status_code=200,
        summary="Add up to 20 items, all or none",
        responses=openai_errors(404, body=True),
    )
    async def create_items(
        self,
        caller: NamedDependency[Caller],
        conversation_id: FromPath[str],
        data: JSONBody[ItemsCreate],
        include: Include = None,
        include_brackets: IncludeBrackets = None,
    ) -> ItemList:
        return await service.add_items(
            caller.tx,
            tenant_id=caller.tenant_id,
            conversation_id=conversation_id,
            items=data.items,
            max_message_bytes=caller.settings.max_message_bytes,
            max_json_bytes=caller.settings.max_json_bytes,
        )

    @get(
        "/{conversation_id:str}/items",
        summary="List items: newest first by default, paged with `after`",
        responses=openai_errors(404),
    )
    async def list_items(
        self,
        caller: NamedDependency[Caller],
        conversation_id: FromPath[str],
        after: Annotated[
            str | None,
            QueryParameter(
                min_length=1, max_length=256, description="The last id of the page before"
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 20,
        order: Annotated[Literal["asc", "desc"], QueryParameter()] = "desc",
        include: Include = None,
        include_brackets: IncludeBrackets = None,
    ) -> ItemList:
        return await service.list_items(
            caller.tx,
            tenant_id=caller.tenant_id,
            conversation_id=conversation_id,
            after=after,
            limit=limit,
            order=order,
        )

    @get(
        "/{conversation_id:str}/items/{item_id:str}",
        summary="Get one item",
        responses=openai_errors(404),
    )
    async def get_item(
        self,
        caller: NamedDependency[Caller],
        conversation_id: FromPath[str],
        item_id: FromPath[str],
        include: Include = None,
        include_brackets: IncludeBrackets = None,
    ) -> Item:
        return await service.get_item(
            caller.tx, tenant_id=caller.tenant_id, conversation_id=conversation_id, item_id=item_id
        )

    @delete(
        "/{conversation_id:str}/items/{item_id:str}",
        status_code=200,
        summary="Delete one item; answers the conversation",
        responses=openai_errors(404),
    )
    async def delete_item(
        self,
        caller: NamedDependency[Caller],
        conversation_id: FromPath[str],
        item_id: FromPath[str],
    ) -> Conversation:
        return await service.delete_item(
            caller.tx, tenant_id=caller.tenant_id, conversation_id=conversation_id, item_id=item_id
        )
