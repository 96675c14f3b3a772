"""The `chat-sessions` command: serve, migrate, and the operator's tenant and key chores."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pydantic
from sqlalchemy.exc import SQLAlchemyError

from chat_sessions.admin import service as admin
from chat_sessions.admin.schemas import TenantCreate
from chat_sessions.db import Database, Transaction
from chat_sessions.errors import DomainError
from chat_sessions.messages import history as message_history
from chat_sessions.messages.branches import children_by_parent
from chat_sessions.messages.parts import TEXT_TYPES, text_of
from chat_sessions.retention import run_cleanup
from chat_sessions.sessions import listing as session_listing
from chat_sessions.sessions import service as session_service
from chat_sessions.settings import Settings
from chat_sessions.startup_errors import describe_database_error, describe_settings_error

DEMO_TENANT = "demo"


def _run_with_database(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        database = Database(settings)
        await database.start()
        try:
            return await work(database)
        finally:
            await database.stop()

    return asyncio.run(run())


def _run_in_transaction(settings: Settings, work: Callable[[Transaction], Awaitable[Any]]) -> Any:
    async def in_transaction(database: Database) -> Any:
        async with database.transaction() as tx:
            return await work(tx)

    return _run_with_database(settings, in_transaction)


def _check_database(settings: Settings) -> None:
    """Open the database and run one statement, so that `serve` fails at once, in one line,
    on a database it cannot use (rather than in uvicorn's start-up, with a traceback)."""

    async def ping(database: Database) -> None:
        async with database.transaction() as tx:
            await admin.ping(tx)

    _run_with_database(settings, ping)


def _migrate(settings: Settings) -> None:
    """`alembic upgrade head` against the configured database."""
    _run_with_database(settings, lambda database: database.migrate())


def _create_demo_tenant_if_none(settings: Settings) -> None:
    """On a database without tenants, create `demo` and print its key: the README's curl
    walk-through works at once."""

    async def work(tx: Transaction) -> str | None:
        rows, _ = await admin.list_tenants(tx, limit=1, cursor=None)
        if rows:
            return None
        return (await admin.create_tenant(tx, TenantCreate(name=DEMO_TENANT))).api_key

    key = _run_in_transaction(settings, work)
    if key is not None:
        print(f"Created tenant '{DEMO_TENANT}'. Its API key (shown once, keep it):\n\n  {key}\n")
        print(f"  export KEY={key}   # for the README's curl walk-through\n", flush=True)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from chat_sessions.server import HTTP_PROTOCOL, log_config

    if args.migrate:
        _migrate(settings)
    else:
        _check_database(settings)
    if args.demo_tenant:
        _create_demo_tenant_if_none(settings)
    workers = settings.workers
    if workers > 1 and settings.is_sqlite:
        print(
            "warning: WORKERS>1 on SQLite: processes take turns at one write lock; "
            "use PostgreSQL (DATABASE_URL) to scale out",
            file=sys.stderr,
        )
    print(f"chat-sessions serving on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(
        "chat_sessions.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http=HTTP_PROTOCOL,  # httptools, with REQUEST_READ_TIMEOUT_SECONDS
        log_config=log_config(),
        log_level=settings.log_level,
        access_log=settings.access_log,
        # X-Forwarded-For names the client only when the peer is a trusted proxy.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> None:
    _migrate(settings)
    print("database is at the latest migration")


def cmd_tenants_create(args: argparse.Namespace, settings: Settings) -> None:
    fields = {
        "name": args.name,
        "max_sessions": args.max_sessions,
        "retention_days": args.retention_days,
        "rate_limit_per_minute": args.rate_limit,
    }
    data = msgspec.convert(fields, TenantCreate)
    created = _run_in_transaction(settings, lambda tx: admin.create_tenant(tx, data))
    print(f"tenant_id: {created.tenant.id}\napi_key:   {created.api_key}")


def cmd_tenants_list(_: argparse.Namespace, settings: Settings) -> None:
    async def work(tx: Transaction) -> list[Any]:
        found: list[Any] = []
        cursor = None
        while True:
            rows, cursor = await admin.list_tenants(tx, limit=100, cursor=cursor)
            found += rows
            if cursor is None:
                return found

    rows = _run_in_transaction(settings, work)
    print(f"{'id':36}  {'name':24}  {'sessions':>8}  {'messages':>9}")
    for row in rows:
        print(f"{row.id:36}  {row.name:24}  {row.session_count:>8}  {row.message_count:>9}")


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    created = _run_in_transaction(settings, lambda tx: admin.add_key(tx, args.tenant))
    print(f"key_id:  {created.id}\napi_key: {created.api_key}")


def cmd_keys_list(args: argparse.Namespace, settings: Settings) -> None:
    rows = _run_in_transaction(settings, lambda tx: admin.list_keys(tx, args.tenant))
    print(f"{'id':36}  {'prefix':10}  {'created_at':25}  {'last_used_at':25}  revoked_at")
    for row in rows:
        times = [_timestamp(row.created_at), _timestamp(row.last_used_at)]
        print(
            f"{row.id:36}  {row.prefix:10}  {times[0]:25}  {times[1]:25}  "
            + _timestamp(row.revoked_at)
        )


def _timestamp(value: Any) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    _run_in_transaction(settings, lambda tx: admin.revoke_key(tx, key_id=args.key_id))
    print(f"revoked {args.key_id}")


def cmd_cleanup(args: argparse.Namespace, settings: Settings) -> None:
    results = _run_with_database(
        settings, lambda database: run_cleanup(database, dry_run=args.dry_run)
    )
    if not results:
        print("no tenant has max_sessions or retention_days set: nothing to do")
    for entry in results:
        print(entry.describe(dry_run=args.dry_run))


def cmd_sessions_list(args: argparse.Namespace, settings: Settings) -> None:
    async def work(tx: Transaction) -> list[Any]:
        tenant = await admin.get_tenant(tx, args.tenant)
        rows, _ = await session_listing.list_sessions(
            tx,
            tenant_id=tenant.id,
            user_id=args.user,
            status=None,
            limit=args.limit,
            cursor=None,
            external_id_prefix=args.external_id_prefix,
        )
        return rows

    rows = _run_in_transaction(settings, work)
    print(
        f"{'id':36}  {'user_id':16}  {'external_id':24}  {'updated_at':20}  {'messages':>8}  title"
    )
    for row in rows:
        updated = row.updated_at.strftime("%Y-%m-%d %H:%M:%S")
        user = row.user_id or "-"
        external = row.external_id or "-"
        print(
            f"{row.id:36}  {user:16}  {external:24}  {updated:20}  {row.message_count:>8}  "
            f"{row.title or ''}"
        )


def cmd_sessions_show(args: argparse.Namespace, settings: Settings) -> None:
    async def work(tx: Transaction) -> tuple[Any, list[Any], dict[int, list[int]]]:
        tenant_id = await admin.tenant_of_session(tx, args.session_id)
        children = await children_by_parent(tx, session_id=args.session_id)
        session = await session_service.get_session(
            tx, tenant_id=tenant_id, session_id=args.session_id
        )
        transcript: list[Any] = []
        cursor = None
        while True:
            found, cursor = await message_history.list_messages(
                tx,
                tenant_id=tenant_id,
                session_id=args.session_id,
                order="asc",
                after_seq=None,
                before_seq=None,
                role=None,
                limit=1000,
                cursor=cursor,
            )
            transcript += found
            if cursor is None:
                return session, transcript, children

    session, transcript, children = _run_in_transaction(settings, work)
    print(f"session {session.id}  user {session.user_id or '-'}  status {session.status}")
    print(f"external_id {session.external_id or '-'}")
    print(f"title   {session.title or '-'}")
    print(f"traits  {msgspec.json.encode(session.traits).decode()}")
    print(f"{session.message_count} messages, last activity {session.updated_at:%Y-%m-%d %H:%M:%S}")
    if any(len(siblings) > 1 for siblings in children.values()):
        print(f"the active branch, to seq {session.head_seq}; [i/n]: other versions exist")
    for message in transcript:
        siblings = children.get(message.parent_seq, [])
        version = ""
        if len(siblings) > 1:
            others = ", ".join(str(seq) for seq in siblings if seq != message.seq)
            version = f"  [{siblings.index(message.seq) + 1}/{len(siblings)}, others: {others}]"
        print(f"\n[{message.seq}] {message.role}  {message.created_at:%Y-%m-%d %H:%M:%S}{version}")
        if isinstance(message.content, str):
            if message.content:
                print(message.content)
        else:
            if text := text_of(message.content):
                print(text)
            for part in message.content:
                if part["type"] not in TEXT_TYPES:
                    print(f"  [{part['type']} part]")
        if message.item is not None:
            print(f"  [item: {message.item.get('type', 'untyped')}]")
        for call in message.tool_calls or ():
            function = call.get("function") or {}
            arguments = function.get("arguments", "")
            print(f"  -> tool call {call.get('id')}: {function.get('name')}({arguments})")
        if message.tool_call_id:
            print(f"  (result of tool call {message.tool_call_id})")


def cmd_sessions_delete(args: argparse.Namespace, settings: Settings) -> None:
    async def work(tx: Transaction) -> None:
        tenant_id = await admin.tenant_of_session(tx, args.session_id)
        await session_service.delete_session(tx, tenant_id=tenant_id, session_id=args.session_id)

    _run_in_transaction(settings, work)
    print(f"deleted session {args.session_id} with its messages and tool calls")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-sessions",
        description="Session store for chatbots and agents. Settings come from the "
        "environment and .env (see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve HTTP on HOST:PORT")
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.add_argument(
        "--demo-tenant", action="store_true", help="create tenant 'demo' if there is none"
    )
    serve.set_defaults(func=cmd_serve)

    commands.add_parser("migrate", help="alembic upgrade head").set_defaults(func=cmd_migrate)

    tenants = commands.add_parser("tenants", help="create or list tenants").add_subparsers(
        dest="action", required=True
    )
    create = tenants.add_parser("create", help="create a tenant; prints its id and API key")
    create.add_argument("name")
    create.add_argument("--max-sessions", type=int)
    create.add_argument("--retention-days", type=int)
    create.add_argument("--rate-limit", type=int, help="requests a minute")
    create.set_defaults(func=cmd_tenants_create)
    tenants.add_parser("list", help="list tenants with counts").set_defaults(func=cmd_tenants_list)

    keys = commands.add_parser("keys", help="create, list or revoke API keys").add_subparsers(
        dest="action", required=True
    )
    key_create = keys.add_parser("create", help="a new key for TENANT (id or name)")
    key_create.add_argument("tenant")
    key_create.set_defaults(func=cmd_keys_create)
    key_list = keys.add_parser(
        "list", help="TENANT's keys (id or name): prefix, created, last used, revoked"
    )
    key_list.add_argument("tenant")
    key_list.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key: it answers 401 from then on")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)

    cleanup = commands.add_parser(
        "cleanup", help="apply every tenant's max_sessions and retention_days"
    )
    cleanup.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted; delete nothing"
    )
    cleanup.set_defaults(func=cmd_cleanup)

    operator = commands.add_parser("sessions", help="an operator's look at sessions")
    session_commands = operator.add_subparsers(dest="action", required=True)
    listing = session_commands.add_parser("list", help="a tenant's sessions, newest first")
    listing.add_argument("--tenant", required=True, help="tenant id or name")
    listing.add_argument("--user", help="only this end-user's sessions")
    listing.add_argument(
        "--external-id-prefix",
        metavar="PREFIX",
        help="only the sessions whose external_id starts with PREFIX, in external_id order",
    )
    listing.add_argument("--limit", type=int, default=50, choices=range(1, 101), metavar="1..100")
    listing.set_defaults(func=cmd_sessions_list)
    show = session_commands.add_parser("show", help="a session's transcript")
    show.add_argument("session_id")
    show.set_defaults(func=cmd_sessions_show)
    remove = session_commands.add_parser("delete", help="delete a session and all under it")
    remove.add_argument("session_id")
    remove.set_defaults(func=cmd_sessions_delete)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except pydantic.ValidationError as error:
        print(describe_settings_error(error), file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    # Alembic's own start-up chatter is noise to an operator; its "Running upgrade" lines stay.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
    try:
        args.func(args, settings)
    except DomainError as error:
        print(f"error: {error.detail}", file=sys.stderr)
        raise SystemExit(1) from None
    except (OSError, SQLAlchemyError) as error:  # a database that cannot be opened or reached
        print(describe_database_error(settings, error), file=sys.stderr)
        raise SystemExit(1) from None
    except (ValueError, msgspec.ValidationError) as error:  # bad settings or arguments
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
