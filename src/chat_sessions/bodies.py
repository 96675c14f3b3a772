"""What a request must be before any handler runs: one reading only.

`check_request` runs before every handler: it is the `before_request` of the admin, operations
and OpenAPI routers, and the tenant router's `check_tenant_request` (app.py) calls it after the
API key is checked. It refuses what could be read more than one way, or that one engine would
store and the other refuse:

- a body that is not JSON (415), or that the client encoded (`Content-Encoding` other than
  `identity`: 415, the service decodes none), holds NUL characters (400), names a key twice in
  one object (400: which one wins is up to the parser), or has a wrong type anywhere (400);
- two `Idempotency-Key` headers (400);
- a query parameter the route does not know (400 naming it, never its value: a misspelt
  `expected_last_seq` must not be ignored silently). Known are the names Litestar itself reads
  from the query string for the handler: its own query parameters by their query names
  (`QueryParameter(name=...)`), its dependencies' query parameters, and those its layers
  declare (`parameters=`); path, header and cookie parameters, dependencies and `data` are
  not query parameters. A route that must accept names it does not read (the
  OpenAI-compatible routes: OpenAI's SDKs send `include`) opts out with
  `opt={LENIENT_QUERY: True}` (`"lenient_query"`) on its handler, controller or router
  (Litestar merges the layers' `opt` into the handler's); its own parameters keep every other
  check. OPTIONS is lenient too: it reads no parameter, and a CORS preflight carries the query
  string of the request it asks about;
- a query integer not written as one (`1e3`, `1.0`, ` 1`: 400; Litestar converts query values
  with `msgspec.convert(..., strict=False)` (litestar/_signature/model.py), which reads a
  string as a number and takes an integral float for an int), and a NUL in any query value
  but the search text (400);
- a NUL in the path (404: no id holds one, and PostgreSQL cannot even compare it).

The body is decoded once, by `StrictRequest.json`: Litestar hands the handler what `json()`
returns (litestar/_kwargs/extractors.py, `json_extractor`), and an instance of the handler's
body type passes its conversion unchanged (tests/test_assembly.py proves both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import msgspec
from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import Empty

from chat_sessions.errors import BadRequest, NotFound, UnsupportedMediaType
from chat_sessions.jsonvalues import decode_body

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# A NUL character, as JSON writes it: `\u0000` not preceded by an escaping backslash.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# Where a key ends: a quote, optional whitespace, a colon (see `_has_duplicate_keys`).
_KEY_END = re.compile(rb'"[ \t\n\r]*:')
# An integer as the query string must write it; longer ones are out of every range anyway.
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,20}")
_UNTYPED = msgspec.json.Decoder()
# Query parameters that are plain user text, where search's own rule holds: NUL counts as a
# space (search/service.py), on both engines.
FREE_TEXT_QUERY = frozenset({"q"})
# The `opt` key of a route that accepts query parameters it does not know (module docstring).
LENIENT_QUERY = "lenient_query"
# How much of an unknown parameter's name a 400 repeats.
_SHOWN_NAME = 100


async def check_request(request: Request[Any, Any, Any]) -> None:
    """Refuse, before any handler runs, what the module docstring lists."""
    scope = request.scope
    if "\x00" in scope["path"]:
        raise NotFound("not found: no id holds a NUL character")
    if scope["query_string"]:
        _check_query(request)
    if request.method not in BODY_METHODS:
        return
    headers = request.headers
    encoding = headers.get("content-encoding")
    if encoding is not None and encoding.strip().lower() != "identity":
        raise UnsupportedMediaType(
            "Content-Encoding is not supported: send the body unencoded (identity)"
        )
    if "idempotency-key" in headers and len(headers.getall("idempotency-key")) > 1:
        raise BadRequest("give one Idempotency-Key header, not several")
    shape = shape_of(request)
    if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
        if shape.decoder is not None:
            raise BadRequest("a JSON body is required")
        return
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    body = await request.body()
    if b"\\u0000" in body and _JSON_NUL.search(body):
        raise BadRequest("NUL characters (\\u0000) are not accepted")
    if shape.decoder is not None:
        # Kept for the handler: what `StrictRequest.json` answers Litestar (set here rather
        # than through `await request.json()`, measured ~0.5 µs more on every append).
        # (On a plain `Request`, which has no such attribute, this fails loudly.)
        cast(StrictRequest, request).decoded = _decode_strictly(shape.decoder, body)


class StrictRequest(Request[Any, Any, Any]):
    """The app's request class (`request_class`): `json()` decodes the body strictly into the
    handler's body type, once, and answers that value to every later call, Litestar's own
    (which hands it to the handler) included.

    Litestar converts bodies in msgspec's lax mode, where "5" passes for 5 and "true" for
    true; the contract says a wrong type is a 400."""

    decoded: Any = Empty

    async def json(self) -> Any:
        if self.decoded is Empty:
            decoder = shape_of(self).decoder
            if decoder is None:
                return await super().json()
            self.decoded = _decode_strictly(decoder, await self.body())
        return self.decoded


def _decode_strictly(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        data = decode_body(decoder, body)
    except msgspec.ValidationError as error:
        raise BadRequest(f"invalid request body: {error}") from None
    except msgspec.DecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
    if _has_duplicate_keys(body):
        raise BadRequest("malformed JSON: an object names a key more than once (duplicate)")
    return data


def _has_duplicate_keys(body: bytes) -> bool:
    """Whether an object in `body` (valid JSON) names a key twice; msgspec keeps the last.

    Exact, and cheap when the answer is no: every key ends in a match of `_KEY_END`, and only
    an escaped quote, or a string that starts with a colon (after spaces), adds a match that
    is no key. So when the matches are as many as the keys the decoded document holds, no key
    was lost to a twin. Otherwise (a twin, or such a string) Python's parser, which shows
    every pair, decides.
    Measured (bench/input_checks.py, best of 50 runs on a loaded 2-core machine): 1.2-2.7 µs
    on the benchmark's append bodies of ~250 bytes, where the exact parse alone takes
    3.7-6.3 µs: about 1% of an append's 225 µs of server CPU (README, Performance). On a batch
    of 20 (4.7 KB) both cost 22-34 µs, 5-8% of the batch's 426 µs.
    """
    if len(_KEY_END.findall(body)) == _count_keys(_UNTYPED.decode(body)):
        return False
    try:
        json.loads(body, object_pairs_hook=_refuse_twins)
    except _DuplicateKey:
        return True
    return False


class _DuplicateKey(Exception):
    pass


def _refuse_twins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        raise _DuplicateKey
    return mapping


def _count_keys(value: Any) -> int:
    """The keys of every object in a decoded document. Recursive (3x faster than a walk with
    a stack): a document nested past Python's limit is a RecursionError, answered 400."""
    children: Any
    if value.__class__ is dict:
        count = len(value)
        children = value.values()
    elif value.__class__ is list:
        count, children = 0, value
    else:
        return 0
    for child in children:
        if child.__class__ is dict or child.__class__ is list:
            count += _count_keys(child)
    return count


def _check_query(request: Request[Any, Any, Any]) -> None:
    """The query checks of the module docstring, run only when there is a query string.
    Measured (bench/micro_query.py, best of 200 runs taken in turn on a loaded 2-core
    machine), a history read with 3 parameters: the unknown-name check costs 0.11-0.16 µs of
    the 3.5-3.8 µs this function takes (a fresh request and its query parsed once included),
    ~0.03% of the 427 µs of server CPU a read of the last 50 costs (README, Performance)."""
    raw = request.scope["query_string"]
    query = request.query_params
    if b"%00" in raw or b"\x00" in raw:
        for name, value in query.multi_items():
            if ("\x00" in value and name not in FREE_TEXT_QUERY) or "\x00" in name:
                raise BadRequest(f"query parameter {name} must not hold NUL characters")
    shape = shape_of(request)
    known = shape.query_names
    if known is not None and not known.issuperset(query):
        raise BadRequest(
            _unknown_parameter(next(name for name in query if name not in known), known)
        )
    for name in shape.integer_query_names:
        for value in query.getall(name, ()):
            if not _QUERY_INTEGER.fullmatch(value):
                raise BadRequest(f"query parameter {name} must be an integer written in digits")


def _unknown_parameter(name: str, known: frozenset[str]) -> str:
    shown = name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "..."
    takes = ", ".join(sorted(known)) if known else "none"
    return f"unknown query parameter: {shown} (this route takes: {takes})"


class HandlerShape(NamedTuple):
    """What a route handler reads from a request, as far as these checks care."""

    decoder: msgspec.json.Decoder[Any] | None  # strict, for its body type; None: no body
    # The names it reads from the query string; None: any name is accepted (LENIENT_QUERY).
    query_names: frozenset[str] | None
    integer_query_names: tuple[str, ...]  # its query parameters typed `int` or `int | None`

    @classmethod
    def of(cls, handler: HTTPRouteHandler, routes: Sequence[BaseRoute]) -> HandlerShape:
        """`routes`: the app's. Each route keeps, for each of its handlers, what Litestar reads
        from the request for it (`route_handler_map`: the handler and its `KwargsModel`, built
        at start-up), whose `expected_query_params` are the query parameters, by their names
        in the query string. Read from there rather than worked out again from the signature,
        so the check and the handler cannot disagree (a name a parameter goes by, a dependency
        that reads the query, a path parameter: the route's path decides which names are).
        `KwargsModel` lives in a private module of Litestar (2.x): tests/http/
        test_strict_query.py fails loudly if it stops answering this."""
        data = handler.parsed_data_field
        query = {
            parameter.field_alias: parameter.field_name
            for route in routes
            if isinstance(route, HTTPRoute)
            for route_handler, kwargs_model in route.route_handler_map.values()
            if route_handler is handler
            for parameter in kwargs_model.expected_query_params
        }
        signature = handler.parsed_fn_signature.parameters
        lenient = handler.opt.get(LENIENT_QUERY, False) or "OPTIONS" in handler.http_methods
        return cls(
            decoder=msgspec.json.Decoder(data.annotation) if data is not None else None,
            query_names=None if lenient else frozenset(query),
            integer_query_names=tuple(
                alias
                for alias, name in query.items()
                if (field := signature.get(name)) is not None
                and (
                    field.annotation is int
                    or {inner.annotation for inner in field.inner_types} == {int, type(None)}
                )
            ),
        )


def shape_of(request: Request[Any, Any, Any]) -> HandlerShape:
    """The request's handler's shape, found on first use and kept in the app's state
    (`handler_shapes`, a dict keyed by handler: Litestar builds each one once, at start-up,
    and keeps it as long as the app). Subscripted: `State`'s attribute access costs ~1 µs
    (it fails first, then falls back to `__getattr__`), its `[]` 0.1 µs."""
    shapes: dict[HTTPRouteHandler, HandlerShape] = request.app.state["handler_shapes"]
    handler = request.route_handler
    shape = shapes.get(handler)
    if shape is None:
        shape = shapes[handler] = HandlerShape.of(handler, request.app.routes)
    return shape
