"""The Python client of the chat-sessions service (httpx only). Framework session backends:
`chat_sessions_client.integrations.{openai_agents, langchain, adk}`."""

from chat_sessions_client.calls import Retries
from chat_sessions_client.client import AsyncChatSessionsClient, ChatSessionsClient
from chat_sessions_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ChatSessionsError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionFailedError,
    RateLimitError,
    ServerError,
)
from chat_sessions_client.models import (
    ContextMessage,
    DeltaAck,
    Message,
    NewMessage,
    Page,
    SearchHit,
    Session,
    SessionExport,
    Stats,
    ToolCall,
    UserTraits,
)
from chat_sessions_client.operations import UNSET

__all__ = [
    "UNSET",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncChatSessionsClient",
    "AuthenticationError",
    "BadRequestError",
    "ChatSessionsClient",
    "ChatSessionsError",
    "ConflictError",
    "ContextMessage",
    "DeltaAck",
    "Message",
    "NewMessage",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "RateLimitError",
    "Retries",
    "SearchHit",
    "ServerError",
    "Session",
    "SessionExport",
    "Stats",
    "ToolCall",
    "UserTraits",
]
