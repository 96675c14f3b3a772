"""Micro-benchmark: the floor under issue 13's SQLite targets. What SQLite itself costs for the
service's writes and its hottest read, on the service's own schema (the migrations, its
indexes, its search index and triggers), from raw `sqlite3` with no Python work around it:

- storing messages, 1 and 20 to a transaction (WAL, synchronous=NORMAL, UUIDv7 ids, the
  session row advanced as the service does);
- indexing them for search (the indexer's statement, slices of 100 as search/indexer.py);
- copying the WAL into the database (a checkpoint);
- reading the last 50 of a session of 2,000 with the history statement's columns.

    .venv/bin/python bench/micro_sqlite_floor.py

Each is a floor for the service's figure on the same machine: no HTTP, no validation, no
response, one connection, nobody else on the lock. Wall time a message (or a page), best of
ROUNDS runs. Compared in the README with the bare app's CPU a request (bench/RESULTS.md).
"""

from __future__ import annotations

import functools
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uuid_utils
from sqlalchemy import create_engine

from chat_sessions.db.migrate import upgrade_on_connection
from chat_sessions.messages.history import _history_statement

ROUNDS = 5
MESSAGES = 4_000  # a round's messages
NOW = "2026-12-06 10:00:00.000000"
# As the benchmark's messages: a typical chat length, and a word of its own in each.
TEXT = "a message of a typical chat length, some twenty words or so, to store and index: {}"


class Floor:
    def __init__(self, path: Path) -> None:
        engine = create_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            upgrade_on_connection(connection)
        engine.dispose()
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"):
            self.db.execute(f"PRAGMA {pragma}")
        self.tenant, self.session = str(uuid_utils.uuid7()), str(uuid_utils.uuid7())
        self.db.execute(
            "INSERT INTO tenants (id, name, created_at) VALUES (?, 't', ?)", (self.tenant, NOW)
        )
        self.db.execute(
            "INSERT INTO sessions (id, tenant_id, traits, status, message_count, last_seq, "
            "head_seq, created_at, updated_at, version) "
            "VALUES (?, ?, '{}', 'active', 0, 0, 0, ?, ?, 1)",
            (self.session, self.tenant, NOW, NOW),
        )
        self.seq = 0

    def store(self, per_transaction: int) -> None:
        for _ in range(MESSAGES // per_transaction):
            self.db.execute("BEGIN IMMEDIATE")
            (last,) = self.db.execute(
                "UPDATE sessions SET last_seq = last_seq + ?, head_seq = last_seq + ?, "
                "message_count = message_count + ? WHERE id = ? RETURNING last_seq",
                (per_transaction, per_transaction, per_transaction, self.session),
            ).fetchone()
            first = last - per_transaction + 1
            self.db.executemany(
                "INSERT INTO messages (id, tenant_id, session_id, seq, parent_seq, role, "
                "content, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'user', ?, 'completed', ?)",
                [
                    (
                        str(uuid_utils.uuid7()),
                        self.tenant,
                        self.session,
                        seq,
                        seq - 1,
                        TEXT.format(seq),
                        NOW,
                    )
                    for seq in range(first, last + 1)
                ],
            )
            self.db.execute("COMMIT")

    def index(self) -> None:
        (start,) = self.db.execute("SELECT indexed_through FROM messages_fts_watermark").fetchone()
        (end,) = self.db.execute("SELECT max(rowid) FROM messages").fetchone()
        for low in range(start, end, 100):
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO messages_fts (rowid, content) SELECT rowid, content FROM messages "
                "WHERE rowid > ? AND rowid <= ? AND status <> 'in_progress'",
                (low, min(low + 100, end)),
            )
            self.db.execute(
                "UPDATE messages_fts_watermark SET indexed_through = ?", (min(low + 100, end),)
            )
            self.db.execute("COMMIT")

    def checkpoint(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def read_last_50(self, pages: int) -> None:
        plan = _history_statement(True, False, False, False, False, never_branched=True)
        compiled = plan.plan(create_engine("sqlite://").dialect)
        values = compiled.values(
            {"session_id": self.session, "tenant_id": self.tenant, "limit": 51}
        )
        for _ in range(pages):
            self.db.execute(compiled.sql, values).fetchall()


def best(work: Callable[[], None], count: int) -> float:
    """µs a unit (message or page), best of ROUNDS."""
    fastest = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest / count * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        floor = Floor(Path(folder) / "floor.db")
        rows = []
        for per_transaction in (1, 20):
            # Each round stores, then indexes and checkpoints what it stored, as the service
            # does behind its writes; each step is timed apart.
            stored, indexed, copied = float("inf"), float("inf"), float("inf")
            for _ in range(ROUNDS):
                stored = min(stored, best_once(functools.partial(floor.store, per_transaction)))
                indexed = min(indexed, best_once(floor.index))
                copied = min(copied, best_once(floor.checkpoint))
            total = stored + indexed + copied
            rows.append((f"store {per_transaction} a transaction", stored))
            rows.append(("index them for search", indexed))
            rows.append(("checkpoint the WAL", copied))
            rows.append((f"  all three, {per_transaction} a transaction", total))
            rows.append(("  = messages/s at most", 1e6 / total))
        floor.store(20)  # a session of more than 2,000 for the read
        page = best(lambda: floor.read_last_50(500), 500)
    for label, figure in rows:
        unit = "" if label.strip().startswith("=") else " µs a message"
        print(f"{label:40} {figure:10,.1f}{unit}")
    print(f"{'read the last 50 (15 columns, 51 rows)':40} {page:10,.1f} µs a page")


def best_once(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) / MESSAGES * 1e6


if __name__ == "__main__":
    main()
