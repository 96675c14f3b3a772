"""The database layer, a file per concern:

- prepared.py: compiled hot statements (`Prepared`), no I/O;
- transaction.py: what each engine implements (`Transaction`, `Engine`);
- sqlite.py: the SQLite engine (writer and reader connections, group commit);
- checkpointer.py: SQLite's WAL checkpoints, on a thread of their own;
- postgres.py: the PostgreSQL engine (the pool, retries on connections that died in it);
- database.py: `Database`, the one object the app holds, over one of the two engines;
- migrate.py: alembic (head revision, upgrade, downgrade).

Services import `Database`, `Transaction` and `Prepared` from here.
"""

from chat_sessions.db.database import Database
from chat_sessions.db.migrate import head_revision
from chat_sessions.db.prepared import Prepared
from chat_sessions.db.transaction import Transaction

__all__ = ["Database", "Prepared", "Transaction", "head_revision"]
