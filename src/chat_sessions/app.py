"""create_app(settings): the one place that knows every part."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, MediaType, Request, Response, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from chat_sessions.admin.routes import AdminController
from chat_sessions.auth import KeyCache, KeyUsage, authenticate
from chat_sessions.bodies import LENIENT_QUERY, StrictRequest, check_request
from chat_sessions.caller import Caller
from chat_sessions.conversations.errors import OPENAI_EXCEPTION_HANDLERS
from chat_sessions.conversations.routes import ConversationController
from chat_sessions.db import Database, Transaction, head_revision
from chat_sessions.errors import EXCEPTION_HANDLERS, problem, problem_responses
from chat_sessions.events.hub import EventHub
from chat_sessions.events.routes import follow_session
from chat_sessions.http import App
from chat_sessions.messages.routes import MessageController
from chat_sessions.messages.streaming import interrupt_idle_periodically
from chat_sessions.metrics import MetricsController, metrics_middleware
from chat_sessions.openapi import ClosedStructSchemaPlugin
from chat_sessions.ratelimit import RateLimiter
from chat_sessions.retention import cleanup_periodically
from chat_sessions.schema_gate import SchemaGate
from chat_sessions.search.backends import search_backend
from chat_sessions.search.routes import search
from chat_sessions.sessions.routes import SessionController
from chat_sessions.settings import Settings
from chat_sessions.stats.routes import get_stats
from chat_sessions.tool_calls.routes import ToolCallController
from chat_sessions.transfer.routes import TransferController
from chat_sessions.users.routes import UserTraitsController, erase_user_route

SAFE_METHODS = frozenset({"GET", "HEAD"})
RETRY_SOON = {"Retry-After": "1"}


def is_write(request: Request[Any, Any, Any]) -> bool:
    """GET requests only read, and say so: on SQLite they never wait for the write lock."""
    return request.method not in SAFE_METHODS


async def provide_transaction(
    state: State, request: Request[Any, Any, Any]
) -> AsyncGenerator[Transaction, None]:
    """For admin routes: the request's transaction (see `provide_caller`)."""
    async with state.database.transaction(write=is_write(request)) as tx:
        yield tx
    # An admin change may revoke a key, delete a tenant or change its limits: once it is
    # committed, this process resolves every key afresh (see auth.KeyCache).
    if is_write(request):
        state.key_cache.clear()


async def provide_caller(
    state: State, request: Request[Any, Any, Any]
) -> AsyncGenerator[Caller, None]:
    """For tenant routes: the request's transaction, the tenant its API key names, the
    settings - one dependency (see `Caller`).

    The transaction is committed after the handler returns and before the response is sent:
    a failed commit is an error response, never a lost acknowledged write. Litestar throws
    the handler's exception in at the `yield`: then it is rolled back. (Begun and finished
    here rather than through `Database.transaction`: the hot path, and each context-manager
    layer costs a few µs.)"""
    database: Database = state.database
    tx = database.begin(write=is_write(request))
    try:
        yield Caller(tx=tx, tenant_id=request.scope["state"]["tenant_id"], settings=state.settings)
    except BaseException:
        await tx.finish(commit=False)
        raise
    await tx.finish(commit=True)
    database.announce_changes(tx)  # to the event streams, now that it is committed


async def check_tenant_request(request: Request[Any, Any, Any]) -> None:
    """Tenant routes: the API key first, so a request without one is a 401 whatever else is
    wrong with it, then the request's shape (`check_request`). (A hook rather than a guard:
    Litestar copies the route handler on every guard call.) Before both: no tenant route
    serves on an old schema."""
    state = request.app.state
    await state.schema_gate.check(state.database)
    await authenticate(request)
    await check_request(request)


@get(
    "/health",
    tags=["operations"],
    summary="200 while the process serves",
    responses=problem_responses(400),
)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    tags=["operations"],
    summary="200 when the database answers at the latest schema",
    responses=problem_responses(400, 503),
)
async def ready(state: State) -> Response[dict[str, Any]]:
    database: Database = state.database
    try:
        revision = await database.schema_revision()
    except Exception:  # any failure to reach the database means "not ready"
        logging.getLogger("chat_sessions").warning("readiness check: database unreachable")
        return problem(
            503, "Service Unavailable", "the database does not answer", headers=RETRY_SOON
        )
    if revision != state.head_revision:
        return problem(
            503,
            "Service Unavailable",
            f"the database schema is at {revision or 'nothing'}, not {state.head_revision}: "
            "run `make migrate`",
            headers=RETRY_SOON,
        )
    return Response({"status": "ready", "schema": revision}, media_type=MediaType.JSON)


def create_app(settings: Settings | None = None, database: Database | None = None) -> Litestar:
    """The application. Tests hand in their own settings and database (already migrated)."""
    settings = settings or Settings()
    owns_database = database is None
    database = database or Database(settings)
    key_usage = KeyUsage()
    searcher = search_backend(database)
    event_hub = EventHub(database, settings)
    head = head_revision()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await database.start()
        await event_hub.start()
        # Start-up leaves ~120,000 long-lived objects (routes, schemas, SQLAlchemy's caches);
        # moved out of the collector's reach, a full collection no longer walks them all
        # (measured: append p99 70 ms -> 14 ms under load).
        gc.collect()
        gc.freeze()
        background = [
            asyncio.create_task(
                key_usage.flush_periodically(database, settings.api_key_usage_flush_seconds)
            )
        ]
        background.append(asyncio.create_task(searcher.run_in_background()))
        background.append(
            asyncio.create_task(interrupt_idle_periodically(database, settings.stream_idle_seconds))
        )
        if settings.cleanup_interval_seconds:
            background.append(
                asyncio.create_task(
                    cleanup_periodically(database, settings.cleanup_interval_seconds)
                )
            )
        try:
            yield
        finally:
            await event_hub.stop()  # ends the streams still open (see events/hub.py)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            try:
                await key_usage.flush(database)  # the keys seen since the last flush
            except Exception:  # a shutdown does not fail for bookkeeping
                logging.getLogger("chat_sessions").warning("last_used_at not written at shutdown")
            if owns_database:
                await database.stop()

    tenant_api = Router(
        path="/v1",
        route_handlers=[
            SessionController,
            MessageController,
            ToolCallController,
            TransferController,
            search,
            get_stats,
            follow_session,
            erase_user_route,
            UserTraitsController,
        ],
        before_request=check_tenant_request,
        dependencies={"caller": Provide(provide_caller)},
        security=[{"bearer": []}],
    )
    # OpenAI's Conversations API: a tenant router like the one above (same hook, same
    # caller), whose errors, the hook's 401 included, are written in OpenAI's shape.
    conversations_api = Router(
        path="/v1",
        route_handlers=[ConversationController],
        before_request=check_tenant_request,
        dependencies={"caller": Provide(provide_caller)},
        security=[{"bearer": []}],
        exception_handlers=OPENAI_EXCEPTION_HANDLERS,
        # API.md: these routes accept, and ignore, query parameters OpenAI's SDKs send that
        # they do not implement (bodies.LENIENT_QUERY, the strict query check's opt-out).
        opt={LENIENT_QUERY: True},
    )
    # Each router names its own `before_request`, and none is set on the app: Litestar runs
    # only the closest layer's hook, so an app-level one would run where no router sets one
    # and silently not where one does. Tenant routes: check_tenant_request (schema, API key,
    # then check_request); admin routes: check_request, after their guard (auth.admin_guard);
    # operations and OpenAPI routes: check_request (tests/test_assembly.py checks every route).
    admin_api = Router(
        path="/v1",
        route_handlers=[AdminController],
        before_request=check_request,
        security=[{"bearer": []}],
    )
    operations = Router(
        path="/", route_handlers=[health, ready, MetricsController], before_request=check_request
    )
    return App(
        # Without ADMIN_TOKEN the admin routes do not exist: 404 for every method, not 405.
        route_handlers=[
            tenant_api,
            conversations_api,
            *([admin_api] if settings.admin_token else []),
            operations,
        ],
        dependencies={
            "tx": Provide(provide_transaction),
        },
        request_class=StrictRequest,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[metrics_middleware],
        plugins=[ClosedStructSchemaPlugin()],
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "database": database,
                "head_revision": head,
                "schema_gate": SchemaGate(head),
                "rate_limiter": RateLimiter(),
                "auth_failures": RateLimiter(),
                "key_cache": KeyCache(settings.api_key_cache_seconds),
                "key_usage": key_usage,
                "search": searcher,
                "event_hub": event_hub,
                "handler_shapes": {},  # bodies.shape_of
            }
        ),
        openapi_config=OpenAPIConfig(
            title="chat-sessions",
            version="1.1.0",  # the API.md contract this serves
            description="Multi-tenant session store for chatbots and agents.",
            # Litestar adds the document's routes to this router; the hook is ours.
            # The document's own routes stay out of it, as Litestar's default router keeps them.
            openapi_router=Router(
                path="/schema",
                route_handlers=[],
                before_request=check_request,
                include_in_schema=False,
            ),
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http", scheme="bearer", description="tenant API key or admin token"
                    )
                }
            ),
        ),
        logging_config=LoggingConfig(
            root={"level": settings.log_level.upper(), "handlers": ["queue_listener"]},
            log_exceptions="never",
        ),
        signature_namespace={"Transaction": Transaction, "Settings": Settings, "Caller": Caller},
        debug=False,
    )
