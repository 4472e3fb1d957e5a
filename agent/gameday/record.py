"""A live scenario's series, written as a promtool test that replays it against the rules in CI.

For the time range of a scenario (with a lead-in of healthy history), every raw series the rules read
is pulled from the live Prometheus at the scrape step and written as ``input_series`` (in promtool's
expanding notation where values repeat or grow evenly). The ``promql_expr_test`` cases then say what
the game day measured, in terms a replay can hold to: a replay evaluates on the step while the live
Prometheus ran a few seconds off it, so the cases assert states, not the exact second of a change:

- before the fault, none of the scenario's expected alerts fires (unless it was already firing live);
- at recovery, every expected alert fires (the live run was notified of each by then);
- after recovery, none fires any more (the live run got each one's resolved notification first);
- every minute from ``quiet_from`` on (the end of the scenario before, whose aftermath the lead-in may
  hold and whose own recording checks it), no alert outside the expected, tolerated and host-load ones
  fires.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from agent.gameday.stack import RULES_DIR, http_json

_IDENTIFIER = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Histogram buckets are most of the series (one per bucket, operation, outcome, tenant) and the rules
# read them only through histogram_quantile(sum by (<these>, le) (...)), selecting at most on these
# labels (VoiceCallerWaitHigh: the voice turns): recording the sum over the other labels replays the
# same quantiles at a fraction of the size. tests/unit/test_alert_rules.py checks
# that every rule reading them still aggregates to these labels.
BUCKET_LABELS: dict[str, tuple[str, ...]] = {
    "sales_agent_dependency_duration_seconds_bucket": ("dependency", "le"),
    "sales_agent_turn_response_latency_seconds_bucket": ("sales_agent_turn_mode", "le"),
}


def _names(alertnames: Iterable[str]) -> str:
    return "|".join(sorted(alertnames))


def _firing_names(alertnames: Iterable[str]) -> str:
    return f'group by (alertname) (ALERTS{{alertstate="firing", alertname=~"{_names(alertnames)}"}})'


def rule_metric_names(available: Iterable[str]) -> list[str]:
    """The raw metric names the rules select, among those Prometheus has (recorded ones excluded)."""
    text = "\n".join(path.read_text() for path in sorted(RULES_DIR.glob("*.rules.yml")))
    tokens = set(_IDENTIFIER.findall(text))
    return sorted(name for name in available if name in tokens and not name.startswith("ALERTS"))


def _format(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (Python's repr), without a ".0"."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def expand(values: Sequence[float | None]) -> str:
    """promtool's expanding notation: ``_`` for missing, ``a+bxN`` for runs growing by ``b``."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        value = values[i]
        if value is None:
            j = i
            while j + 1 < len(values) and values[j + 1] is None:
                j += 1
            parts.append("_" if j == i else f"_x{j - i + 1}")
            i = j + 1
            continue
        # Longest run from i with a constant step that the formatted numbers reproduce exactly.
        j = i
        if i + 1 < len(values) and values[i + 1] is not None:
            step = float(_format(values[i + 1])) - float(_format(value))
            step_text = _format(step)
            while j + 1 < len(values) and values[j + 1] is not None:
                predicted = float(_format(value)) + float(step_text) * (j + 1 - i)
                if not math.isclose(predicted, values[j + 1], rel_tol=1e-9, abs_tol=1e-9):
                    break
                j += 1
            if j - i >= 2:
                sign = "+" if step >= 0 else "-"
                parts.append(f"{_format(value)}{sign}{_format(abs(float(step_text)))}x{j - i}")
                i = j + 1
                continue
        parts.append(_format(value))
        i += 1
    return " ".join(parts)


def _series_selector(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    inner = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _range(prom_url: str, expr: str, start: float, end: float, step_s: int) -> list[dict[str, Any]]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s}s"}
    body = http_json(f"{prom_url}/api/v1/query_range?" + urllib.parse.urlencode(params), timeout_s=120)
    return body["data"]["result"]


def _duration(seconds: float) -> str:
    return f"{round(seconds)}s"


def write_promtool_test(
    prom_url: str,
    *,
    scenario: str,
    description: str,
    start: float,
    end: float,
    step_s: int,
    injected_at: float,
    recovered_at: float,
    quiet_from: float,
    expected: Iterable[str],
    already_firing: Iterable[str],
    allowed: Iterable[str],
    runbook_base: str,
    out: Path,
) -> Path:
    """Record [start, end] of the live Prometheus into a promtool test file at ``out``."""
    start = math.floor(start / step_s) * step_s  # align to the step: the replay evaluates on it
    points = int((end - start) // step_s) + 1
    names = rule_metric_names(http_json(f"{prom_url}/api/v1/label/__name__/values", timeout_s=30)["data"])
    series: list[dict[str, str]] = []
    for name in names:
        expr = name
        if name in BUCKET_LABELS:
            expr = f"sum by (job, instance, {', '.join(BUCKET_LABELS[name])}) ({name})"
        for result in _range(prom_url, expr, start, start + (points - 1) * step_s, step_s):
            by_time = {round(float(t)): float(v) for t, v in result["values"]}
            values = [by_time.get(round(start + k * step_s)) for k in range(points)]
            if any(v is not None for v in values):
                labels = {**result["metric"], "__name__": name}
                series.append({"series": _series_selector(labels), "values": expand(values)})

    def step_before(at: float) -> str:
        return _duration(math.floor((at - start) / step_s) * step_s)

    expected = sorted(expected)
    fresh = sorted(set(expected) - set(already_firing))
    tests: list[dict[str, Any]] = []
    if fresh:
        tests.append(
            {"expr": _firing_names(fresh), "eval_time": step_before(injected_at - 15), "exp_samples": []}
        )
        tests.append({"expr": _firing_names(fresh), "eval_time": step_before(end - 15), "exp_samples": []})
    samples = [{"labels": f'{{alertname="{name}"}}', "value": 1} for name in expected]
    tests.append(
        {"expr": _firing_names(expected), "eval_time": step_before(recovered_at - 15), "exp_samples": samples}
    )
    unexpected = (
        'group by (alertname) (ALERTS{alertstate="firing", severity!="info", '
        f'alertname!~"{"|".join(sorted(allowed))}"}})'
    )
    first_minute = max(60, math.ceil((quiet_from - start) / 60) * 60)
    for minute in range(first_minute, int(end - start), 60):
        tests.append({"expr": unexpected, "eval_time": _duration(minute), "exp_samples": []})
    recorded = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    document = {
        "rule_files": [f"../{path.name}" for path in sorted(RULES_DIR.glob("*.rules.yml"))],
        "evaluation_interval": f"{step_s}s",
        "tests": [
            {
                "name": f"game day {scenario}: {description}",
                "interval": f"{step_s}s",
                "external_labels": {"runbook_base": runbook_base},
                "input_series": sorted(series, key=lambda s: s["series"]),
                "promql_expr_test": tests,
            }
        ],
    }
    header = (
        f"# Recorded by `sales-agent gameday` ({recorded}): scenario {scenario}, {len(series)} series\n"
        f"# at a {step_s} s step from unix time {start:.0f}. The checkpoints expect exactly the alerts that\n"
        "# fired in the live run; every minute, nothing outside the scenario's expected and tolerated\n"
        "# alerts fires. Regenerate with `sales-agent gameday --record-dir alert-rules/tests`.\n"
    )
    out.write_text(header + yaml.safe_dump(document, sort_keys=False, width=200))
    return out
