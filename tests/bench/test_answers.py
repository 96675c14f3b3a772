"""The check before each scenario: the bare app's answer must be the service's in shape and in
size, only the digits of seqs (which grow through a run) set apart. No servers run."""

from __future__ import annotations

import msgspec
from answers import compare, seq_digits, shape, size_gap
from plan import Step

APPEND = Step("appended", "POST", "/v1/sessions/s/messages", "{}")


def message(seq: int, **extra: object) -> dict[str, object]:
    return {"id": "m" * 36, "seq": seq, "role": "user", "content": "[0-0000000] hi", **extra}


def encoded(value: object) -> bytes:
    return msgspec.json.encode(value)


def test_answers_that_differ_only_in_the_digits_of_seqs_are_the_same_size() -> None:
    captured = encoded({"data": [message(1), message(2)]})
    later = encoded({"data": [message(12_345), message(12_346)]})

    assert seq_digits(msgspec.json.decode(later)) == 10
    assert size_gap(later, captured) == 0
    assert compare("append_batch_20", APPEND, later, captured) == []


def test_the_digits_of_a_messages_parent_seq_grow_with_it_too() -> None:
    captured = encoded({**message(1), "parent_seq": 0})
    later = encoded({**message(12_345), "parent_seq": 12_344})

    assert size_gap(later, captured) == 0


def test_a_byte_more_anywhere_else_is_a_problem() -> None:
    service = encoded(message(7, content="[0-0000000] hi!"))
    bare = encoded(message(7))

    assert size_gap(service, bare) == 1
    assert compare("append", APPEND, service, bare) == [
        "append: the service's answer to POST is 95 bytes, the bare app's 94 (+1 beyond the "
        "digits of seqs)"
    ]


def test_a_field_the_bare_app_lacks_is_a_shape_problem() -> None:
    service = encoded(message(7, item={"type": "message"}))

    assert shape(msgspec.json.decode(service)) != shape(msgspec.json.decode(encoded(message(7))))
    assert compare("append", APPEND, service, encoded(message(7))) == [
        "append: the service's and the bare app's answers to POST differ"
    ]
