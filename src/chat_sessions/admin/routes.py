"""Operator routes, behind ADMIN_TOKEN (and absent, 404, while it is unset)."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from chat_sessions.admin import service
from chat_sessions.admin.schemas import (
    KeyCreated,
    KeyList,
    TenantCreate,
    TenantCreated,
    TenantPage,
    TenantRead,
    TenantUpdate,
)
from chat_sessions.auth import admin_guard
from chat_sessions.bounds import PageLimit
from chat_sessions.db import Transaction
from chat_sessions.errors import admin_errors
from chat_sessions.pagination import Cursor


class AdminController(Controller):
    path = "/admin/tenants"
    tags = ["admin"]
    guards = [admin_guard]

    @post(
        "/",
        status_code=201,
        summary="Create a tenant and its first API key",
        responses=admin_errors(409, body=True),
    )
    async def create_tenant(
        self, tx: NamedDependency[Transaction], data: JSONBody[TenantCreate]
    ) -> TenantCreated:
        return await service.create_tenant(tx, data)

    @get("/", summary="List tenants with their counts", responses=admin_errors())
    async def list_tenants(
        self,
        tx: NamedDependency[Transaction],
        limit: PageLimit = 20,
        cursor: Cursor = None,
    ) -> TenantPage:
        found, next_cursor = await service.list_tenants(tx, limit=limit, cursor=cursor)
        return TenantPage(data=found, next_cursor=next_cursor)

    @patch(
        "/{tenant_id:str}",
        summary="Change a tenant's name or limits",
        responses=admin_errors(409, body=True),
    )
    async def update_tenant(
        self,
        tx: NamedDependency[Transaction],
        tenant_id: FromPath[str],
        data: JSONBody[TenantUpdate],
    ) -> TenantRead:
        return await service.update_tenant(tx, tenant_id, data)

    @delete(
        "/{tenant_id:str}",
        status_code=204,
        summary="Delete a tenant and everything it owns",
        responses=admin_errors(),
    )
    async def delete_tenant(
        self, tx: NamedDependency[Transaction], tenant_id: FromPath[str]
    ) -> None:
        await service.delete_tenant(tx, tenant_id)

    @post(
        "/{tenant_id:str}/keys",
        status_code=201,
        summary="Create an API key (shown once)",
        responses=admin_errors(),
    )
    async def create_key(
        self, tx: NamedDependency[Transaction], tenant_id: FromPath[str]
    ) -> KeyCreated:
        return await service.add_key(tx, tenant_id, by_name=False)

    @get(
        "/{tenant_id:str}/keys",
        summary="List a tenant's API keys, with when each was last used",
        responses=admin_errors(),
    )
    async def list_keys(
        self, tx: NamedDependency[Transaction], tenant_id: FromPath[str]
    ) -> KeyList:
        return KeyList(data=await service.list_keys(tx, tenant_id, by_name=False))

    @delete(
        "/{tenant_id:str}/keys/{key_id:str}",
        status_code=204,
        summary="Revoke an API key",
        responses=admin_errors(),
    )
    async def revoke_key(
        self, tx: NamedDependency[Transaction], tenant_id: FromPath[str], key_id: FromPath[str]
    ) -> None:
        await service.revoke_key(tx, key_id=key_id, tenant_id=tenant_id)
