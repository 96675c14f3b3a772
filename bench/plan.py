"""What one benchmark run measures: the plan (sizes, durations), and the scenarios."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import payloads

if TYPE_CHECKING:
    from seeding import Fixture

PAGE = 20  # the list route's default page size


@dataclass(frozen=True)
class Plan:
    runs: int
    duration: int  # seconds per measured run
    warmup: int  # seconds of warm-up per scenario and side
    connections: int
    threads: int
    hot_messages: int  # the session whose last 50 are read
    parts_messages: int  # the session of messages with parts and an item whose last 50 are read
    list_sessions: int  # sessions in the tenant that is listed
    big_total: int  # messages in the database at the large size
    filler_tenants: int
    filler_sessions: int  # per filler tenant

    @property
    def deep_page(self) -> int:
        """The page of the list tenant measured as "deep": 80% of the way down."""
        return max(2, int(self.list_sessions * 0.8) // PAGE)

    @property
    def small_total(self) -> int:
        # the list sessions hold one message each
        return self.hot_messages + self.parts_messages + self.list_sessions


FULL = Plan(
    runs=3,
    duration=5,
    warmup=2,
    connections=16,
    threads=1,
    hot_messages=10_000,
    parts_messages=1_000,
    list_sessions=10_000,
    big_total=1_000_000,
    filler_tenants=20,
    filler_sessions=50,
)
QUICK = Plan(
    runs=1,
    duration=2,
    warmup=1,
    connections=16,
    threads=1,
    hot_messages=2_000,
    parts_messages=200,
    list_sessions=1_000,
    big_total=100_000,
    filler_tenants=5,
    filler_sessions=20,
)


@dataclass
class Scenario:
    key: str
    label: str
    path: str
    method: str = "GET"
    body: str | None = None
    token: str = ""
    items: int = 1  # messages per request (the batch)
    connections: int | None = None  # wrk connections, when not the plan's
    delay_ms: int = 0  # each connection's pause between requests

    @property
    def expected_status(self) -> int:
        return 201 if self.method == "POST" else 200


GROWTH_KEYS = ("read_last50", "list_first", "list_deep")
READS = ("get_session", "list_first", "list_deep", "read_last50", "read_last50_parts")
WRITES = ("create_session", "append", "append_parts", "append_batch_20")
# Measured and reported, with no target: a message with content parts (a ~2 KB image) and an
# item, beside the scenario that does the same with a string.
WITH_PARTS = {"read_last50_parts": "read_last50", "append_parts": "append"}
UNDER_WRITES = "search_while_appending"  # the service alone: the bare app has no search
SCENARIOS = (*READS, *WRITES, UNDER_WRITES)
# Searches come now and then, each after what was written since the one before; the writers
# never pause.
SEARCH_PAUSE_MS = 1000


def build_scenarios(plan: Plan, fx: Fixture, cursor: str) -> dict[str, Scenario]:
    """Every scenario over the seeded data, as the main tenant unless it says otherwise;
    `cursor` opens the deep list page."""
    hot = fx.hot_session
    scenarios = {
        "get_session": Scenario("get_session", "get one session", f"/v1/sessions/{hot}"),
        "list_first": Scenario(
            "list_first", "list sessions, first page", "/v1/sessions", token=fx.list_key
        ),
        "list_deep": Scenario(
            "list_deep",
            f"list sessions, page {plan.deep_page} (cursor)",
            f"/v1/sessions?cursor={cursor}",
            token=fx.list_key,
        ),
        "read_last50": Scenario(
            "read_last50",
            f"read the last 50 (of {plan.hot_messages:,})",
            f"/v1/sessions/{hot}/messages?order=desc&limit=50",
        ),
        "read_last50_parts": Scenario(
            "read_last50_parts",
            f"read the last 50 with parts (of {plan.parts_messages:,})",
            f"/v1/sessions/{fx.parts_session}/messages?order=desc&limit=50",
        ),
        "create_session": Scenario(
            "create_session",
            "create a session",
            "/v1/sessions",
            method="POST",
            body=payloads.WRK_SESSION,
        ),
        "append": Scenario(
            "append",
            "append one message (one session)",
            f"/v1/sessions/{fx.append_session}/messages",
            method="POST",
            body=payloads.WRK_MESSAGE,
        ),
        "append_parts": Scenario(
            "append_parts",
            "append with parts and item (one session)",
            f"/v1/sessions/{fx.parts_append_session}/messages",
            method="POST",
            body=payloads.WRK_PARTS_MESSAGE,
        ),
        "append_batch_20": Scenario(
            "append_batch_20",
            "append a batch of 20 (one session)",
            f"/v1/sessions/{fx.batch_session}/messages/batch",
            method="POST",
            body=payloads.WRK_BATCH_20,
            items=20,
        ),
        UNDER_WRITES: Scenario(
            UNDER_WRITES,
            f"search every {SEARCH_PAUSE_MS} ms while {plan.connections} writers append",
            "/v1/search?q=check&limit=10",
            connections=1,
            delay_ms=SEARCH_PAUSE_MS,
        ),
    }
    for scenario in scenarios.values():
        scenario.token = scenario.token or fx.main_key
    return scenarios
