"""Seeding the database through the API, as a client would: tenants, sessions, and messages
in batches of BATCH_SEED."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import payloads
from plan import BRANCH_EVERY, PAGE, Plan

BATCH_SEED = 500  # messages per seeding request: the API's maximum
# Messages with parts (~2.4 KB each) per seeding request: well under the 1 MiB body limit.
BATCH_SEED_PARTS = 200


async def _limited(tasks: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(task: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await task()

    return list(await asyncio.gather(*(one(task) for task in tasks)))


def _ok(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response


class Api:
    """The seeding client: plain API calls, as a tenant or as the operator."""

    def __init__(self, base: str, admin_token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=16)
        )
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    async def close(self) -> None:
        await self.client.aclose()

    async def tenant(self, name: str) -> str:
        response = await self.client.post(
            "/v1/admin/tenants", json={"name": name}, headers=self.admin
        )
        return str(_ok(response, 201).json()["api_key"])

    async def session(self, key: str, i: int | str) -> str:
        response = await self.client.post(
            "/v1/sessions", json=payloads.session(i), headers={"Authorization": f"Bearer {key}"}
        )
        return str(_ok(response, 201).json()["id"])

    async def append(
        self, key: str, session_id: str, count: int, start: int = 0, *, parts: bool = False
    ) -> None:
        """`count` messages, plain ones or (`parts`) ones with content parts and an item."""
        auth = {"Authorization": f"Bearer {key}"}
        make, per_request = (
            (payloads.parts_message, BATCH_SEED_PARTS) if parts else (payloads.message, BATCH_SEED)
        )
        for offset in range(0, count, per_request):
            n = min(per_request, count - offset)
            response = await self.client.post(
                f"/v1/sessions/{session_id}/messages/batch",
                content=payloads.encode(payloads.batch(n, start + offset, make)),
                headers={**auth, "Content-Type": "application/json"},
            )
            _ok(response, 201)

    async def branched(self, key: str, session_id: str, count: int, every: int) -> None:
        """`count` messages, each `every`-th a regenerated answer: another child of the
        message before's parent (the others in batches, following the head)."""
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        url = f"/v1/sessions/{session_id}/messages"
        for start in range(0, count, every):
            run = min(every - 1, count - start)
            batch = payloads.batch(run, start, payloads.message)
            _ok(
                await self.client.post(
                    f"{url}/batch", content=payloads.encode(batch), headers=auth
                ),
                201,
            )
            if start + every <= count:
                regenerated = {
                    **payloads.message(start + every - 1),
                    "parent_seq": start + every - 2,
                }
                _ok(
                    await self.client.post(url, content=payloads.encode(regenerated), headers=auth),
                    201,
                )

    async def conversation(self, key: str, session_id: str, count: int) -> None:
        """`count` messages of a chat, user and assistant in turn, the user first, as a chat
        turn appends them (their counters of the same width: payloads.counter)."""
        messages = [payloads.message(payloads.counter(0, k), k) for k in range(count)]
        response = await self.client.post(
            f"/v1/sessions/{session_id}/messages/batch",
            content=payloads.encode({"messages": messages}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        _ok(response, 201)

    async def streamed_answer(self, key: str, i: int | str) -> str:
        """A session holding an in-progress answer; the path its deltas go to."""
        session_id = await self.session(key, f"stream-{i}")
        response = await self.client.post(
            f"/v1/sessions/{session_id}/messages",
            json=payloads.STREAMED_ANSWER,
            headers={"Authorization": f"Bearer {key}"},
        )
        message_id = _ok(response, 201).json()["id"]
        return f"/v1/sessions/{session_id}/messages/{message_id}/deltas"

    async def message_total(self) -> int:
        total, cursor = 0, None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get("/v1/admin/tenants", params=params, headers=self.admin)
            page = _ok(response, 200).json()
            total += sum(int(row["message_count"]) for row in page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return total

    async def cursor_for_page(self, key: str, page: int) -> str:
        """The cursor that opens page `page` (1-based) of the list, by walking next_cursor."""
        cursor: str | None = None
        auth = {"Authorization": f"Bearer {key}"}
        for _ in range(page - 1):
            params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get("/v1/sessions", params=params, headers=auth)
            cursor = _ok(response, 200).json()["next_cursor"]
            if cursor is None:
                raise RuntimeError(f"the list ended before page {page}")
        assert cursor is not None
        return cursor


@dataclass
class Fixture:
    main_key: str
    list_key: str
    hot_session: str  # holds plan.hot_messages messages: read, got, forked
    branched_session: str  # as many, a branch every BRANCH_EVERY: read
    parts_session: str  # holds plan.parts_messages messages with parts and an item: read
    append_session: str  # appends land here (one session: the contended case)
    parts_append_session: str  # appends of messages with parts and an item land here
    batch_session: str
    chat_sessions: list[str]  # plan.chat_history messages each: the chat turns go round them
    chat_check_session: str  # the same, for the chat turn's checks
    delta_one: str  # the deltas path of an in-progress answer: every connection sends there
    delta_many: list[str]  # plan.streamed_answers such paths, a session each


async def seed_small(api: Api, plan: Plan) -> Fixture:
    started = time.monotonic()
    main_key = await api.tenant("bench-main")
    list_key = await api.tenant("bench-list")
    hot = await api.session(main_key, "hot")
    await api.append(main_key, hot, plan.hot_messages)
    branched = await api.session(main_key, "branched")
    await api.branched(main_key, branched, plan.hot_messages, BRANCH_EVERY)
    parts = await api.session(main_key, "parts")
    await api.append(main_key, parts, plan.parts_messages, parts=True)
    append_session = await api.session(main_key, "append")
    parts_append_session = await api.session(main_key, "append-parts")
    batch_session = await api.session(main_key, "batch")

    async def listed(i: int) -> None:
        session_id = await api.session(list_key, i)
        await api.append(list_key, session_id, 1, start=i)

    await _limited([functools.partial(listed, i) for i in range(plan.list_sessions)], 8)

    async def chat(i: int) -> str:
        session_id = await api.session(main_key, f"chat-{i}")
        await api.conversation(main_key, session_id, plan.chat_history)
        return session_id

    chats = await _limited([functools.partial(chat, i) for i in range(plan.chat_sessions + 1)], 8)
    streams = await _limited(
        [functools.partial(api.streamed_answer, main_key, i) for i in range(plan.streamed_answers)],
        8,
    )
    delta_one = await api.streamed_answer(main_key, "one")
    took = time.monotonic() - started
    print(f"  seeded {plan.small_total:,} messages in {took:.1f} s", flush=True)
    return Fixture(
        main_key,
        list_key,
        hot,
        branched,
        parts,
        append_session,
        parts_append_session,
        batch_session,
        chat_sessions=chats[1:],
        chat_check_session=chats[0],
        delta_one=delta_one,
        delta_many=streams,
    )


async def seed_big(api: Api, plan: Plan, have: int) -> None:
    """Grow the database to plan.big_total messages in filler tenants and sessions."""
    started = time.monotonic()
    missing = plan.big_total - have
    sessions = plan.filler_tenants * plan.filler_sessions
    per_session, extra = divmod(max(0, missing), sessions)
    jobs: list[Callable[[], Awaitable[Any]]] = []
    for t in range(plan.filler_tenants):
        key = await api.tenant(f"bench-filler-{t}")
        for s in range(plan.filler_sessions):
            count = per_session + (1 if t * plan.filler_sessions + s < extra else 0)

            async def fill(key: str = key, i: str = f"{t}-{s}", count: int = count) -> None:
                session_id = await api.session(key, i)
                await api.append(key, session_id, count)

            jobs.append(fill)
    await _limited(jobs, 4)
    took = time.monotonic() - started
    print(
        f"  seeded {missing:,} more messages in {took:.1f} s ({missing / took:,.0f}/s)",
        flush=True,
    )


async def prepare_small(base: str, admin_token: str, plan: Plan) -> tuple[Fixture, int, str]:
    """Seed the small database; its message total and the deep page's cursor."""
    api = Api(base, admin_token)
    try:
        fx = await seed_small(api, plan)
        total = await api.message_total()
        return fx, total, await api.cursor_for_page(fx.list_key, plan.deep_page)
    finally:
        await api.close()


async def grow(base: str, admin_token: str, plan: Plan, have: int) -> int:
    api = Api(base, admin_token)
    try:
        await seed_big(api, plan, have)
        return await api.message_total()
    finally:
        await api.close()


async def deep_cursor(base: str, admin_token: str, fx: Fixture, plan: Plan) -> str:
    api = Api(base, admin_token)
    try:
        return await api.cursor_for_page(fx.list_key, plan.deep_page)
    finally:
        await api.close()
