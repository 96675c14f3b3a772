"""Stats wire shape."""

from __future__ import annotations

from msgspec import Struct


class Stats(Struct):
    sessions: int
    messages: int
    tokens: int
    users: int
