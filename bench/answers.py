"""The bare app's answers: the service's own, taken once before the bare app starts
(`capture`), and held against the service's before each scenario is measured (`sanity_check`).

The bare app (bare_app.py) answers each hot route with a response built at its start-up, from
the file `capture` writes: each scenario's request sent to the service once, with the checks'
counter in its body (payloads.CHECK_COUNTER). Before each scenario, `sanity_check` sends both
sides the same request(s): each must answer the right status, the same shape (keys and list
lengths) and the same number of bytes. Only the digits of the messages' seqs may differ: a
message appended at the capture has seq 1, one appended later in a run 12345 (the service's
answer grows by those digits through a run, the bare app's cannot). Every other value of a
write's answer has a fixed width, the bodies' counters included (payloads.counter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import payloads
from plan import Scenario, Step
from seeding import Fixture
from servers import Server


def send(server: Server, step: Step, token: str) -> httpx.Response:
    """One request of a scenario's check, its counter the checks' own."""
    body = (step.body or "").replace(payloads.COUNTER, payloads.CHECK_COUNTER)
    headers = {"Authorization": f"Bearer {token}"}
    if step.body:
        headers["Content-Type"] = "application/json"
    return httpx.request(
        step.method, server.base + step.path, content=body or None, headers=headers, timeout=30
    )


def capture(service: Server, scenarios: list[Scenario], fx: Fixture, path: Path) -> None:
    """Write the file the bare app answers from: each scenario's answer from the service (the
    first, where two scenarios share an answer)."""
    bodies: dict[str, str] = {}
    for scenario in scenarios:
        if not scenario.answer and scenario.turn is None:
            continue  # the service alone measures it
        for step in scenario.steps():
            response = send(service, step, scenario.token)
            if response.status_code != step.expected_status:
                raise RuntimeError(
                    f"{scenario.key}: the service answered {response.status_code} to "
                    f"{step.method} {step.path}: {response.text[:300]}"
                )
            bodies.setdefault(step.answer, response.text)
    answers = {
        "parts_session": fx.parts_session,
        "branched_session": fx.branched_session,
        "parts_append_session": fx.parts_append_session,
        "bodies": bodies,
    }
    path.write_text(json.dumps(answers))


def shape(value: Any) -> Any:
    """What an answer looks like, values left out: keys, and list lengths."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [len(value), shape(value[0]) if value else None]
    return None


# Numbers that grow through a run: seqs (a message's parent's too), and a streaming answer's
# length (a delta's answer).
GROWING = ("seq", "parent_seq", "length")


def seq_digits(value: Any) -> int:
    """The digits of every `seq` (and `parent_seq`, `length`: GROWING) in an answer."""
    if isinstance(value, dict):
        return sum(
            len(str(item)) if key in GROWING and isinstance(item, int) else seq_digits(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return sum(seq_digits(item) for item in value)
    return 0


def size_gap(service: bytes, bare: bytes) -> int:
    """How many bytes longer the service's answer is than the bare app's, the digits of their
    seqs left out (negative: shorter)."""
    return (len(service) - seq_digits(msgspec.json.decode(service))) - (
        len(bare) - seq_digits(msgspec.json.decode(bare))
    )


@dataclass
class Check:
    """What the check before a scenario found."""

    problems: list[str] = field(default_factory=list)
    sizes: dict[str, list[int]] = field(default_factory=dict)  # server -> bytes of each answer


def compare(key: str, step: Step, service: bytes, bare: bytes) -> list[str]:
    """The problems of two answers to one request: shape, then size."""
    if shape(msgspec.json.decode(service)) != shape(msgspec.json.decode(bare)):
        return [f"{key}: the service's and the bare app's answers to {step.method} differ"]
    gap = size_gap(service, bare)
    if gap:
        return [
            f"{key}: the service's answer to {step.method} is {len(service):,} bytes, the bare "
            f"app's {len(bare):,} ({gap:+,} beyond the digits of seqs)"
        ]
    return []


def sanity_check(scenario: Scenario, servers: list[Server]) -> Check:
    """The scenario's request(s) to each side before measuring: right status, and (both sides)
    the same shape and size."""
    check = Check()
    answers: dict[str, list[bytes]] = {}
    for server in servers:
        for step in scenario.steps():
            response = send(server, step, scenario.token)
            if response.status_code != step.expected_status:
                check.problems.append(
                    f"{scenario.key}: {server.name} answered {response.status_code} to "
                    f"{step.method} {step.path}: {response.text[:300]}"
                )
                break
            answers.setdefault(server.name, []).append(response.content)
        check.sizes[server.name] = [len(body) for body in answers.get(server.name, [])]
    service, bare = answers.get("service", []), answers.get("bare", [])
    if len(servers) == 2 and len(service) == len(bare) == len(scenario.steps()):
        for step, mine, theirs in zip(scenario.steps(), service, bare, strict=True):
            check.problems += compare(scenario.key, step, mine, theirs)
    return check
