"""The operator's lookups across tenants (admin/service.py), used by the CLI."""

from __future__ import annotations

import pytest

from chat_sessions.admin import service as admin
from chat_sessions.admin.schemas import TenantCreate
from chat_sessions.db import Database
from chat_sessions.errors import NotFound
from chat_sessions.sessions import service as sessions
from chat_sessions.sessions.schemas import SessionCreate


async def test_tenant_of_session_names_the_sessions_tenant_or_is_not_found(
    database: Database,
) -> None:
    async with database.transaction() as tx:
        await admin.ping(tx)
        tenant = (await admin.create_tenant(tx, TenantCreate(name="acme"))).tenant
        row, _ = await sessions.create_session(
            tx, tenant_id=tenant.id, data=SessionCreate(), max_json_bytes=1024
        )
    async with database.transaction() as tx:
        assert await admin.tenant_of_session(tx, row.id) == tenant.id
        with pytest.raises(NotFound, match="no session nope"):
            await admin.tenant_of_session(tx, "nope")
