"""Wire shapes of the operator's routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from chat_sessions.bounds import TenantLimit

TenantName = Annotated[str, Meta(min_length=1, max_length=200)]


class TenantCreate(Struct, forbid_unknown_fields=True):
    name: TenantName
    max_sessions: TenantLimit | None = None
    retention_days: TenantLimit | None = None
    rate_limit_per_minute: TenantLimit | None = None


class TenantUpdate(Struct, forbid_unknown_fields=True):
    """Absent fields stay; null clears a limit."""

    name: TenantName | UnsetType = UNSET
    max_sessions: TenantLimit | UnsetType | None = UNSET
    retention_days: TenantLimit | UnsetType | None = UNSET
    rate_limit_per_minute: TenantLimit | UnsetType | None = UNSET


class TenantRead(Struct):
    id: str
    name: str
    max_sessions: int | None
    retention_days: int | None
    rate_limit_per_minute: int | None
    created_at: datetime
    session_count: int
    message_count: int


class TenantPage(Struct):
    data: list[TenantRead]
    next_cursor: str | None


class KeyRead(Struct):
    id: str
    tenant_id: str
    prefix: str
    created_at: datetime


class KeyCreated(KeyRead):
    api_key: str


class KeyListed(KeyRead):
    """A key as its tenant's listing shows it (never the key, which is not stored)."""

    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyList(Struct):
    data: list[KeyListed]


class TenantCreated(Struct):
    tenant: TenantRead
    api_key: str
