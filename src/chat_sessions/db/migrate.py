"""Migrations: the alembic configuration, the head revision, upgrade and downgrade on a given
connection, and what autogenerate must not compare (the search indexes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


# The search index lives outside the models: an FTS5 virtual table with its shadow tables on
# SQLite, an expression index on PostgreSQL (migration 0002). Autogenerate must not see them.
SEARCH_INDEX_NAMES = ("messages_fts", "ix_messages_content_fts")


def include_in_autogenerate(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (name or "").startswith(SEARCH_INDEX_NAMES)


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade_on_connection(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def downgrade_on_connection(connection: Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(connection), revision)
