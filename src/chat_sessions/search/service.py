"""Full-text search over a tenant's message contents.

User text is plain text, never query syntax: it is cut into words and each word is quoted
(SQLite FTS5) or handed to `plainto_tsquery` (PostgreSQL), so quotes, operators, brackets, NUL
bytes or SQL in a query can only ever be searched for. Every word must match; best match first.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from chat_sessions.db import Transaction
from chat_sessions.errors import BadRequest
from chat_sessions.search.schemas import SearchHit
from chat_sessions.wire import build, in_order

MAX_TERMS = 32
SNIPPET_WORDS = 16
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


def _sqlite_statement(filters: str) -> Any:
    return text(
        f"""
        SELECT m.session_id, m.id AS message_id, m.seq, m.role,
               snippet(messages_fts, 0, '', '', '…', {SNIPPET_WORDS}) AS snippet,
               -bm25(messages_fts) AS score
        FROM messages_fts JOIN messages AS m ON m.rowid = messages_fts.rowid
        WHERE messages_fts MATCH :match AND m.tenant_id = :tenant_id {filters}
        ORDER BY bm25(messages_fts), m.seq
        LIMIT :limit
        """
    )


def _postgres_statement(filters: str) -> Any:
    return text(
        f"""
        SELECT m.session_id, m.id AS message_id, m.seq, m.role,
               ts_headline('simple', m.content, q.query,
                           'StartSel="",StopSel="",MaxWords={SNIPPET_WORDS},MinWords=4')
                 AS snippet,
               ts_rank(to_tsvector('simple'::regconfig, m.content), q.query) AS score
        FROM messages AS m, plainto_tsquery('simple', :match) AS q(query)
        WHERE to_tsvector('simple'::regconfig, m.content) @@ q.query
          AND m.tenant_id = :tenant_id {filters}
        ORDER BY score DESC, m.seq
        LIMIT :limit
        """
    )


async def search_messages(
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
    await tx.prepare_search()
    if tx.dialect == "sqlite":
        match = " ".join(f'"{term}"' for term in terms)  # \w+ words hold no quote to escape
        statement = _sqlite_statement(_filters(session_id, user_id, role))
    else:
        match = " ".join(terms)
        statement = _postgres_statement(_filters(session_id, user_id, role))
    parameters = {
        "match": match,
        "tenant_id": tenant_id,
        "session_id": session_id,
        "user_id": user_id,
        "role": role,
        "limit": limit,
    }
    # The statements are text: their rows are read by the names they give each field.
    result = await tx.execute(statement, parameters)
    return build(SearchHit, map(in_order(SearchHit), result.mappings()))
