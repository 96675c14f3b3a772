"""Rules for the free-form JSON clients store: traits, metadata, tool arguments and results."""

from __future__ import annotations

import functools
import re
from decimal import Decimal
from typing import Any

import msgspec

from chat_sessions.errors import BadRequest, PayloadTooLarge

# Deeper than any real traits document; a guard against documents built to exhaust the stack.
MAX_JSON_DEPTH = 64


def check_text(value: str, what: str) -> None:
    """NUL characters are refused on every engine, since PostgreSQL cannot store them."""
    if "\x00" in value:
        raise BadRequest(f"{what} contains a NUL character")


def _check_tree(value: Any, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Depth and NUL checks in one iterative walk, so a deep document cannot overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, what)
            continue
        if isinstance(item, dict):
            for key in item:
                check_text(key, what)
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise BadRequest(f"{what} nests deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


def check_json(value: Any, what: str, max_bytes: int) -> int:
    """Refuse a JSON value that is too deep or holds NUL characters (400), or is too large
    (413), to store; answer its size encoded (0 for None)."""
    if value is None:
        return 0
    encoded = msgspec.json.encode(value)
    if len(encoded) > max_bytes:
        raise PayloadTooLarge(f"{what} is {len(encoded)} bytes encoded; the limit is {max_bytes}")
    # Skip the walk when the encoded text shows there is nothing to find (a NUL is always
    # written \u0000, and a document cannot nest deeper than it has brackets). Measured on
    # the benchmark's metadata: 1.22 µs -> 0.56 µs a check, ~7 µs an append of 20
    # (bench/micro_checks.py).
    brackets = encoded.count(b"{") + encoded.count(b"[")
    if brackets > MAX_JSON_DEPTH or b"\\u0000" in encoded:
        _check_tree(value, what)
    return len(encoded)


# A number whose stored form would differ between the engines, as msgspec writes it: -0.0, or
# a float with a positive exponent (1e16, 2.5e20). A match inside a string ("3e4") only costs
# a walk that changes nothing; this loose pattern scans twice as fast as an exact one.
_ENGINE_DEPENDENT_NUMBER = re.compile(rb"[0-9]e[0-9]|-0\.0")


def encode_for_storage(value: Any) -> str:
    """The JSON text both engines store for `value` (the engines' JSON serializer).

    PostgreSQL's jsonb keeps numbers as decimals: -0.0 comes back as 0.0, and a float written
    with an exponent whose value is whole (1e16, 1e308) as that integer, digit for digit. SQLite
    keeps the text. So numbers are stored here as jsonb would give them back, on both engines.
    Cost: the pattern search, ~0.7 µs for an append's metadata (bench/input_checks.py).
    """
    encoded = msgspec.json.encode(value)
    if _ENGINE_DEPENDENT_NUMBER.search(encoded):
        encoded = msgspec.json.encode(storable_json(value))
    return encoded.decode()


def storable_json(value: Any) -> Any:
    """`value` with its numbers as both engines return them (see `encode_for_storage`)."""
    if value.__class__ is float:
        if value == 0.0:
            return 0.0
        if value.is_integer() and b"e" in msgspec.json.encode(value):
            return int(Decimal(repr(value)))
        return value
    if isinstance(value, dict):
        return {key: storable_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: null removes a key, objects merge recursively, else replace.

    Returns a new value; `target` is never mutated (the ORM and callers may still hold it).
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON, types included (in Python 1 == 1.0 == True), key order aside."""
    return msgspec.json.encode(a, order="sorted") == msgspec.json.encode(b, order="sorted")


def patched_traits(
    current: dict[str, Any], patch: dict[str, Any], what: str, max_bytes: int
) -> dict[str, Any] | None:
    """`current` with the merge patch applied and checked (`check_json`), or None when the
    patch changes nothing: a change that changes nothing writes nothing (no new version)."""
    return replaced_traits(current, merge_patch(current, patch), what, max_bytes)


def replaced_traits(
    current: dict[str, Any], new: dict[str, Any], what: str, max_bytes: int
) -> dict[str, Any] | None:
    """`new`, checked (`check_json`), or None when it is what is stored already (compared as
    the engines store it: see `storable_json`)."""
    check_json(new, what, max_bytes)
    return None if same_json(storable_json(new), current) else new


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """A request body, decoded strictly ("5" is no integer), except that a whole number written
    as a float (`2.0`) is the integer it is where the shape wants one: JSON, and the JSON Schema
    of the OpenAPI document, do not tell 2.0 from 2 (schemathesis sends both). Free-form values
    (traits, metadata, ...) keep exactly what was sent."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        tree = msgspec.json.decode(body)
        shape: Any = decoder.type
        fixed = _whole_floats_as_ints(tree, _shape(shape))
        return msgspec.convert(fixed, decoder.type, strict=True)


@functools.cache
def _shape(type_: Any) -> msgspec.inspect.Type:
    return msgspec.inspect.type_info(type_)


def _whole_floats_as_ints(value: Any, shape: msgspec.inspect.Type) -> Any:
    options = shape.types if isinstance(shape, msgspec.inspect.UnionType) else (shape,)
    if isinstance(value, float):
        wants_int = any(isinstance(option, msgspec.inspect.IntType) for option in options)
        takes_float = any(isinstance(option, msgspec.inspect.FloatType) for option in options)
        return int(value) if wants_int and not takes_float and value.is_integer() else value
    for option in options:
        if isinstance(value, list) and isinstance(option, msgspec.inspect.ListType):
            return [_whole_floats_as_ints(item, option.item_type) for item in value]
        if isinstance(value, dict) and isinstance(option, msgspec.inspect.StructType):
            fields = {field.encode_name: field.type for field in option.fields}
            return {
                key: _whole_floats_as_ints(item, fields[key]) if key in fields else item
                for key, item in value.items()
            }
    return value
