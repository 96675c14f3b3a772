"""The sessions service called directly, in a transaction of the `database` fixture: the rules
that live there (JSON Merge Patch of traits, keyset pages and their cursors), without HTTP."""

from __future__ import annotations

import pytest

from chat_sessions.db import Database
from chat_sessions.errors import BadRequest
from chat_sessions.sessions import listing, service
from chat_sessions.sessions.schemas import SessionCreate, SessionUpdate
from support import make_settings

MAX_JSON = make_settings().max_json_bytes


async def test_a_traits_patch_merges_nested_objects_and_null_removes_a_key(
    database: Database, tenant_id: str
) -> None:
    traits = {"plan": "pro", "prefs": {"lang": "en", "tz": "UTC"}, "gone": 1}
    async with database.transaction() as tx:
        created, _ = await service.create_session(
            tx, tenant_id=tenant_id, data=SessionCreate(traits=traits), max_json_bytes=MAX_JSON
        )
        patch = SessionUpdate(traits={"prefs": {"tz": None, "theme": "dark"}, "gone": None})
        updated = await service.update_session(
            tx,
            tenant_id=tenant_id,
            session_id=created.id,
            changes=patch,
            expected_versions=None,
            max_json_bytes=MAX_JSON,
        )
    assert updated.traits == {"plan": "pro", "prefs": {"lang": "en", "theme": "dark"}}
    assert updated.version == created.version + 1


async def test_pages_of_sessions_neither_repeat_nor_skip_and_a_cursor_keeps_its_filter(
    database: Database, tenant_id: str
) -> None:
    async with database.transaction() as tx:
        for n in range(5):
            await service.create_session(
                tx,
                tenant_id=tenant_id,
                data=SessionCreate(user_id=f"u{n % 2}"),
                max_json_bytes=MAX_JSON,
            )
    seen: list[str] = []
    cursor = None
    async with database.transaction(write=False) as tx:
        while True:
            rows, cursor = await listing.list_sessions(
                tx, tenant_id=tenant_id, user_id=None, status=None, limit=2, cursor=cursor
            )
            seen += [row.id for row in rows]
            if cursor is None:
                break
            with pytest.raises(BadRequest):  # a cursor of the unfiltered list, on a filtered one
                await listing.list_sessions(
                    tx, tenant_id=tenant_id, user_id="u0", status=None, limit=2, cursor=cursor
                )
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("a", "b"),
        ("app/u1/", "app/u10"),  # "/" + 1 is "0"
        ("a%", "a&"),
        ("a\U0010ffff", "b"),  # the highest character goes; the one before is raised
        ("a\U0010ffff\U0010ffff", "b"),
        ("\U0010ffff", None),  # nothing is above every id that starts with it
        ("\ud7ff", "\ue000"),  # surrogates are skipped: no stored text holds one
        ("é", "ê"),
    ],
)
def test_a_prefix_range_ends_at_the_least_string_above_every_string_it_starts(
    prefix: str, end: str | None
) -> None:
    assert listing.prefix_end(prefix) == end
    continuations = ["", "x", "\x7f", "\U0010ffff", "\U0010ffffzz", "é😀"]
    for id_ in (prefix + rest for rest in continuations):
        assert id_ >= prefix
        assert end is None or id_ < end  # code point order, as both engines compare


async def test_get_or_create_answers_the_existing_session_and_whether_it_made_one(
    database: Database, tenant_id: str
) -> None:
    async with database.transaction() as tx:
        made, created = await service.create_session(
            tx,
            tenant_id=tenant_id,
            data=SessionCreate(external_id="e-1", title="first"),
            max_json_bytes=MAX_JSON,
        )
        found, again = await service.create_session(
            tx,
            tenant_id=tenant_id,
            data=SessionCreate(external_id="e-1", title="second", traits={"x": 1}),
            max_json_bytes=MAX_JSON,
        )
        rows, cursor = await listing.list_sessions(
            tx,
            tenant_id=tenant_id,
            user_id=None,
            status=None,
            limit=10,
            cursor=None,
            external_id="e-1",
        )
    assert (created, again) == (True, False)
    assert found == made
    assert [row.id for row in rows] == [made.id]
    assert cursor is None
