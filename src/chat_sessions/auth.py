"""API key -> tenant; the admin token.

Keys are 256-bit random tokens, shown once, stored only as a SHA-256 hash: a key's hash is
its lookup key, so no stored value can be replayed as a key. `authenticate` runs before the
body is read, so a request without a valid key is a 401 whatever else is wrong.

A process remembers a resolved key for API_KEY_CACHE_SECONDS (1 s by default): under write
load on SQLite the look-up costs ~25 µs, a tenth of an append, because every commit makes the
reader start over from a cold page cache. A key revoked (or a tenant deleted or changed)
through this process's admin API is forgotten at once; through another process or the CLI,
within that time. 0 looks every request up.

`last_used_at` is written off the request path: a request only notes its key in this
process's `KeyUsage`, and a background task writes the keys noted, in one statement, every
API_KEY_USAGE_FLUSH_SECONDS (and once more at shutdown).

Failed authentications are counted per client address (the socket peer, or what a proxy
named in TRUSTED_PROXIES says in X-Forwarded-For: uvicorn's proxy-headers middleware, set up
by `serve`, puts it in the scope): past AUTH_FAILURES_PER_MINUTE a minute, a missing or bad key
or token answers 429 with Retry-After instead of 401. A valid key keeps working meanwhile, so
clients sharing an address with a guesser are not locked out.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy import bindparam, or_, select, update

from chat_sessions.db import Database, Prepared, Transaction
from chat_sessions.errors import NotFound, Unauthorized
from chat_sessions.models import api_keys, new_id, tenants, utcnow
from chat_sessions.ratelimit import RateLimiter

log = logging.getLogger(__name__)

KEY_PREFIX = "cs_"
DISPLAY_PREFIX_LENGTH = 10


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


async def create_api_key(tx: Transaction, *, tenant_id: str) -> tuple[dict[str, Any], str]:
    """A new key for the tenant: its row (without the hash) and the key, shown once."""
    key = generate_api_key()
    row = {
        "id": new_id(),
        "tenant_id": tenant_id,
        "prefix": key[:DISPLAY_PREFIX_LENGTH],
        "key_hash": hash_api_key(key),
        "created_at": utcnow(),
    }
    await tx.execute(api_keys.insert().values(**row))
    del row["key_hash"]
    return row, key


_RESOLVE = Prepared(
    select(
        api_keys.c.id,
        api_keys.c.tenant_id,
        api_keys.c.key_hash,
        tenants.c.rate_limit_per_minute,
    )
    .join(tenants, tenants.c.id == api_keys.c.tenant_id)
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)


class KeyUsage:
    """The keys this process has authenticated with since its last flush, and the flush that
    writes their `last_used_at` (the flush's time: a key's use shows within one interval).

    A request only adds its key id to a set; one UPDATE a flush marks every key noted, so
    reads stay reads and a busy key costs one write an interval, not one a request. A key
    whose value another process has already moved later is left alone."""

    BATCH = 500  # key ids a statement: far below either engine's limit of bound values

    _TOUCH = (
        update(api_keys)
        .where(
            api_keys.c.id.in_(bindparam("key_ids", expanding=True)),
            or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < bindparam("now")),
        )
        .values(last_used_at=bindparam("now"))
    )

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._seen: set[str] = set()

    def note(self, key_id: str) -> None:
        self._seen.add(key_id)

    async def flush(self, database: Database) -> int:
        """Write the keys noted so far; how many. On failure they stay noted for the next."""
        seen, self._seen = sorted(self._seen), set()
        if not seen:
            return 0
        try:
            async with database.transaction() as tx:
                now = self._clock()
                for start in range(0, len(seen), self.BATCH):
                    key_ids = seen[start : start + self.BATCH]
                    await tx.execute(self._TOUCH, {"key_ids": key_ids, "now": now})
        except BaseException:
            self._seen.update(seen)
            raise
        return len(seen)

    async def flush_periodically(
        self,
        database: Database,
        interval_seconds: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """The background task `serve` runs; a failed flush is retried at the next. (`sleep`:
        tests run rounds without waiting, as with `SearchIndexer`.)"""
        while True:
            await sleep(interval_seconds)
            try:
                await self.flush(database)
            except Exception:
                log.warning(
                    "writing api_keys.last_used_at failed; retrying in %s s",
                    interval_seconds,
                    exc_info=True,
                )


class KeyCache:
    """Resolved keys of one process: key hash -> (key id, tenant id, rate limit), for a while."""

    MAX_ENTRIES = 10_000  # past this, start over rather than track recency

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, tuple[str, str, int | None]]] = {}

    def get(self, key_hash: str) -> tuple[str, str, int | None] | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < self._clock():
            return None
        return entry[1]

    def put(self, key_hash: str, resolved: tuple[str, str, int | None]) -> None:
        if not self.seconds:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (self._clock() + self.seconds, resolved)

    def clear(self) -> None:
        self._entries.clear()


async def resolve_key(database: Database, key_hash: str) -> tuple[str, str, int | None]:
    """(key id, tenant id, rate limit) of a live key, or 401."""
    found = await database.read(_RESOLVE, {"key_hash": key_hash})
    # The index found the row by hash; compare again in constant time all the same.
    if not found or not hmac.compare_digest(found[0][2], key_hash):
        raise Unauthorized()
    key_id, tenant_id, _, rate_limit_per_minute = found[0]
    return key_id, tenant_id, rate_limit_per_minute


def refuse(connection: ASGIConnection[Any, Any, Any, Any], error: Unauthorized) -> NoReturn:
    """Count a failed authentication against the client's address; raise `error` (401), or
    429 once the address has failed AUTH_FAILURES_PER_MINUTE times this minute."""
    state = connection.app.state
    client = connection.scope.get("client")
    failures: RateLimiter = state.auth_failures
    limit = state.settings.auth_failures_per_minute or None
    failures.hit(client[0] if client else "unknown", limit, "failed authentications")
    raise error


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Resolve the request's API key to its tenant (scope state `tenant_id`), or 401 for a
    missing, unknown or revoked key; then count the request against the tenant's rate limit."""
    token = bearer_token(connection.headers.get("authorization"))
    if token is None:
        refuse(connection, Unauthorized())
    key_hash = hash_api_key(token)
    state = connection.app.state
    database: Database = state.database
    cache: KeyCache = state.key_cache
    resolved = cache.get(key_hash)
    if resolved is None:
        try:
            resolved = await resolve_key(database, key_hash)
        except Unauthorized as error:
            refuse(connection, error)
        cache.put(key_hash, resolved)
    key_id, tenant_id, rate_limit_per_minute = resolved
    state.key_usage.note(key_id)
    state.rate_limiter.hit(tenant_id, rate_limit_per_minute)
    connection.scope["state"]["tenant_id"] = tenant_id


async def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The admin token, or 401 (counted like a bad API key). Without ADMIN_TOKEN the admin
    routes are not registered at all (see `create_app`): every method answers 404."""
    configured = connection.app.state.settings.admin_token
    if configured is None:
        raise NotFound("Not Found")
    token = bearer_token(connection.headers.get("authorization"))
    if token is None or not hmac.compare_digest(
        token.encode(), configured.get_secret_value().encode()
    ):
        refuse(connection, Unauthorized("a valid admin token is required"))
