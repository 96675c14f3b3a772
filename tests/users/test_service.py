"""The end-users service called directly: the rules that live there (a user without a row reads
as empty traits at version 0; the first change makes the row; no change, no write; erasure
takes the row), without HTTP."""

from __future__ import annotations

import pytest

from chat_sessions.db import Database
from chat_sessions.errors import PreconditionFailed
from chat_sessions.users import service
from support import count_rows, make_settings

MAX_JSON = make_settings().max_json_bytes


async def test_the_first_change_makes_the_row_and_later_ones_bump_its_version(
    database: Database, tenant_id: str
) -> None:
    async with database.transaction() as tx:
        empty = await service.get_user_traits(tx, tenant_id=tenant_id, user_id="u")
        unchanged = await service.change_user_traits(
            tx,
            tenant_id=tenant_id,
            user_id="u",
            traits={"nothing": None},
            merge=True,
            expected_versions=frozenset({0}),
            max_json_bytes=MAX_JSON,
        )
    assert empty == unchanged
    assert (empty.traits, empty.version, empty.updated_at) == ({}, 0, None)
    assert await count_rows(database, "end_users") == 0

    async with database.transaction() as tx:
        first = await service.change_user_traits(
            tx,
            tenant_id=tenant_id,
            user_id="u",
            traits={"a": {"b": 1}},
            merge=True,
            expected_versions=frozenset({0}),
            max_json_bytes=MAX_JSON,
        )
        second = await service.change_user_traits(
            tx,
            tenant_id=tenant_id,
            user_id="u",
            traits={"c": 2},
            merge=False,
            expected_versions=None,
            max_json_bytes=MAX_JSON,
        )
        with pytest.raises(PreconditionFailed):
            await service.change_user_traits(
                tx,
                tenant_id=tenant_id,
                user_id="u",
                traits={"d": 3},
                merge=True,
                expected_versions=frozenset({1}),
                max_json_bytes=MAX_JSON,
            )
    assert (first.traits, first.version) == ({"a": {"b": 1}}, 1)
    assert (second.traits, second.version) == ({"c": 2}, 2)
    assert second.updated_at is not None and first.updated_at is not None
    assert second.updated_at >= first.updated_at


async def test_erasure_deletes_the_users_traits_row(database: Database, tenant_id: str) -> None:
    async with database.transaction() as tx:
        for user_id in ("gone", "kept"):
            await service.change_user_traits(
                tx,
                tenant_id=tenant_id,
                user_id=user_id,
                traits={"x": 1},
                merge=False,
                expected_versions=None,
                max_json_bytes=MAX_JSON,
            )
        assert await service.erase_user(tx, tenant_id=tenant_id, user_id="gone") == 0
        gone = await service.get_user_traits(tx, tenant_id=tenant_id, user_id="gone")
        kept = await service.get_user_traits(tx, tenant_id=tenant_id, user_id="kept")
    assert gone.version == 0
    assert kept.version == 1
