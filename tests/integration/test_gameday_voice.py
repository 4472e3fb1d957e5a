"""The game day's voice traffic as processes: its STT/TTS stand-ins and its ``simulate --mode voice``
agent, started by ``GamedayStack`` as a live game day starts them (no Prometheus: the agent's own
``/metrics`` is read, which Prometheus would scrape). The speech scenarios' faults, through the
stand-ins' fault API, must show in the very counters STTFailureRateHigh / TTSFailureRateHigh read."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agent.gameday.scenarios import by_name
from agent.gameday.stack import VOICE_AGENT, GamedayStack, StackConfig
from local_services.harness import admin_stats

# Startup (LiteLLM, LiveKit, the Silero model) plus a call's greeting and first line, on a busy host.
WAIT_S = 240.0


def _outcomes(stack: GamedayStack, metric: str) -> dict[str, float]:
    """``outcome -> count`` of one of the voice agent's counters (0 for an outcome not seen yet)."""
    url = f"{stack.url(VOICE_AGENT)}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric:
                outcome = sample.labels.get("outcome", "")
                counts[outcome] = counts.get(outcome, 0.0) + sample.value
    return counts


def _wait_for(condition: Callable[[], bool], what: str, stack: GamedayStack) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            log = (stack.logs / f"{VOICE_AGENT}.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"no {what} within {WAIT_S:.0f} s; the voice agent's log ends:\n{log}")
        time.sleep(1.0)


def test_speech_scenarios_fail_the_voice_agents_utterances_and_sentences_and_recover(tmp_path: Path) -> None:
    stt = "sales_agent_stt_recognitions_total"
    tts = "sales_agent_tts_syntheses_total"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    stack = GamedayStack(StackConfig(workdir=tmp_path, voice_calls_per_batch=2, environ=environ))
    try:
        stack.start_services()
        stack.start_voice_agent()
        assert "--mode" in stack.voice_agent_argv()
        _wait_for(lambda: _outcomes(stack, stt).get("ok", 0) >= 1, "transcribed utterance", stack)
        assert _outcomes(stack, tts).get("ok", 0) >= 1

        (stt_down,) = by_name(["stt-down"])
        stt_down.inject(stack)
        _wait_for(lambda: _outcomes(stack, stt).get("failed", 0) >= 1, "utterance failed on every STT", stack)
        for provider in stack.speech_provider_names:
            assert admin_stats(stack.url(f"stt-{provider}"))["faulted"] >= 1, provider
            assert admin_stats(stack.url(f"tts-{provider}"))["faulted"] == 0, provider
        stt_down.recover(stack)
        ok = _outcomes(stack, stt).get("ok", 0)
        _wait_for(
            lambda: _outcomes(stack, stt).get("ok", 0) > ok, "utterance transcribed after recovery", stack
        )

        (tts_down,) = by_name(["tts-down"])
        tts_down.inject(stack)
        _wait_for(lambda: _outcomes(stack, tts).get("failed", 0) >= 1, "sentence failed on every TTS", stack)
        tts_down.recover(stack)
        ok = _outcomes(stack, tts).get("ok", 0)
        _wait_for(lambda: _outcomes(stack, tts).get("ok", 0) > ok, "sentence spoken after recovery", stack)
    finally:
        stack.stop()
    assert not any(process.running for process in stack.processes.values())
