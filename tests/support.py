"""Helpers the tests share: settings, tenants, row counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.settings import Settings

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_path": ":memory:",
        "database_url": None,
        "admin_token": ADMIN_TOKEN,
        "log_level": "warning",
        "max_body_bytes": 1024 * 1024,
        "max_message_bytes": 256 * 1024,
        "max_json_bytes": 64 * 1024,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Tenant:
    id: str
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_tenant(client: httpx.AsyncClient, name: str, **limits: Any) -> Tenant:
    response = await client.post("/v1/admin/tenants", json={"name": name, **limits}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    return Tenant(id=body["tenant"]["id"], name=name, key=body["api_key"])


async def count_rows(database: Database, table: str, where: str = "", **params: Any) -> int:
    """Count rows in the database itself, for claims about storage."""
    sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    async with database.transaction() as tx:
        return int((await tx.execute(text(sql), params)).scalar_one())
