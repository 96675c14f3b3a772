"""What a run measured, as typed records, and the verdict on them: the targets, each PASS or
FAIL. `Report.to_json` is the layout of bench/results/*.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from plan import CHAT_TURN, PAGE, WITH_PARTS, Plan
from targets import Target, judge

NOISY_CORES = 0.15  # other processes' CPU during a run above which the figures are suspect


@dataclass
class Side:
    """One side's figures for one scenario (the service or the bare app): medians of its
    measured runs, and each run."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    db_cpu_us_per_request: float | None  # the database server's, when it runs apart
    errors: int
    background_cores: float  # the most other processes used during one of the runs
    runs: list[dict[str, Any]] = field(default_factory=list)
    messages_per_s: int | None = None  # batches only
    turns_per_s: float | None = None  # the chat turn only (its p50/p99 are a turn's)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for only_some in ("messages_per_s", "turns_per_s"):
            if data[only_some] is None:
                del data[only_some]
        return data


@dataclass
class CatchUp:
    """Search indexing (and the WAL checkpoint) that waited when the runs ended (SQLite): after
    seeding, done apart; after a write scenario's runs, counted in their figures."""

    messages: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "messages_per_s": round(self.messages / max(self.seconds, 1e-6)),
        }


@dataclass
class ScenarioResult:
    """A scenario measured on the service and on the bare app."""

    label: str
    method: str
    path: str
    messages_per_request: int
    service: Side
    bare: Side
    problems: list[str] = field(default_factory=list)
    search_catch_up: CatchUp | None = None  # after the service's write runs (SQLite)
    requests_per_turn: int = 1  # the chat turn: 3
    answer_bytes: dict[str, list[int]] = field(default_factory=dict)  # each side's, checked

    @property
    def ratio(self) -> float:
        return round(self.service.rps / self.bare.rps, 3)

    def cpu_us_per_turn(self, side: Side) -> float:
        return round(side.cpu_us_per_request * self.requests_per_turn, 1)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "method": self.method,
            "path": self.path,
            "messages_per_request": self.messages_per_request,
            "service": self.service.to_json(),
            "bare": self.bare.to_json(),
            "problems": self.problems,
            "ratio": self.ratio,
            "answer_bytes": self.answer_bytes,
        }
        if self.requests_per_turn > 1:
            data["requests_per_turn"] = self.requests_per_turn
            data["cpu_us_per_turn"] = {
                "service": self.cpu_us_per_turn(self.service),
                "bare": self.cpu_us_per_turn(self.bare),
            }
        if self.search_catch_up is not None and self.search_catch_up.messages:
            data["search_catch_up"] = self.search_catch_up.to_json()
        return data


@dataclass
class SearchUnderWrites:
    """Searches now and then beside writers that never pause; the service alone."""

    label: str
    path: str
    search_connections: int | None
    search_delay_ms: int
    search: Side
    append: Side

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["search"], data["append"] = self.search.to_json(), self.append.to_json()
        return data


@dataclass
class Growth:
    """One read scenario's service figures at the small and at the large database."""

    label: str
    small: Side
    big: Side
    small_bare: Side

    def ratio_of(self, figure: str) -> float:
        return round(getattr(self.big, figure) / getattr(self.small, figure), 3)

    @property
    def p50_ratio(self) -> float:
        return self.ratio_of("p50_ms")

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "small": self.small.to_json(),
            "big": self.big.to_json(),
            "small_bare": self.small_bare.to_json(),
            "p50_ratio": self.p50_ratio,
            "p99_ratio": self.ratio_of("p99_ms"),
            "cpu_ratio": self.ratio_of("cpu_us_per_request"),
            "rps_ratio": self.ratio_of("rps"),
        }


@dataclass
class WorkerResult:
    """Everything measured at one worker count, on the large database."""

    workers: int
    scenarios: dict[str, ScenarioResult]
    search_while_appending: SearchUnderWrites | None = None

    @property
    def name(self) -> str:
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}"

    def sides(self) -> list[Side]:
        """Every side measured, for totals (errors, noise)."""
        sides = [
            side for result in self.scenarios.values() for side in (result.service, result.bare)
        ]
        if self.search_while_appending is not None:
            sides += [self.search_while_appending.search, self.search_while_appending.append]
        return sides


@dataclass
class WithParts:
    """A scenario with content parts and an item, reported (no target) beside the one that
    does the same with string content (None when that one was not run)."""

    result: ScenarioResult
    plain: ScenarioResult | None

    @property
    def cpu_vs_plain(self) -> float | None:
        if self.plain is None:
            return None
        plain_cpu = self.plain.service.cpu_us_per_request
        return round(self.result.service.cpu_us_per_request / plain_cpu, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "ratio": self.result.ratio,
            "cpu_us_per_request": self.result.service.cpu_us_per_request,
            "cpu_vs_string_content": self.cpu_vs_plain,
        }


@dataclass
class Baseline:
    """The string-content append of an earlier run (its results JSON), to hold a run against."""

    source: str  # the file it was read from
    commit: str | None
    date: str
    cpu_us_per_request: float  # the service's
    bare_cpu_us_per_request: float

    @classmethod
    def from_json(cls, source: str, data: dict[str, Any]) -> Baseline:
        """KeyError when the file has no append scenario at its first worker count."""
        first = str(data["worker_counts"][0])
        append = data["workers"][first]["scenarios"]["append"]
        return cls(
            source=source,
            commit=data["commit"],
            date=data["date"],
            cpu_us_per_request=append["service"]["cpu_us_per_request"],
            bare_cpu_us_per_request=append["bare"]["cpu_us_per_request"],
        )

    @property
    def name(self) -> str:
        return (self.commit or "unknown commit")[:7]


def change_pct(now: float, before: float) -> float:
    return round((now / before - 1) * 100, 1)


@dataclass
class Report:
    date: str
    commit: str | None
    dirty: bool  # uncommitted changes to what the figures depend on
    engine: str  # "sqlite" or "postgresql"
    quick: bool
    scenarios_run: list[str]
    plan: Plan
    small_messages: int
    big_messages: int
    results: list[WorkerResult]  # one per worker count, in the order run
    growth: dict[str, Growth]  # at the first worker count
    search_index_build: CatchUp | None = None  # after growing the database (SQLite)
    machine: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    baseline: Baseline | None = None  # an earlier run's append, when one was given

    # --- the figures the targets judge (first worker count) ---------------------------------

    @property
    def first(self) -> WorkerResult:
        return self.results[0]

    def _scenario(self, key: str) -> ScenarioResult | None:
        return self.first.scenarios.get(key)

    def _ratio(self, key: str) -> float | None:
        found = self._scenario(key)
        return found.ratio if found else None

    def _p99_ms(self, key: str) -> float | None:
        found = self._scenario(key)
        return found.service.p99_ms if found else None

    def _growth(self, key: str) -> float | None:
        growth = self.growth.get(key)
        return growth.p50_ratio if growth else None

    @property
    def append_ratio(self) -> float | None:
        append = self._scenario("append")
        return append.ratio if append else None

    @property
    def append_p99_ms(self) -> float | None:
        append = self._scenario("append")
        return append.service.p99_ms if append else None

    @property
    def read_last50_ratio(self) -> float | None:
        read = self._scenario("read_last50")
        return read.ratio if read else None

    @property
    def read_last50_p99_ms(self) -> float | None:
        read = self._scenario("read_last50")
        return read.service.p99_ms if read else None

    @property
    def read_branched_cpu_vs_linear(self) -> float | None:
        """The last 50 of a session branched every 10 messages against one that never
        branched: the service's CPU per request (issue 15)."""
        branched, linear = self._scenario("read_last50_branched"), self._scenario("read_last50")
        if branched is None or linear is None:
            return None
        return round(branched.service.cpu_us_per_request / linear.service.cpu_us_per_request, 3)

    @property
    def fork_p99_ms(self) -> float | None:
        fork = self._scenario("fork_1000")
        return fork.service.p99_ms if fork else None

    @property
    def batch_messages_per_s(self) -> int | None:
        batch = self._scenario("append_batch_20")
        return batch.service.messages_per_s if batch else None

    @property
    def read_growth_1m_vs_10k(self) -> float | None:
        return self._growth("read_last50")

    @property
    def list_deep_growth_1m_vs_10k(self) -> float | None:
        return self._growth("list_deep")

    @property
    def list_growth_deep_vs_first(self) -> float | None:
        deep, first = self._scenario("list_deep"), self._scenario("list_first")
        if deep is None or first is None:
            return None
        return round(deep.service.p50_ms / first.service.p50_ms, 3)

    @property
    def search_while_appending_p99_ms(self) -> float | None:
        under_writes = self.first.search_while_appending
        return under_writes.search.p99_ms if under_writes else None

    def with_parts(self) -> dict[str, WithParts]:
        """The scenarios with content parts and an item that were run; no target."""
        return {
            key: WithParts(result, self._scenario(plain))
            for key, plain in WITH_PARTS.items()
            if (result := self._scenario(key)) is not None
        }

    def chat_turns(self) -> dict[int, ScenarioResult]:
        """The chat turn at each worker count it was run at; reported (no target on SQLite)."""
        return {
            result.workers: turn
            for result in self.results
            if (turn := result.scenarios.get(CHAT_TURN)) is not None
        }

    @property
    def chat_turn_scaling(self) -> float | None:
        """The service's chat turns a second at 2 workers against 1, when both were run."""
        turns = self.chat_turns()
        if 1 not in turns or 2 not in turns:
            return None
        return round(turns[2].service.rps / turns[1].service.rps, 3)

    @property
    def append_cpu_change_pct(self) -> float | None:
        """The string-content append's service CPU per request against the baseline's, in %."""
        append = self._scenario("append")
        if self.baseline is None or append is None:
            return None
        return change_pct(append.service.cpu_us_per_request, self.baseline.cpu_us_per_request)

    def targets(self) -> list[Target]:
        """The targets, defined for 1 worker and 16 connections (targets.py)."""
        return judge(self)

    # --- totals ------------------------------------------------------------------------------

    @property
    def background_cores_max(self) -> float:
        """The most CPU other processes used during one run, in cores."""
        return max(
            (side.background_cores for result in self.results for side in result.sides()),
            default=0.0,
        )

    @property
    def noisy(self) -> bool:
        return self.background_cores_max >= NOISY_CORES

    @property
    def errors(self) -> int:
        return sum(side.errors for result in self.results for side in result.sides())

    @property
    def problems(self) -> list[str]:
        """What the checks before the scenarios found (a wrong status, or the bare app's answer
        not the service's in shape or size: answers.sanity_check)."""
        return [
            problem
            for result in self.results
            for scenario in result.scenarios.values()
            for problem in scenario.problems
        ]

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "date": self.date,
            "commit": self.commit,
            "dirty": self.dirty,
            "engine": self.engine,
            "quick": self.quick,
            "worker_counts": [result.workers for result in self.results],
            "scenarios_run": self.scenarios_run,
            "append_ratio": self.append_ratio,
            "append_p99_ms": self.append_p99_ms,
            "append_many_ratio": self._ratio("append_many"),
            "append_many_p99_ms": self._p99_ms("append_many"),
            "read_last50_ratio": self.read_last50_ratio,
            "read_last50_p99_ms": self.read_last50_p99_ms,
            "batch_messages_per_s": self.batch_messages_per_s,
            "read_growth_1m_vs_10k": self.read_growth_1m_vs_10k,
            "list_deep_growth_1m_vs_10k": self.list_deep_growth_1m_vs_10k,
            "list_growth_deep_vs_first": self.list_growth_deep_vs_first,
            "search_while_appending_p99_ms": self.search_while_appending_p99_ms,
            # reported, no target
            "with_parts": {key: item.to_json() for key, item in self.with_parts().items()},
            # reported; on PostgreSQL 2 workers against 1 is a target
            "chat_turn": {
                "turns_per_s": {
                    str(workers): turn.service.turns_per_s
                    for workers, turn in self.chat_turns().items()
                },
                "p99_ms_a_turn": {
                    str(workers): turn.service.p99_ms for workers, turn in self.chat_turns().items()
                },
                "scaling_2_vs_1_workers": self.chat_turn_scaling,
            },
            "baseline": (
                None
                if self.baseline is None
                else {
                    **dataclasses.asdict(self.baseline),
                    "append_cpu_change_pct": self.append_cpu_change_pct,
                }
            ),
            "sizes": {"small_messages": self.small_messages, "big_messages": self.big_messages},
            # SQLite builds its search index behind the writes: what the seeding left waiting,
            # done apart (settle_database) and reported here; a write scenario's own is counted
            # in its figures (wrk.with_upkeep).
            "search_index_build": (
                self.search_index_build.to_json() if self.search_index_build else {}
            ),
            "plan": {
                "runs": plan.runs,
                "duration": plan.duration,
                "warmup": plan.warmup,
                "connections": plan.connections,
                "threads": plan.threads,
                "hot_session_messages": plan.hot_messages,
                "parts_session_messages": plan.parts_messages,
                "list_tenant_sessions": plan.list_sessions,
                "deep_page": plan.deep_page,
                "page_size": PAGE,
                "filler_tenants": plan.filler_tenants,
                "filler_sessions_per_tenant": plan.filler_sessions,
            },
            "machine": self.machine,
            "workers": {
                str(result.workers): {
                    "scenarios": {key: item.to_json() for key, item in result.scenarios.items()},
                    "growth": {key: item.to_json() for key, item in self.growth.items()},
                    "search_while_appending": (
                        result.search_while_appending.to_json()
                        if result.search_while_appending
                        else None
                    ),
                }
                for result in self.results
            },
            "targets": [target.to_json() for target in self.targets()],
            "background_cores_max": self.background_cores_max,
            "seconds": self.seconds,
        }
