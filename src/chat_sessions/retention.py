"""Retention: each tenant's `retention_days` and `max_sessions`, applied by `chat-sessions
cleanup` (and by `serve` every CLEANUP_INTERVAL_SECONDS when that is set).

- Idle: a session whose last activity (`updated_at`) is older than `retention_days` goes.
- Over the limit: beyond `max_sessions`, the sessions with the oldest activity go.

Deletes run in small batches, each its own short transaction, with a yield to the event loop
between them, so a cleanup inside `serve` never holds requests up for long. Every delete
re-checks its condition in its own transaction: a session that became active meanwhile stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select

from chat_sessions.db import Database
from chat_sessions.models import sessions, tenants, utcnow

BATCH = 100
log = logging.getLogger("chat_sessions.retention")


@dataclass
class TenantCleanup:
    tenant_id: str
    tenant_name: str
    idle: int = 0
    over_limit: int = 0

    def describe(self, dry_run: bool) -> str:
        verb = "would delete" if dry_run else "deleted"
        return (
            f"{self.tenant_name} ({self.tenant_id}): {verb} {self.idle + self.over_limit} "
            f"sessions ({self.idle} idle, {self.over_limit} over max_sessions)"
        )


async def _tenants_with_rules(database: Database) -> list[Any]:
    async with database.transaction() as tx:
        return list(
            await tx.execute(
                select(
                    tenants.c.id, tenants.c.name, tenants.c.retention_days, tenants.c.max_sessions
                )
                .where(
                    (tenants.c.retention_days.isnot(None)) | (tenants.c.max_sessions.isnot(None))
                )
                .order_by(tenants.c.name)
            )
        )


async def _count(database: Database, *conditions: Any) -> int:
    async with database.transaction() as tx:
        return int((await tx.execute(select(func.count()).where(*conditions))).scalar_one())


async def _delete_in_batches(database: Database, pick: Any, budget: int | None = None) -> int:
    """Delete the sessions `pick(limit)` selects, a batch per transaction, until none is left
    (or `budget` sessions are gone)."""
    total = 0
    while budget is None or total < budget:
        take = BATCH if budget is None else min(BATCH, budget - total)
        async with database.transaction() as tx:
            deleted = int(
                (await tx.execute(delete(sessions).where(sessions.c.id.in_(pick(take))))).rowcount
            )
        total += deleted
        if deleted < take:
            break
        await asyncio.sleep(0)  # let waiting requests in between batches
    return total


async def cleanup_tenant(database: Database, tenant: Any, *, dry_run: bool) -> TenantCleanup:
    result = TenantCleanup(tenant_id=tenant.id, tenant_name=tenant.name)
    of_tenant = sessions.c.tenant_id == tenant.id

    if tenant.retention_days is not None:
        cutoff = utcnow() - timedelta(days=tenant.retention_days)
        idle = (of_tenant, sessions.c.updated_at < cutoff)
        if dry_run:
            result.idle = await _count(database, *idle)
        else:
            result.idle = await _delete_in_batches(
                database, lambda limit: select(sessions.c.id).where(*idle).limit(limit)
            )

    if tenant.max_sessions is not None:
        remaining = await _count(database, of_tenant) - (result.idle if dry_run else 0)
        excess = max(0, remaining - tenant.max_sessions)
        if dry_run:
            result.over_limit = excess
        elif excess:
            result.over_limit = await _delete_in_batches(
                database,
                lambda limit: (
                    select(sessions.c.id)
                    .where(of_tenant)
                    .order_by(sessions.c.updated_at, sessions.c.id)
                    .limit(limit)
                ),
                budget=excess,
            )
    return result


async def run_cleanup(database: Database, *, dry_run: bool = False) -> list[TenantCleanup]:
    """Apply every tenant's rules; one entry per tenant that has any."""
    return [
        await cleanup_tenant(database, tenant, dry_run=dry_run)
        for tenant in await _tenants_with_rules(database)
    ]


async def cleanup_periodically(
    database: Database,
    interval_seconds: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """The background loop `serve` runs when CLEANUP_INTERVAL_SECONDS is set. (`sleep`: tests
    run rounds without waiting.)"""
    while True:
        await sleep(interval_seconds)
        try:
            for entry in await run_cleanup(database):
                if entry.idle or entry.over_limit:
                    log.info("retention: %s", entry.describe(dry_run=False))
        except Exception:  # a failed round must not end the loop; the next one retries
            log.exception("retention cleanup failed; retrying in %s s", interval_seconds)
