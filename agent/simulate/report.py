"""The run summary: totals and percentiles, and one row per call with its trace id."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from agent.percentiles import percentile
from agent.simulate.runner import CallResult

STAGES = ("endpointing", "stt", "llm", "tools", "tts")


@dataclass(frozen=True)
class Summary:
    mode: str
    calls: int
    failed_calls: int
    turns: int
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    fallbacks: int
    tool_errors: int
    leads: int
    meetings: int
    outbox_depth: int
    outbox_oldest_age_s: float | None
    outcomes: dict[str, int]
    wall_s: float
    # The caller's wait (end of their turn -> first output of the reply), as the turn metric records it.
    wait_p50_s: float | None = None
    wait_p95_s: float | None = None
    stages: dict[str, tuple[float | None, float | None]] | None = None  # stage -> (p50, p95)
    interruptions: int = 0
    barge_in_p50_s: float | None = None  # the caller starts talking over a reply -> its audio is cut
    speech_fallbacks: dict[str, int] | None = None  # stt / tts -> fallbacks in the batch


def summarise(
    results: Sequence[CallResult],
    *,
    fallbacks: int,
    outbox_depth: int,
    outbox_oldest_age_s: float | None,
    wall_s: float,
    mode: str = "text",
    speech_fallbacks: dict[str, int] | None = None,
) -> Summary:
    ttfts = [t for r in results for t in r.ttfts_s]
    turns = [t for r in results for t in r.recorded_turns]
    waits = [t.wait_s for t in turns]
    stages = {}
    for stage in STAGES:
        values = [t.stages[stage] for t in turns if stage in t.stages]
        if values:
            stages[stage] = (percentile(values, 50), percentile(values, 95))
    return Summary(
        mode=mode,
        calls=len(results),
        failed_calls=sum(1 for r in results if r.failed),
        turns=sum(r.turns for r in results),
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
        fallbacks=fallbacks,
        tool_errors=sum(r.tool_errors for r in results),
        leads=sum(1 for r in results if r.lead_captured),
        meetings=sum(r.meetings for r in results),
        outbox_depth=outbox_depth,
        outbox_oldest_age_s=outbox_oldest_age_s,
        outcomes=dict(Counter(r.outcome for r in results)),
        wall_s=wall_s,
        wait_p50_s=percentile(waits, 50),
        wait_p95_s=percentile(waits, 95),
        stages=stages,
        interruptions=sum(r.interruptions for r in results),
        barge_in_p50_s=percentile([x for r in results for x in r.barge_in_reactions_s], 50),
        speech_fallbacks=speech_fallbacks,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def summary_table(summary: Summary) -> Table:
    table = Table(title="simulate: summary", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    outcomes = ", ".join(f"{k}={v}" for k, v in sorted(summary.outcomes.items())) or "-"
    age = "-" if summary.outbox_oldest_age_s is None else f"{summary.outbox_oldest_age_s:.1f} s"
    rows = [
        ("mode", summary.mode),
        ("calls", f"{summary.calls} ({summary.failed_calls} failed)"),
        ("outcomes", outcomes),
        ("turns", str(summary.turns)),
        ("caller wait p50", _ms(summary.wait_p50_s)),
        ("caller wait p95", _ms(summary.wait_p95_s)),
        *(
            (f"  {stage} p50 / p95", f"{_ms(p50)} / {_ms(p95)}")
            for stage, (p50, p95) in (summary.stages or {}).items()
        ),
        ("time to first token p50", _ms(summary.ttft_p50_s)),
        ("time to first token p95", _ms(summary.ttft_p95_s)),
        ("LLM fallbacks", str(summary.fallbacks)),
        ("tool errors", str(summary.tool_errors)),
        ("leads captured", str(summary.leads)),
        ("meetings booked", str(summary.meetings)),
        ("outbox backlog", f"{summary.outbox_depth} (oldest {age})"),
        ("wall time", f"{summary.wall_s:.1f} s"),
    ]
    if summary.mode == "voice":
        speech = summary.speech_fallbacks or {}
        rows[-1:-1] = [
            ("STT / TTS fallbacks", f"{speech.get('stt', 0)} / {speech.get('tts', 0)}"),
            ("interruptions (barge-in)", str(summary.interruptions)),
            ("barge-in heard after p50", _ms(summary.barge_in_p50_s)),
        ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def calls_table(results: Sequence[CallResult]) -> Table:
    table = Table(title="simulate: calls", show_header=True, header_style="bold")
    for column in ("#", "tenant", "script", "outcome", "turns", "tool errors", "trace id"):
        table.add_column(column, no_wrap=column == "trace id")
    for r in results:
        # Error text is not markup: "[/x]" in a message would make rich raise instead of printing it.
        outcome = r.outcome if not r.error else f"{r.outcome} ({escape(r.error[:40])})"
        if r.end_reason:
            outcome = f"{outcome} ({r.end_reason})"
        table.add_row(
            str(r.index), r.tenant_id, r.script, outcome, str(r.turns), str(r.tool_errors), r.trace_id or "-"
        )
    return table
