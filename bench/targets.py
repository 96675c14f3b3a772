"""The targets a run is judged by (issue 13, item 5), per engine: `Target`, the limits each
engine is held to (`LIMITS`), and `judge`, which reads a report's figures against them.

Defined for 1 worker and 16 connections against the honest ceiling (bench/bare_app.py), in
one run of `make bench` on a 2-core machine with PostgreSQL on the same cores. PostgreSQL's
limits are lower where its round trips and its server's CPU share the cores (README,
Performance); what bounds each figure is said there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from report import Report

# How far appending a message with string content may move from a baseline's CPU per request
# (issue 12: content parts and items must not make the plain append dearer).
APPEND_CPU_TOLERANCE_PCT = 10.0
# Issue 13: on PostgreSQL, chat turns at 2 workers against 1.
CHAT_TURN_SCALING = 1.6


@dataclass
class Target:
    name: str
    value: float | None  # None: its scenario was not run
    op: str  # ">=" or "<="
    limit: float

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        return self.value >= self.limit if self.op == ">=" else self.value <= self.limit

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "value": self.value,
            "op": self.op,
            "limit": self.limit,
            "pass": self.passed,
        }


@dataclass(frozen=True)
class Limits:
    """What one engine is held to."""

    append_ratio: float  # x the bare app, one message
    append_p99_ms: float
    read_last50_ratio: float
    batch_messages_per_s: int  # batches of 20
    growth: float  # p50 on the big database against the small one (last 50, deep page)
    # The append's limits hold over many sessions too (append_many), not only on one.
    append_on_many: bool = False
    chat_turn_scaling: float | None = None  # 2 workers against 1


LIMITS = {
    "sqlite": Limits(
        append_ratio=0.5,
        append_p99_ms=10.0,
        read_last50_ratio=0.5,
        batch_messages_per_s=60_000,
        growth=1.2,
    ),
    "postgresql": Limits(
        append_ratio=0.25,
        append_p99_ms=25.0,
        read_last50_ratio=0.35,
        batch_messages_per_s=20_000,
        growth=1.2,
        append_on_many=True,
        chat_turn_scaling=CHAT_TURN_SCALING,
    ),
}
DEEP_VS_FIRST_PAGE = 1.5  # keyset pagination: a deep page costs what the first does
SEARCH_UNDER_WRITES_P99_MS = 100.0
BRANCHED_VS_LINEAR_CPU = 2.0
FORK_P99_MS = 100.0


def judge(report: Report) -> list[Target]:
    """The report's targets, at its first worker count; with a baseline, one more."""
    limits = LIMITS[report.engine]
    on_one = " (one session)" if limits.append_on_many else ""
    targets = [
        Target(
            f"append one message{on_one} >= {limits.append_ratio}x bare",
            report.append_ratio,
            ">=",
            limits.append_ratio,
        ),
        Target(
            f"append one message{on_one} p99 <= {limits.append_p99_ms:g} ms",
            report.append_p99_ms,
            "<=",
            limits.append_p99_ms,
        ),
    ]
    if limits.append_on_many:
        many = report.first.scenarios.get("append_many")
        targets += [
            Target(
                f"append one message (many sessions) >= {limits.append_ratio}x bare",
                many.ratio if many else None,
                ">=",
                limits.append_ratio,
            ),
            Target(
                f"append one message (many sessions) p99 <= {limits.append_p99_ms:g} ms",
                many.service.p99_ms if many else None,
                "<=",
                limits.append_p99_ms,
            ),
        ]
    growth = f"{limits.growth}x"
    targets += [
        Target(
            f"read the last 50 >= {limits.read_last50_ratio}x bare",
            report.read_last50_ratio,
            ">=",
            limits.read_last50_ratio,
        ),
        Target(
            f"batch of 20 >= {limits.batch_messages_per_s:,} messages/s",
            report.batch_messages_per_s,
            ">=",
            limits.batch_messages_per_s,
        ),
        Target(
            f"read the last 50: 1M vs 10k <= {growth}",
            report.read_growth_1m_vs_10k,
            "<=",
            limits.growth,
        ),
        Target(
            f"deep list page: 1M vs 10k <= {growth}",
            report.list_deep_growth_1m_vs_10k,
            "<=",
            limits.growth,
        ),
        Target(
            f"deep list page vs first page <= {DEEP_VS_FIRST_PAGE}x (keyset)",
            report.list_growth_deep_vs_first,
            "<=",
            DEEP_VS_FIRST_PAGE,
        ),
        Target(
            f"search p99 while 16 writers append <= {SEARCH_UNDER_WRITES_P99_MS:g} ms",
            report.search_while_appending_p99_ms,
            "<=",
            SEARCH_UNDER_WRITES_P99_MS,
        ),
    ]
    # Issue 15: branches cost a branched session's reads, not a linear one's; forks are quick.
    targets += [
        Target(
            f"last 50, branched every 10: CPU/req <= {BRANCHED_VS_LINEAR_CPU:g}x never branched",
            report.read_branched_cpu_vs_linear,
            "<=",
            BRANCHED_VS_LINEAR_CPU,
        ),
        Target(
            f"fork of 1,000 messages p99 <= {FORK_P99_MS:g} ms",
            report.fork_p99_ms,
            "<=",
            FORK_P99_MS,
        ),
    ]
    if limits.chat_turn_scaling is not None:
        targets.append(
            Target(
                f"chat turns, 2 workers vs 1 >= {limits.chat_turn_scaling}x",
                report.chat_turn_scaling,
                ">=",
                limits.chat_turn_scaling,
            )
        )
    if report.baseline is not None:
        change = report.append_cpu_change_pct
        targets.append(
            Target(
                f"append CPU/req vs {report.baseline.name}: within "
                f"+-{APPEND_CPU_TOLERANCE_PCT:.0f}%",
                None if change is None else abs(change),
                "<=",
                APPEND_CPU_TOLERANCE_PCT,
            )
        )
    return targets
