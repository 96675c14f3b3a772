"""End-user wire shapes: erasure, and the traits shared by every session of one end-user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct


class Erasure(Struct):
    deleted_sessions: int


class UserTraits(Struct):
    """An end-user's traits. A user never written to has empty traits, version 0 and no
    `updated_at`; the `ETag` is the version, as a session's is."""

    user_id: str
    traits: dict[str, Any]
    version: int
    updated_at: datetime | None
