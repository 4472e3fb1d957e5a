"""The game day's table: per scenario, what was expected, what fired, how fast, what should not have."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from agent.gameday.run import ScenarioResult
from agent.gameday.scan import Finding
from agent.gameday.scenarios import RESOLVE_GOAL_S


def _seconds(value: float | None) -> str:
    if value is None:
        return "never"
    if value < 0:
        return "already firing"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m{seconds:02d}s"


def _per_alert(result: ScenarioResult, timing: str) -> str:
    getter = result.time_to_notify if timing == "notify" else result.time_to_resolve
    names = sorted(result.scenario.expected)
    return ", ".join(f"{name} {_seconds(getter(name))}" for name in names)


def rows(results: Sequence[ScenarioResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        s = r.scenario
        fired = sorted({name.split("{", 1)[0] for name in r.fired})
        out.append(
            {
                "scenario": s.name,
                "severity": s.severity,
                "expected": sorted(s.expected),
                "fired": fired,
                "notify": {name: r.time_to_notify(name) for name in sorted(s.expected)},
                "notify_goal_s": s.notify_goal_s,
                "resolved_after_recovery": {name: r.time_to_resolve(name) for name in sorted(s.expected)},
                "resolve_goal_s": RESOLVE_GOAL_S if s.severity == "critical" else None,
                "unexpected": r.unexpected,
                "host_load": r.host_load,
                "lingering": r.lingering,
                "carried_over": sorted(r.carried_over),
                "info": r.info,
                "host_cpu_busy": None if r.host_busy_during is None else round(r.host_busy_during, 3),
                "injected_at": round(r.injected_at, 1),
                "recovered_at": round(r.recovered_at, 1),
                "ended_at": round(r.ended_at, 1),
                "fault_minutes": round((r.recovered_at - r.injected_at) / 60, 1),
                "goals_met": r.goals_met,
                "recorded": str(r.recorded) if r.recorded else None,
            }
        )
    return out


def table(results: Sequence[ScenarioResult]) -> Table:
    t = Table(title="Game day", show_lines=True)
    for column in ("scenario", "expected", "fired", "time to notification", "resolved after recovery",
                   "unexpected", "host load / carried over / lasting", "goals"):  # fmt: skip
        t.add_column(column)
    for r in results:
        s = r.scenario
        t.add_row(
            f"{s.name}\n({s.severity})",
            "\n".join(sorted(s.expected)),
            "\n".join(sorted(r.fired)) or "-",
            _per_alert(r, "notify"),
            _per_alert(r, "resolve")
            if s.severity == "critical"
            else "(warning: no goal)\n" + _per_alert(r, "resolve"),
            "\n".join(r.unexpected) or "none",
            "\n".join([*r.host_load, *sorted(r.carried_over), *r.lingering]) or "-",
            "met" if r.goals_met else "MISSED",
        )
    return t


def markdown(results: Sequence[ScenarioResult], findings: Sequence[Finding], scanned: int) -> str:
    columns = ("scenario", "severity", "expected", "fired", "time to notification",
               "resolved after recovery", "unexpected", "goals")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in results:
        s = r.scenario
        fired = ", ".join(sorted(r.fired)) or "-"
        resolve = _per_alert(r, "resolve")
        if s.severity != "critical":
            resolve = f"({resolve})"
        cells = (s.name, s.severity, ", ".join(sorted(s.expected)), fired, _per_alert(r, "notify"), resolve,
                 ", ".join(r.unexpected) or "none", "met" if r.goals_met else "missed")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"PII / secret scan: {scanned} files (raw OTLP bodies, agent logs, Prometheus series): "
        f"{len(findings)} finding(s)."
    )
    return "\n".join(lines) + "\n"


def write_json(
    path: Path, results: Sequence[ScenarioResult], findings: Sequence[Finding], scanned: int
) -> None:
    document = {
        "scenarios": rows(results),
        "scan": {"files": scanned, "findings": [f.__dict__ for f in findings]},
    }
    path.write_text(json.dumps(document, indent=2))
