"""Preconditions are HTTP, read in the routes (preconditions.py); the services take plain
values: the versions an `If-Match` accepts, and the idempotency key (issue 11, item 4)."""

from __future__ import annotations

import pytest
from litestar import Request
from sqlalchemy import text

from chat_sessions.db import Database
from chat_sessions.errors import BadRequest, PreconditionFailed
from chat_sessions.preconditions import etag, idempotency_key, if_match_versions
from chat_sessions.sessions import service
from chat_sessions.sessions.schemas import SessionCreate, SessionUpdate


def if_match(*lines: bytes) -> frozenset[int] | None:
    request: Request[None, None, None] = Request(
        {"type": "http", "headers": [(b"if-match", line) for line in lines], "state": {}}  # type: ignore[typeddict-item]
    )
    first = lines[0].decode("latin-1") if lines else None
    return if_match_versions(request, first)


@pytest.mark.parametrize(
    ("lines", "versions"),
    [
        ((), None),
        ((b"*",), None),
        ((b'"3", *',), None),
        ((b'"3"',), {3}),
        ((b"3",), {3}),
        ((b'"3", "7"',), {3, 7}),
        ((b'"3"', b'"7", 8'), {3, 7, 8}),
        ((b'W/"3"',), set()),
        ((b'"03"',), set()),
        ((b'"3',), set()),
        ((b"",), set()),
        ((b'"' + b"9" * 20 + b'"',), set()),
        (('"\N{ARABIC-INDIC DIGIT THREE}"'.encode(),), set()),
    ],
    ids=str,
)
def test_if_match_reads_every_line_into_the_versions_it_accepts(
    lines: tuple[bytes, ...], versions: set[int] | None
) -> None:
    assert if_match(*lines) == (None if versions is None else frozenset(versions))


def test_etag_is_the_version_in_quotes() -> None:
    assert etag(12) == '"12"'


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (None, None),
        ("k-1", "k-1"),
        ('"k-1"', "k-1"),
        ("  k  ", "k"),
        ("ü".encode().decode("latin-1"), "ü"),
    ],
)
def test_idempotency_key_is_the_header_as_utf8_text_unquoted(
    header: str | None, key: str | None
) -> None:
    assert idempotency_key(header) == key


@pytest.mark.parametrize("header", ["\xc3(", '""', "", "a\tb", "k" * 256], ids=repr)
def test_an_idempotency_key_that_is_no_utf8_printable_text_of_1_to_255_is_400(
    header: str,
) -> None:
    with pytest.raises(BadRequest):
        idempotency_key(header)


async def test_the_session_service_takes_expected_versions_and_refuses_others(
    database: Database,
) -> None:
    async with database.transaction() as tx:
        await tx.execute(
            text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', '2026-01-01')")
        )
        row, _ = await service.create_session(
            tx, tenant_id="t", data=SessionCreate(title="a"), max_json_bytes=1024
        )
    for expected in (frozenset(), frozenset({row.version + 1})):
        with pytest.raises(PreconditionFailed, match=r'its ETag is now "1"'):
            async with database.transaction() as tx:
                await service.update_session(
                    tx,
                    tenant_id="t",
                    session_id=row.id,
                    changes=SessionUpdate(title="b"),
                    expected_versions=expected,
                    max_json_bytes=1024,
                )
    async with database.transaction() as tx:
        assert (await service.get_session(tx, tenant_id="t", session_id=row.id)).title == "a"
        updated = await service.update_session(
            tx,
            tenant_id="t",
            session_id=row.id,
            changes=SessionUpdate(title="b"),
            expected_versions=frozenset({row.version}),
            max_json_bytes=1024,
        )
    assert (updated.title, updated.version) == ("b", 2)
