"""livekit's duplicates of our metrics are not recorded at all with SALES_AGENT_METRICS_DETAIL=default.

The session's telemetry (tests/conftest.py) runs with ``all``, so livekit records through the global
providers as shipped by livekit; each test here switches the skip on and restores it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from livekit.agents.metrics import LLMMetrics, TTSMetrics
from livekit.agents.telemetry import otel_metrics
from opentelemetry.sdk.trace import TracerProvider

from telemetry import setup as telemetry_setup
from telemetry.livekit_duplicates import (
    SKIPPED_INSTRUMENTS,
    restore_livekit_duplicate_recording,
    skip_livekit_duplicate_recording,
)
from telemetry.settings import TelemetrySettings
from telemetry.views import LIVEKIT_DUPLICATES
from tests.conftest import OtelCapture

DUPLICATES = sorted(LIVEKIT_DUPLICATES)


@pytest.fixture
def skipping() -> Iterator[None]:
    skip_livekit_duplicate_recording()
    try:
        yield
    finally:
        restore_livekit_duplicate_recording()


def _llm_metrics(cached: int = 0) -> LLMMetrics:
    return LLMMetrics(
        label="test", request_id="r1", timestamp=0.0, duration=0.4, ttft=0.1, cancelled=False,
        completion_tokens=12, prompt_tokens=300, prompt_cached_tokens=cached, total_tokens=312,
        tokens_per_second=30.0,
    )  # fmt: skip


def _tts_metrics() -> TTSMetrics:
    return TTSMetrics(
        label="test", request_id="r2", timestamp=0.0, ttfb=0.1, duration=0.5, audio_duration=1.2,
        cancelled=False, characters_count=42, streamed=True,
    )  # fmt: skip


def _counts(otel: OtelCapture, names: list[str]) -> dict[str, float]:
    return {name: otel.metric_value(name) for name in names}


def _livekit_event(otel: OtelCapture) -> dict[str, float]:
    """What one LLM attempt and one tool call make livekit record, per duplicate instrument."""
    before = _counts(otel, DUPLICATES)
    otel_metrics.collect_usage(_llm_metrics())
    otel_metrics.record_execute_tool_duration(0.02, tool_name="capture_basic_info")
    after = _counts(otel, DUPLICATES)
    return {name: after[name] - before[name] for name in DUPLICATES}


def test_the_skipped_instruments_are_exactly_the_ones_the_views_drop() -> None:
    skipped = {name for names in SKIPPED_INSTRUMENTS.values() for name in names}
    assert skipped == set(LIVEKIT_DUPLICATES)


def test_livekit_records_its_duplicates_when_nothing_is_skipped(otel: OtelCapture) -> None:
    # The control: livekit as shipped records every one of them (the session keeps them: detail "all").
    recorded = _livekit_event(otel)
    assert all(value > 0 for value in recorded.values()), recorded


def test_skipped_duplicates_are_not_recorded(otel: OtelCapture, skipping: None) -> None:
    recorded = _livekit_event(otel)
    assert all(value == 0 for value in recorded.values()), recorded


def test_what_has_no_counterpart_of_ours_is_still_recorded(otel: OtelCapture, skipping: None) -> None:
    names = ["lk.agents.usage.tts_characters", "lk.agents.usage.llm_input_cached_tokens"]
    before = _counts(otel, names)
    otel_metrics.collect_usage(_tts_metrics())
    otel_metrics.collect_usage(_llm_metrics(cached=64))
    after = _counts(otel, names)
    assert after["lk.agents.usage.tts_characters"] - before["lk.agents.usage.tts_characters"] == 42
    cached = "lk.agents.usage.llm_input_cached_tokens"
    assert after[cached] - before[cached] == 64


def test_skip_is_idempotent_and_restorable(skipping: None) -> None:
    wrapped = otel_metrics.collect_usage
    skip_livekit_duplicate_recording()
    assert otel_metrics.collect_usage is wrapped
    restore_livekit_duplicate_recording()
    assert otel_metrics.collect_usage is wrapped.__wrapped__  # type: ignore[attr-defined]


@pytest.mark.parametrize(("detail", "skips"), [("default", True), ("all", False)])
def test_telemetry_setup_skips_them_only_with_the_default_detail(
    monkeypatch: pytest.MonkeyPatch, detail: str, skips: bool
) -> None:
    # livekit's tracer is process-wide: the wiring under test must not re-point it for other tests.
    monkeypatch.setattr("livekit.agents.telemetry.set_tracer_provider", lambda *_a, **_k: None)
    original = otel_metrics.collect_usage
    try:
        telemetry_setup._wire_livekit(TracerProvider(), TelemetrySettings(SALES_AGENT_METRICS_DETAIL=detail))
        wrapped: Any = otel_metrics.collect_usage
        assert (wrapped is not original) is skips
    finally:
        restore_livekit_duplicate_recording()
    assert otel_metrics.collect_usage is original
