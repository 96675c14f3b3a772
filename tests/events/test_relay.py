"""The PostgreSQL relay's payloads: many changes in as few NOTIFYs as fit, each under the 8,000
bytes PostgreSQL takes, read back as they were sent."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from chat_sessions.db.transaction import SessionChange
from chat_sessions.events.relay import CHANNEL, MAX_PAYLOAD_BYTES, decode_payload, encode_batches

SESSION_ID = "01a24a4e-0f63-71b0-b765-e97e87ca6a42"


def many_changes(count: int) -> list[SessionChange]:
    return [
        SessionChange(SESSION_ID[:-6] + f"{n:06d}", n if n % 3 == 0 else None) for n in range(count)
    ]


def test_changes_travel_in_payloads_under_the_limit_and_come_back_alike() -> None:
    changes = many_changes(1_000)
    batches = encode_batches(changes)
    assert len(batches) > 1
    assert all(len(batch.encode()) <= MAX_PAYLOAD_BYTES for batch in batches)
    assert [change for batch in batches for change in decode_payload(batch)] == changes


def test_no_changes_send_nothing() -> None:
    assert encode_batches([]) == []


@pytest.mark.postgres_only
async def test_postgresql_takes_the_fullest_payload(postgres_url: str) -> None:
    full = max(encode_batches(many_changes(1_000)), key=len)
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(dsn)
    heard: list[str] = []
    try:
        await connection.add_listener(CHANNEL, lambda *args: heard.append(args[-1]))
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, full)
        await connection.execute("SELECT 1")  # the notification arrives with this answer
    finally:
        await connection.close()
    assert heard == [full]
