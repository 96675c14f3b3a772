"""A report shown: the summary a run prints at its end, and bench/RESULTS.md (and
RESULTS-postgresql.md), the page a full run writes."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from plan import SEARCH_PAUSE_MS
from report import (
    Growth,
    Report,
    ScenarioResult,
    WithParts,
    WorkerResult,
    change_pct,
)
from targets import CHAT_TURN_SCALING, Target


def verdict_lines(targets: list[Target]) -> list[str]:
    lines = []
    for target in targets:
        shown = "n/a" if target.value is None else f"{target.value:,.2f}"
        verdict = "PASS" if target.passed else "FAIL"
        lines.append(f"{verdict}  {target.name:48} measured {shown}")
    return lines


HEADER = [
    "scenario",
    "service req/s",
    "bare req/s",
    "ratio",
    "p50 ms",
    "p99 ms",
    "CPU us/req",
    "bare CPU us/req",
]


def table_rows(scenarios: dict[str, ScenarioResult]) -> list[list[str]]:
    """One row a scenario; the chat turn's in turns (a second, and CPU and latency a turn)."""
    rows = []
    for result in scenarios.values():
        service, bare, db = result.service, result.bare, result.service.db_cpu_us_per_request
        per, unit = result.requests_per_turn, (" turns" if result.requests_per_turn > 1 else "")
        cpu_unit = "/turn" if per > 1 else ""
        rows.append(
            [
                result.label,
                f"{service.rps / per:,.0f}{unit}",
                f"{bare.rps / per:,.0f}{unit}",
                f"{result.ratio:.2f}x",
                f"{service.p50_ms:.2f}",
                f"{service.p99_ms:.2f}",
                f"{service.cpu_us_per_request * per:,.0f}{cpu_unit}"
                + ("" if db is None else f" +{db * per:,.0f} db"),
                f"{bare.cpu_us_per_request * per:,.0f}{cpu_unit}",
            ]
        )
    return rows


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells)

    return "\n".join([line(HEADER), "  ".join("-" * w for w in widths), *map(line, rows)])


def markdown_table(rows: list[list[str]]) -> str:
    header = [cell.replace("us", "µs") for cell in HEADER]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def growth_rows(growth: dict[str, Growth]) -> list[list[str]]:
    return [
        [
            item.label,
            f"{item.small.p50_ms:.2f} / {item.small.p99_ms:.2f}",
            f"{item.big.p50_ms:.2f} / {item.big.p99_ms:.2f}",
            f"{item.p50_ratio:.2f}x",
            f"{item.ratio_of('cpu_us_per_request'):.2f}x",
        ]
        for item in growth.values()
    ]


def under_writes_line(result: WorkerResult) -> str | None:
    under_writes = result.search_while_appending
    if under_writes is None:
        return None
    found, wrote = under_writes.search, under_writes.append
    return (
        f"{result.name}: search p50 {found.p50_ms:.1f} ms, p99 {found.p99_ms:.1f} ms "
        f"({found.rps:.1f} searches/s); the appends beside them {wrote.rps:,.0f} req/s, "
        f"p50 {wrote.p50_ms:.2f} ms, p99 {wrote.p99_ms:.2f} ms"
    )


def with_parts_line(item: WithParts) -> str:
    """A scenario with content parts and an item: its figures beside the string content's."""
    result, service = item.result, item.result.service
    line = (
        f"{result.label}: {result.ratio:.2f}x bare, {service.cpu_us_per_request:,.0f} µs of "
        f"CPU a request (bare {result.bare.cpu_us_per_request:,.0f})"
    )
    if item.plain is not None and item.cpu_vs_plain is not None:
        line += (
            f", {item.cpu_vs_plain:.2f}x the {item.plain.service.cpu_us_per_request:,.0f} µs "
            "of the same with string content"
        )
    return line + "; reported, no target"


def chat_turn_lines(report: Report) -> list[str]:
    """The chat turn at each worker count, and 2 workers against 1 (PostgreSQL's target)."""
    lines = []
    for workers, turn in report.chat_turns().items():
        service, bare = turn.service, turn.bare
        lines.append(
            f"{workers} worker{'s' if workers > 1 else ''}: {service.turns_per_s:,.0f} turns/s "
            f"(bare {bare.turns_per_s:,.0f}, {turn.ratio:.2f}x), p50 {service.p50_ms:.1f} ms, "
            f"p99 {service.p99_ms:.1f} ms a turn, {turn.cpu_us_per_turn(service):,.0f} µs of "
            f"CPU a turn (bare {turn.cpu_us_per_turn(bare):,.0f})"
        )
    scaling = report.chat_turn_scaling
    if scaling is not None:
        target = (
            f" (target >= {CHAT_TURN_SCALING}x)"
            if report.engine == "postgresql"
            else " (reported, no target)"
        )
        lines.append(f"2 workers against 1: {scaling:.2f}x the turns a second{target}")
    return lines


CHAT_TURN_NOTE = (
    "A turn is the user's message appended, the context read (`/context?max_messages=20`, of "
    "a session seeded with 20 messages), the assistant's answer appended, on one session, "
    "each request sent once the answer before it has come; the turns go round 1,000 "
    "sessions from 64 connections (wrk, one connection a thread). turns/s is the requests a "
    "second over 3; p50/p99 are a whole turn's latency, its first request made to its last "
    "answer in (bench/wrk/chat_turn.lua). The writes' search indexing and WAL checkpointing "
    "are counted in, as in the other write scenarios."
)


def baseline_line(report: Report) -> str | None:
    """The string-content append against the baseline run's, the bare app's beside it (how
    much the machine or the framework moved on their own)."""
    baseline, append = report.baseline, report.first.scenarios.get("append")
    if baseline is None or append is None:
        return None
    now, bare = append.service.cpu_us_per_request, append.bare.cpu_us_per_request
    return (
        f"append one message: {now:,.0f} µs of CPU a request against "
        f"{baseline.cpu_us_per_request:,.0f} at {baseline.name} ({baseline.date[:10]}, "
        f"{baseline.source}): {report.append_cpu_change_pct:+.1f}%; the bare app's "
        f"{bare:,.0f} against {baseline.bare_cpu_us_per_request:,.0f}: "
        f"{change_pct(bare, baseline.bare_cpu_us_per_request):+.1f}%"
    )


def console_summary(report: Report) -> str:
    """What a run prints at its end."""
    parts = []
    for result in report.results:
        parts += [
            f"\n== {report.engine}, {result.name}, {report.big_messages:,} messages; "
            "p50/p99/CPU are the service's ==",
            text_table(table_rows(result.scenarios)),
        ]
    batch = report.first.scenarios.get("append_batch_20")
    if batch is not None:
        parts.append(
            f"\nbatch of 20: {batch.service.messages_per_s:,.0f} messages/s (service), "
            f"{batch.bare.messages_per_s:,.0f} (bare)"
        )
    for result in report.results:
        line = under_writes_line(result)
        if line is not None:
            assert result.search_while_appending is not None
            parts.append(f"\n{result.search_while_appending.label}, {line}")
    turn_lines = chat_turn_lines(report)
    if turn_lines:
        parts.append("\n== a chat turn (3 requests; latency a turn) ==")
        parts += [f"  {line}" for line in turn_lines]
    with_parts = report.with_parts()
    if with_parts:
        parts.append("\n== content parts (a ~2 KB image) and an item ==")
        parts += [f"  {with_parts_line(item)}" for item in with_parts.values()]
    line = baseline_line(report)
    if line is not None:
        parts.append(f"\n== against the baseline ==\n  {line}")
    parts.append(f"\n== growth {report.small_messages:,} -> {report.big_messages:,} messages ==")
    for row in growth_rows(report.growth):
        parts.append(
            f"  {row[0]:40} p50/p99 ms {row[1]:>13} -> {row[2]:>13}  p50 {row[3]}  cpu {row[4]}"
        )
    parts += [
        "\n== targets (first worker count; defined for 1 worker, 16 connections) ==",
        "\n".join(verdict_lines(report.targets())),
    ]
    if report.noisy:
        parts.append(
            f"\nWARNING: other processes used up to {report.background_cores_max:.1f} cores "
            "during the runs: the figures are noisy; run again on a quiet machine."
        )
    return "\n".join(parts)


# --- the results page ------------------------------------------------------------------

NOTES_MARKER = "<!-- notes: kept by bench/run.py when it rewrites this file -->"


def write_markdown(path: Path, report: Report) -> None:
    """Rewrite the results page; whatever follows NOTES_MARKER in it (a diagnosis written by
    hand) is kept."""
    notes = ""
    if path.exists():
        previous = path.read_text()
        if NOTES_MARKER in previous:
            notes = previous[previous.index(NOTES_MARKER) :]
    path.write_text(results_page(report) + ("\n" + notes if notes else ""))


def results_page(report: Report) -> str:
    plan = report.plan
    parts = [
        f"# Benchmark results ({report.engine})",
        "",
        f"Last run: {report.date}, commit `{report.commit}`"
        + (" (with uncommitted changes to the service)" if report.dirty else "")
        + f", {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores. wrk -t{plan.threads} -c{plan.connections}, "
        f"{plan.runs} x {plan.duration} s per scenario and side after "
        f"{plan.warmup} s of warm-up, service and bare runs alternating; medians. "
        "p50/p99 and CPU are the service's. Regenerate with `make bench`.",
        "",
    ]
    if report.noisy:
        parts += [
            f"**Noisy run:** other processes used up to {report.background_cores_max:.1f} "
            "cores of the machine during some runs, so absolute figures are low and tails "
            "long; ratios taken within the run are the figures to trust.",
            "",
        ]
    for result in report.results:
        parts += [
            f"## {result.name}, database of {report.big_messages:,} messages",
            "",
            markdown_table(table_rows(result.scenarios)),
            "",
        ]
    parts += [
        f"## Growth: {report.small_messages:,} → {report.big_messages:,} messages",
        "",
        f"Small: the {plan.hot_messages:,}-message session that is read and the "
        f"listed tenant's {plan.list_sessions:,} sessions of one message each. Large: "
        f"the same plus {plan.filler_tenants} tenants of {plan.filler_sessions} "
        "sessions, seeded through the batch route, to the total shown. Keys `*_1m_vs_10k` of "
        "latest.json are the p50 ratios below.",
        "",
        "| scenario | small p50 / p99 ms | large p50 / p99 ms | p50 ratio | CPU ratio |",
        "|---|---:|---:|---:|---:|",
        *("| " + " | ".join(row) + " |" for row in growth_rows(report.growth)),
        "",
        *search_index_lines(report),
        *under_writes_lines(report),
        *chat_turn_page_lines(report),
        *with_parts_lines(report),
        *baseline_lines(report),
        "## Targets (1 worker, 16 connections)",
        "",
        "```",
        *verdict_lines(report.targets()),
        "```",
        "",
        "## What it means",
        "",
        interpretation(report),
        "",
    ]
    return "\n".join(parts)


def under_writes_lines(report: Report) -> list[str]:
    """The search scenario that runs beside the appends (the service alone)."""
    lines = [f"- {line}." for result in report.results if (line := under_writes_line(result))]
    if not lines:
        return []
    return [
        "## Searching while writers append",
        "",
        f"One client searches (a rare word, `limit=10`) every {SEARCH_PAUSE_MS} ms while "
        f"{report.plan.connections} writers append to one session without pause; two wrk "
        "runs side by side, on the service alone:",
        "",
        *lines,
        "",
    ]


def chat_turn_page_lines(report: Report) -> list[str]:
    lines = chat_turn_lines(report)
    if not lines:
        return []
    return ["## A chat turn", "", CHAT_TURN_NOTE, "", *(f"- {line}." for line in lines), ""]


def with_parts_lines(report: Report) -> list[str]:
    """The scenarios with content parts and an item (measured and reported, no target)."""
    with_parts = report.with_parts()
    if not with_parts:
        return []
    return [
        "## Content parts and an item",
        "",
        "Messages whose content is an array of parts, a text part and a ~2 KB image as a "
        "base64 data URL, with a provider item (an OpenAI Responses `message` item): ~2.4 KB "
        f"a message; the session read holds {report.plan.parts_messages:,} of them. "
        "Measured and reported, with no target:",
        "",
        *(f"- {with_parts_line(item)}." for item in with_parts.values()),
        "",
    ]


def baseline_lines(report: Report) -> list[str]:
    line = baseline_line(report)
    if line is None:
        return []
    return ["## Against the baseline", "", f"- {line}.", ""]


def search_index_lines(report: Report) -> list[str]:
    """The search indexing (and WAL checkpoint) that waited when runs ended (SQLite): after the
    seeding, measured apart; after each write scenario's runs, counted in its figures."""
    build = report.search_index_build
    if report.engine != "sqlite" or build is None:
        return []
    figures = build.to_json()
    lines = [
        "## Search index and WAL, kept current by the writes",
        "",
        "On SQLite, appends do not index their messages for search: the service does it behind "
        "them, in the background, during the runs as in production. What is still waiting when "
        "a run ends, and the write-ahead log not yet copied into the database, are brought up "
        "to date right after it; for the service's write runs that time is added to the run's "
        "duration and its CPU to the service's, so every write figure above includes the "
        "indexing and checkpointing its messages need. After the seeding it is done apart:",
        "",
        f"- after seeding: {figures['messages']:,} messages indexed in "
        f"{figures['seconds']:.1f} s ({figures['messages_per_s']:,} messages/s), not counted;",
    ]
    for result in report.first.scenarios.values():
        if result.search_catch_up and result.search_catch_up.messages:
            catch_up = result.search_catch_up.to_json()
            lines.append(
                f'- "{result.label}": {catch_up["messages"]:,} messages written in its measured '
                f"runs, {catch_up['seconds']:.2f} s of catching up after them, counted in;"
            )
    lines[-1] = lines[-1].removesuffix(";") + "."
    return [*lines, ""]


def interpretation(report: Report) -> str:
    scenarios = report.first.scenarios
    targets = report.targets()
    missed = [target.name for target in targets if not target.passed]
    append, read = scenarios["append"], scenarios["read_last50"]
    text = (
        "The bare app is the ceiling: the same routes and handler shapes on the same server, "
        "each answering the service's own JSON built once at its start-up (bench/bare_app.py "
        "says why that is fair), without database or auth, so a ratio says what share of the "
        "framework's own throughput the service keeps and `CPU µs/req` minus the bare figure "
        "is what the service adds per request. Write figures include the search indexing and "
        "WAL checkpointing their messages need. Appending one message costs "
        f"{append.service.cpu_us_per_request:,.0f} µs of server CPU against "
        f"{append.bare.cpu_us_per_request:,.0f} µs bare "
        f"({append.ratio:.2f}x the bare throughput, p99 {append.service.p99_ms:.1f} "
        f"ms, 16 writers on one session); reading the last 50 costs "
        f"{read.service.cpu_us_per_request:,.0f} µs against "
        f"{read.bare.cpu_us_per_request:,.0f} µs ({read.ratio:.2f}x). Batches reach "
        f"{report.batch_messages_per_s or 0:,.0f} messages/s. Growing the database "
        f"{report.big_messages / report.small_messages:.0f}-fold "
        f"changes the last-50 read by {report.read_growth_1m_vs_10k or 0:.2f}x and a deep list "
        f"page by {report.list_deep_growth_1m_vs_10k or 0:.2f}x, and a deep page costs "
        f"{report.list_growth_deep_vs_first or 0:.2f}x the first"
    )
    growth_ok = all(
        target.passed
        for target in targets
        if "1M vs 10k" in target.name or "(keyset)" in target.name
    )
    text += (
        ": indexed keyset reads, whose cost does not depend on how much is stored or how far "
        "one has paged. "
        if growth_ok
        else ": some read grows with the data (look for a scan or an OFFSET). "
    )
    if missed:
        text += "Missed: " + "; ".join(missed) + "."
    else:
        text += "Every target is met."
    return text
