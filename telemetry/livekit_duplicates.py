"""livekit's duplicates of our metrics are not recorded at all, not only left out of aggregation.

``views.LIVEKIT_DUPLICATES`` gives livekit-agents' per-LLM-attempt usage instruments and its tool
duration a dropping View, so nothing of them is aggregated or exported. The recording itself still
ran on every LLM attempt and tool call: livekit builds each measurement's attributes (copying the
job's attribution dict), and every measurement crosses the API proxy and the SDK's measurement path
before the View drops it. Measured in instructions (bench item 8b, a simulated text call): 5.7 M of
the 47.5 M telemetry adds to a call, for ~74 measurements per call that no reader ever sees.

So with ``SALES_AGENT_METRICS_DETAIL=default`` the two livekit functions that record only duplicates
are wrapped at telemetry set-up:

- ``otel_metrics.collect_usage`` returns at once for an ``LLMMetrics`` event: every instrument it
  records for one (``lk.agents.usage.llm_{input,output}_tokens``, ``gen_ai.client.token.usage``,
  ``gen_ai.client.operation.duration``, ``gen_ai.client.operation.time_to_first_chunk``) is a
  duplicate. An event with cached prompt tokens still goes through, for
  ``lk.agents.usage.llm_input_cached_tokens``, which ours has no counterpart of. STT, TTS, realtime and
  interruption events are untouched.
- ``otel_metrics.record_execute_tool_duration`` (``gen_ai.execute_tool.duration``) records nothing.

livekit calls both through the module (``otel_metrics.collect_usage(ev)``), so replacing the module
attribute is enough. Hand-written because livekit has no switch for its own metrics, and the SDK can
only disable a whole meter (livekit's other instruments, ``lk.agents.turn.*`` and
``gen_ai.invoke_agent.duration``, are kept). ``SALES_AGENT_METRICS_DETAIL=all`` leaves livekit as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_WRAPPED = "__sales_agent_skips_duplicates__"

# The duplicate instruments each wrapped function records (names as livekit creates them); checked
# against views.LIVEKIT_DUPLICATES by the tests, so the two lists cannot drift apart.
SKIPPED_INSTRUMENTS: dict[str, tuple[str, ...]] = {
    "collect_usage": (
        "lk.agents.usage.llm_input_tokens",
        "lk.agents.usage.llm_output_tokens",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
    ),
    "record_execute_tool_duration": ("gen_ai.execute_tool.duration",),
}


def skip_livekit_duplicate_recording() -> None:
    """Wrap livekit's two duplicate-only recorders (idempotent)."""
    from livekit.agents.metrics import LLMMetrics
    from livekit.agents.telemetry import otel_metrics

    collect_usage: Callable[[Any], None] = otel_metrics.collect_usage
    if getattr(collect_usage, _WRAPPED, False):
        return

    def collect_usage_without_llm_duplicates(ev: Any) -> None:
        if isinstance(ev, LLMMetrics) and not ev.prompt_cached_tokens:
            return
        collect_usage(ev)

    def record_execute_tool_duration(duration: float, *, tool_name: str, error: bool = False) -> None:
        return None

    for wrapper, original in (
        (collect_usage_without_llm_duplicates, collect_usage),
        (record_execute_tool_duration, otel_metrics.record_execute_tool_duration),
    ):
        setattr(wrapper, _WRAPPED, True)
        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    otel_metrics.collect_usage = collect_usage_without_llm_duplicates
    otel_metrics.record_execute_tool_duration = record_execute_tool_duration


def restore_livekit_duplicate_recording() -> None:
    """Undo ``skip_livekit_duplicate_recording`` (tests)."""
    from livekit.agents.telemetry import otel_metrics

    for name in SKIPPED_INSTRUMENTS:
        current = getattr(otel_metrics, name)
        if getattr(current, _WRAPPED, False):
            setattr(otel_metrics, name, current.__wrapped__)
