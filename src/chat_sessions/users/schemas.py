"""End-user erasure wire shape."""

from __future__ import annotations

from msgspec import Struct


class Erasure(Struct):
    deleted_sessions: int
