"""Wire shapes of full-text search."""

from __future__ import annotations

from msgspec import Struct


class SearchHit(Struct):
    session_id: str
    message_id: str
    seq: int
    role: str
    snippet: str
    score: float


class SearchResults(Struct):
    data: list[SearchHit]
