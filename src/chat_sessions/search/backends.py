"""How each engine searches: `SQLiteSearch` (FTS5, an index built behind the writes by the
`SearchIndexer`) and `PostgresSearch` (a tsvector expression index, current at each commit).
`search_backend` picks one for a database, once, where the app is assembled."""

from __future__ import annotations

import abc
from typing import Any

from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.search.indexer import SearchIndexer

SNIPPET_WORDS = 16


class SearchBackend(abc.ABC):
    """One engine's search statement, what it does before a search's transaction, and
    what it does in the background while the app runs."""

    @abc.abstractmethod
    async def before_search(self) -> None:
        """Runs before the search's transaction takes its snapshot."""

    @abc.abstractmethod
    async def run_in_background(self) -> None:
        """The app's lifespan runs this as a task, and cancels it at shutdown."""

    @abc.abstractmethod
    def match(self, terms: list[str]) -> str:
        """The `:match` parameter for a query's words."""

    @abc.abstractmethod
    def statement(self, filters: str) -> Any:
        """The search, with `filters` (AND clauses on `m`, the messages) in its WHERE."""


class SQLiteSearch(SearchBackend):
    def __init__(self, indexer: SearchIndexer) -> None:
        self.indexer = indexer

    async def before_search(self) -> None:
        """Index what waits, up to the search's bounded share (see SearchIndexer)."""
        await self.indexer.catch_up_for_search()

    async def run_in_background(self) -> None:
        await self.indexer.run()

    def match(self, terms: list[str]) -> str:
        return " ".join(f'"{term}"' for term in terms)  # \w+ words hold no quote to escape

    def statement(self, filters: str) -> Any:
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


class PostgresSearch(SearchBackend):
    """The GIN index leaves in-progress messages out (migration 0006), and so does the
    search, whose `status` clause lets the planner use that partial index."""

    async def before_search(self) -> None:
        """Nothing: PostgreSQL's GIN index is current as each write commits."""

    async def run_in_background(self) -> None:
        """Nothing to build: returns at once."""

    def match(self, terms: list[str]) -> str:
        return " ".join(terms)

    def statement(self, filters: str) -> Any:
        return text(
            f"""
            SELECT m.session_id, m.id AS message_id, m.seq, m.role,
                   ts_headline('simple', m.content, q.query,
                               'StartSel="",StopSel="",MaxWords={SNIPPET_WORDS},MinWords=4')
                     AS snippet,
                   ts_rank(to_tsvector('simple'::regconfig, m.content), q.query) AS score
            FROM messages AS m, plainto_tsquery('simple', :match) AS q(query)
            WHERE to_tsvector('simple'::regconfig, m.content) @@ q.query
              AND m.status <> 'in_progress'
              AND m.tenant_id = :tenant_id {filters}
            ORDER BY score DESC, m.seq
            LIMIT :limit
            """
        )


def search_backend(database: Database) -> SearchBackend:
    if database.is_sqlite:
        return SQLiteSearch(SearchIndexer(database))
    return PostgresSearch()
