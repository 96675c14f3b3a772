"""Full-text search over a tenant's message contents.

User text is plain text, never query syntax: it is cut into words and each word is quoted
(SQLite FTS5) or handed to `plainto_tsquery` (PostgreSQL), so quotes, operators, brackets, NUL
bytes or SQL in a query can only ever be searched for. Every word must match; best match first.
"""

from __future__ import annotations

import re

from chat_sessions.db import Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.search.backends import SearchBackend
from chat_sessions.search.schemas import SearchHit
from chat_sessions.wire import build, in_order

MAX_TERMS = 32
_WORD = re.compile(r"\w+")


def search_terms(query: str) -> list[str]:
    """The words of a user's query; 400 only for a query with no text at all."""
    if not query.replace("\x00", "").strip():  # NUL bytes count as nothing, like spaces
        raise BadRequest("q must not be empty")
    return _WORD.findall(query)[:MAX_TERMS]


def _filters(session_id: str | None, user_id: str | None, role: str | None) -> str:
    clauses = []
    if session_id is not None:
        clauses.append("AND m.session_id = :session_id")
    if user_id is not None:
        clauses.append(
            "AND m.session_id IN (SELECT id FROM sessions"
            " WHERE tenant_id = :tenant_id AND user_id = :user_id)"
        )
    if role is not None:
        clauses.append("AND m.role = :role")
    return " ".join(clauses)


async def search_messages(
    backend: SearchBackend,
    tx: Transaction,
    *,
    tenant_id: str,
    query: str,
    session_id: str | None,
    user_id: str | None,
    role: str | None,
    limit: int,
) -> list[SearchHit]:
    terms = search_terms(query)
    if not terms:
        return []  # only punctuation or operators: nothing can match
    await backend.before_search()  # before `tx` begins: its snapshot sees what this indexed
    parameters = {
        "match": backend.match(terms),
        "tenant_id": tenant_id,
        "session_id": session_id,
        "user_id": user_id,
        "role": role,
        "limit": limit,
    }
    statement = backend.statement(_filters(session_id, user_id, role))
    # The statements are text: their rows are read by the names they give each field.
    result = await tx.execute(statement, parameters)
    return build(SearchHit, map(in_order(SearchHit), result.mappings()))
