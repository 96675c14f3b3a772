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
    # A session of as many messages, branched every BRANCH_EVERY (messages/branches.py).
    parts_messages: int  # the session of messages with parts and an item whose last 50 are read
    list_sessions: int  # sessions in the tenant that is listed
    big_total: int  # messages in the database at the large size
    filler_tenants: int
    filler_sessions: int  # per filler tenant
    chat_sessions: int = 1_000  # the chat turns go round them
    chat_history: int = 20  # messages in each before the turns: /context answers this many
    chat_connections: int = 64
    streamed_answers: int = 1_000  # in-progress answers, a session each: deltas go round them

    @property
    def deep_page(self) -> int:
        """The page of the list tenant measured as "deep": 80% of the way down."""
        return max(2, int(self.list_sessions * 0.8) // PAGE)

    @property
    def small_total(self) -> int:
        # the list sessions hold one message each; one more chat session for the checks
        chats = (self.chat_sessions + 1) * self.chat_history
        # the hot session, and the branched one of as many
        return 2 * self.hot_messages + self.parts_messages + self.list_sessions + chats


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


@dataclass(frozen=True)
class Step:
    """One request of a scenario, as its check sends it (answers.py); `answer` names the bare
    app's answer to it (bare_app.SHAPES)."""

    answer: str
    method: str
    path: str
    body: str | None = None
    status: int | None = None  # when not the method's usual one

    @property
    def expected_status(self) -> int:
        return self.status or (201 if self.method == "POST" else 200)


@dataclass(frozen=True)
class Turn:
    """A chat turn: the user's message appended, the context read, the assistant's answer
    appended, on one session; the turns go round `sessions` (bench/wrk/chat_turn.lua)."""

    sessions: list[str]
    check_session: str  # the checks' own, outside the round
    context_query: str
    user_body: str = payloads.WRK_USER_MESSAGE
    assistant_body: str = payloads.WRK_ASSISTANT_MESSAGE

    def steps(self, session_id: str) -> list[Step]:
        base = f"/v1/sessions/{session_id}"
        return [
            Step("appended_user", "POST", f"{base}/messages", self.user_body),
            Step("context", "GET", f"{base}/context{self.context_query}"),
            Step("appended", "POST", f"{base}/messages", self.assistant_body),
        ]


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
    answer: str = ""  # the bare app's answer (bare_app.SHAPES); "" where it has none
    turn: Turn | None = None  # a chat turn: three requests in a row (path is then unused)
    # Paths the requests go round (path is then the first), each connection from its own place.
    paths: list[str] | None = None

    @property
    def requests_per_turn(self) -> int:
        return 3 if self.turn else 1

    @property
    def messages_per_request(self) -> float:
        """Messages stored a request: a turn's three requests store two."""
        return 2 / 3 if self.turn else self.items

    @property
    def writes(self) -> bool:
        """Whether its runs leave the database work to catch up on (servers.settle_database)."""
        return self.method == "POST" or self.turn is not None

    def steps(self) -> list[Step]:
        """The requests its check sends (answers.py)."""
        if self.turn is not None:
            return self.turn.steps(self.turn.check_session)
        status = 200 if self.answer == "delta" else None  # a delta creates nothing
        return [Step(self.answer, self.method, self.path, self.body, status)]


GROWTH_KEYS = ("read_last50", "list_first", "list_deep")
READS = (
    "get_session",
    "list_first",
    "list_deep",
    "read_last50",
    "read_last50_parts",
    "read_last50_branched",
)
# Each 10th message of the branched session is a regenerated answer (parent: seq - 2).
BRANCH_EVERY = 10
FORKED_MESSAGES = 1_000  # a fork copies the hot session's first 1,000
WRITES = (
    "create_session",
    "append",
    "append_many",
    "append_parts",
    "append_batch_20",
    "chat_turn",
    "delta_one",
    "delta_many",
    "fork_1000",
)
# Measured and reported, with no target: a message with content parts (a ~2 KB image) and an
# item, beside the scenario that does the same with a string.
WITH_PARTS = {"read_last50_parts": "read_last50", "append_parts": "append"}
CHAT_TURN = "chat_turn"  # reported, no target on SQLite; on PostgreSQL 2 workers against 1
UNDER_WRITES = "search_while_appending"  # the service alone: the bare app has no search
SCENARIOS = (*READS, *WRITES, UNDER_WRITES)
# Searches come now and then, each after what was written since the one before; the writers
# never pause.
SEARCH_PAUSE_MS = 1000
APPEND_MANY_SESSIONS = 100


def build_scenarios(plan: Plan, fx: Fixture, cursor: str) -> dict[str, Scenario]:
    """Every scenario over the seeded data, as the main tenant unless it says otherwise;
    `cursor` opens the deep list page."""
    hot = fx.hot_session
    scenarios = {
        "get_session": Scenario(
            "get_session", "get one session", f"/v1/sessions/{hot}", answer="session"
        ),
        "list_first": Scenario(
            "list_first",
            "list sessions, first page",
            "/v1/sessions",
            token=fx.list_key,
            answer="sessions_first",
        ),
        "list_deep": Scenario(
            "list_deep",
            f"list sessions, page {plan.deep_page} (cursor)",
            f"/v1/sessions?cursor={cursor}",
            token=fx.list_key,
            answer="sessions_deep",
        ),
        "read_last50": Scenario(
            "read_last50",
            f"read the last 50 (of {plan.hot_messages:,})",
            f"/v1/sessions/{hot}/messages?order=desc&limit=50",
            answer="last50",
        ),
        "read_last50_parts": Scenario(
            "read_last50_parts",
            f"read the last 50 with parts (of {plan.parts_messages:,})",
            f"/v1/sessions/{fx.parts_session}/messages?order=desc&limit=50",
            answer="last50_parts",
        ),
        "read_last50_branched": Scenario(
            "read_last50_branched",
            f"read the last 50 (of {plan.hot_messages:,}, a branch every {BRANCH_EVERY})",
            f"/v1/sessions/{fx.branched_session}/messages?order=desc&limit=50",
            answer="last50_branched",
        ),
        # One connection: how long one fork takes, not a queue of them.
        "fork_1000": Scenario(
            "fork_1000",
            f"fork {FORKED_MESSAGES:,} messages (1 connection)",
            f"/v1/sessions/{hot}/fork",
            method="POST",
            body=payloads.WRK_FORK,
            connections=1,
            answer="forked",
        ),
        "create_session": Scenario(
            "create_session",
            "create a session",
            "/v1/sessions",
            method="POST",
            body=payloads.WRK_SESSION,
            answer="session_created",
        ),
        "append": Scenario(
            "append",
            "append one message (one session)",
            f"/v1/sessions/{fx.append_session}/messages",
            method="POST",
            body=payloads.WRK_MESSAGE,
            answer="appended",
        ),
        # The same append going round many sessions (the chat turn's): no two writers wait for
        # one session row's lock, as they all do above.
        "append_many": Scenario(
            "append_many",
            f"append one message ({len(fx.chat_sessions[:APPEND_MANY_SESSIONS])} sessions)",
            f"/v1/sessions/{fx.chat_sessions[0]}/messages",
            method="POST",
            body=payloads.WRK_MESSAGE,
            answer="appended",
            paths=[f"/v1/sessions/{s}/messages" for s in fx.chat_sessions[:APPEND_MANY_SESSIONS]],
        ),
        "append_parts": Scenario(
            "append_parts",
            "append with parts and item (one session)",
            f"/v1/sessions/{fx.parts_append_session}/messages",
            method="POST",
            body=payloads.WRK_PARTS_MESSAGE,
            answer="appended_parts",
        ),
        "append_batch_20": Scenario(
            "append_batch_20",
            "append a batch of 20 (one session)",
            f"/v1/sessions/{fx.batch_session}/messages/batch",
            method="POST",
            body=payloads.WRK_BATCH_20,
            items=20,
            answer="batch",
        ),
        # Deltas/s on one message (every connection on it: the contended case; its text grows
        # a few bytes a delta through the runs) and across many (one each, gone round).
        "delta_one": Scenario(
            "delta_one",
            "delta to a streaming answer (one message)",
            fx.delta_one,
            method="POST",
            body=payloads.WRK_DELTA,
            answer="delta",
        ),
        "delta_many": Scenario(
            "delta_many",
            f"delta to streaming answers ({plan.streamed_answers:,} messages)",
            fx.delta_many[0],
            method="POST",
            body=payloads.WRK_DELTA,
            answer="delta",
            paths=fx.delta_many,
        ),
        CHAT_TURN: Scenario(
            CHAT_TURN,
            f"a chat turn ({plan.chat_sessions:,} sessions, {plan.chat_connections} conn.)",
            "/v1/sessions",
            connections=plan.chat_connections,
            turn=Turn(
                sessions=fx.chat_sessions,
                check_session=fx.chat_check_session,
                context_query=f"?max_messages={plan.chat_history}",
            ),
        ),
        UNDER_WRITES: Scenario(
            UNDER_WRITES,
            f"search every {SEARCH_PAUSE_MS} ms while {plan.connections} writers append",
            # a word only the checks' bodies hold (payloads.CHECK_COUNTER): a rare one
            "/v1/search?q=0000000&limit=10",
            connections=1,
            delay_ms=SEARCH_PAUSE_MS,
        ),
    }
    for scenario in scenarios.values():
        scenario.token = scenario.token or fx.main_key
    return scenarios
