"""The request headers that set conditions on a write, read into plain values for services:
`If-Match` (against the ETag of a session, or of an end-user's traits) and `Idempotency-Key`.
The routes read the headers (`IfMatch`, `if_match_versions`, `idempotency_key`) and answer
the `ETag` (`tagged`); the services never see a header: they compare the plain versions
(`check_version`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from litestar import Request, Response
from litestar.params import HeaderParameter

from chat_sessions.errors import BadRequest, PreconditionFailed

T = TypeVar("T")

MAX_IDEMPOTENCY_KEY = 255
# A session's ETag: its version, in quotes. A bare version is taken too. Versions are BIGINTs
# from 1, so a longer number, or one with a leading 0, names none.
_VERSION_TAG = re.compile(r'"(0|[1-9][0-9]{0,18})"|(0|[1-9][0-9]{0,18})')


IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description="412 unless it names the current ETag"),
]


def etag(version: int) -> str:
    return f'"{version}"'


def tagged(body: T, version: int, status_code: int = 200, **headers: str) -> Response[T]:
    """A versioned resource's response, with its `ETag`."""
    return Response(body, status_code=status_code, headers={"ETag": etag(version), **headers})


def check_version(expected_versions: frozenset[int] | None, version: int, what: str) -> None:
    """412 unless `what`'s current version is one the request accepts (None: any)."""
    if expected_versions is None or version in expected_versions:
        return
    raise PreconditionFailed(f"{what} has changed: its ETag is now {etag(version)}")


def if_match_versions(
    request: Request[Any, Any, Any], if_match: str | None
) -> frozenset[int] | None:
    """The session versions the request's `If-Match` accepts; None when any will do (no
    `If-Match`, or `*`).

    `If-Match` is a list of entity tags (RFC 9110 13.1.1), over one or several header lines:
    Litestar hands a header parameter its first line only, so every line is read here. Any
    tag matching is enough, by strong comparison (a weak `W/"2"` never matches). Our tags are
    digits in quotes, so splitting at commas is exact. An empty set: nothing can match."""
    if if_match is None:
        return None
    candidates = [
        tag.strip() for line in request.headers.getall("if-match") for tag in line.split(",")
    ]
    if "*" in candidates:
        return None
    return frozenset(
        int(match.group(1) or match.group(2))
        for candidate in candidates
        if (match := _VERSION_TAG.fullmatch(candidate))
    )


def idempotency_key(header: str | None) -> str | None:
    """The key from an `Idempotency-Key` header, bare or as a quoted string, as UTF-8 text.

    Header values reach us as Latin-1 (the bytes as sent, one character each): a key that is
    not UTF-8 is refused, so one key is never stored as two different strings."""
    if header is None:
        return None
    try:
        key = header.encode("latin-1").decode("utf-8").strip()
    except UnicodeError:
        raise BadRequest("Idempotency-Key must be UTF-8 text") from None
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} printable characters")
    return key
