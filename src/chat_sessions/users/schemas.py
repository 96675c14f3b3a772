"""End-user wire shapes: erasure, and the traits shared by every session of one end-user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta, Struct

# An end-user's id, as the caller names it (a session's `user_id`, a /users path).
UserId = Annotated[str, Meta(min_length=1, max_length=256)]


class Erasure(Struct):
    deleted_sessions: int


class UserTraits(Struct):
    """An end-user's traits. A user never written to has empty traits, version 0 and no
    `updated_at`; the `ETag` is the version, as a session's is."""

    user_id: str
    traits: dict[str, Any]
    version: int
    updated_at: datetime | None
