"""The game day's speech scenarios (issue 15: "STT/TTS down"): their definitions, their fault wiring
through the stack, the voice agent in the stack, and alerts that outlast the scenario that raised them.
No process is started: the stack's configuration is read, faults go to in-process stand-ins."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path

import pytest
import yaml
from gameday_fakes import FakeClock, fake_game_day
from prometheus_helpers import alert_rules

from agent.gameday import run
from agent.gameday.command import main as gameday_main
from agent.gameday.scenarios import LASTING_ALERTS, SCENARIOS, Scenario, by_name
from agent.gameday.stack import AGENTS, LLM_PROVIDERS, VOICE_AGENT, GamedayStack, StackConfig, StackError
from local_services.harness import in_thread
from local_services.stt_provider import run_stt_provider

SPEECH_SCENARIOS = ("stt-primary-down", "tts-primary-down", "stt-down", "tts-down")


class RecordingStack:
    """Stands in for GamedayStack: records every fault it is asked to switch."""

    llm_provider_names = LLM_PROVIDERS
    speech_provider_names = ("primary", "backup")

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def set_speech_fault(self, kind: str, provider: str, mode: str) -> None:
        self.calls.append((kind, provider, mode))

    def set_llm_fault(self, provider: str, mode: str) -> None:
        self.calls.append(("llm", provider, mode))


@pytest.mark.parametrize(
    ("name", "faulted"),
    [
        ("stt-down", [("stt", "primary"), ("stt", "backup")]),
        ("tts-down", [("tts", "primary"), ("tts", "backup")]),
        ("stt-primary-down", [("stt", "primary")]),
        ("tts-primary-down", [("tts", "primary")]),
    ],
)
def test_speech_scenarios_fault_their_chain_through_the_stand_ins_and_recover_it(name, faulted):
    (scenario,) = by_name([name])
    stack = RecordingStack()
    scenario.inject(stack)  # type: ignore[arg-type]
    assert stack.calls == [(kind, provider, "500") for kind, provider in faulted]
    stack.calls.clear()
    scenario.recover(stack)  # type: ignore[arg-type]
    assert stack.calls == [(kind, provider, "ok") for kind, provider in faulted]


def test_speech_scenarios_expect_the_voice_alerts_of_their_severity():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    expected = {
        "stt-down": {"STTFailureRateHigh"},
        "tts-down": {"TTSFailureRateHigh"},
        "stt-primary-down": {"STTProviderFallbackActive"},
        "tts-primary-down": {"TTSProviderFallbackActive"},
    }
    for scenario in by_name(list(SPEECH_SCENARIOS)):
        assert scenario.voice, scenario.name
        assert scenario.expected == expected[scenario.name]
        for alert in scenario.expected:
            assert rules[alert]["labels"]["severity"] == scenario.severity, (scenario.name, alert)
        assert scenario.expected | scenario.tolerated <= set(rules), scenario.name
        assert scenario.why
    # Every provider down pages on the STT/TTS failure ratio; the failover warning is the same fault.
    assert "STTProviderFallbackActive" in by_name(["stt-down"])[0].tolerated
    assert "TTSProviderFallbackActive" in by_name(["tts-down"])[0].tolerated
    # The primary alone down: the calls keep working, so nothing that pages may fire.
    for name in ("stt-primary-down", "tts-primary-down"):
        (scenario,) = by_name([name])
        assert all(
            rules[a]["labels"]["severity"] == "warning" for a in scenario.expected | scenario.tolerated
        )


def test_scenarios_that_spend_the_error_budget_run_after_the_cpu_soak_and_llm_all_down_last():
    """The slow-burn ticket stays true for hours after failed calls: the soak (which must see nothing
    fire) runs before any scenario that tolerates it, and llm-all-down, which spends the most, last."""
    order = [s.name for s in SCENARIOS]
    spenders = [s.name for s in SCENARIOS if LASTING_ALERTS & (s.expected | s.tolerated)]
    assert {"stt-down", "tts-down", "llm-all-down"} <= set(spenders)
    assert all(order.index(name) > order.index("host-cpu-saturated") for name in spenders)
    assert order[-1] == "llm-all-down"


def _stack(tmp_path: Path, **config: object) -> GamedayStack:
    stack = GamedayStack(StackConfig(workdir=tmp_path, **config))  # type: ignore[arg-type]
    names = [*LLM_PROVIDERS, "crm", "collector", "notifications", "prometheus", "alertmanager", VOICE_AGENT]
    names += [f"agent-{agent}" for agent in AGENTS]
    names += [f"{kind}-{p}" for kind in ("stt", "tts") for p in stack.speech_provider_names]
    stack.ports = {name: 20000 + index for index, name in enumerate(names)}
    return stack


def _option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


def test_the_voice_agent_calls_the_speech_stand_ins_in_fallback_order_for_one_tenant(tmp_path):
    stack = _stack(tmp_path, voice_concurrency=3, voice_calls_per_batch=4, voice_batch_interval_s=7.5)
    argv = stack.voice_agent_argv()
    assert argv[argv.index("simulate") :][:4] == ["simulate", "--mode", "voice", "--forever"]
    assert _option_values(argv, "--stt-url") == [stack.url("stt-primary"), stack.url("stt-backup")]
    assert _option_values(argv, "--tts-url") == [stack.url("tts-primary"), stack.url("tts-backup")]
    assert _option_values(argv, "--llm-url") == [f"{stack.url(p)}/v1" for p in LLM_PROVIDERS]
    assert _option_values(argv, "--crm-url") == [stack.url("crm")]
    assert _option_values(argv, "--tenants") == ["acme"]
    assert _option_values(argv, "--concurrency") == ["3"]
    assert _option_values(argv, "--calls") == ["4"]
    assert _option_values(argv, "--interval") == ["7.5"]
    env = stack._simulate_env(VOICE_AGENT)
    assert env["SALES_AGENT_METRICS_PORT"] == str(stack.ports[VOICE_AGENT])
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == f"service.instance.id={VOICE_AGENT}"
    assert env["CRM_OUTBOX_PATH"] != stack._agent_env(0)["CRM_OUTBOX_PATH"]


def test_prometheus_scrapes_the_voice_agent_as_one_more_sales_agent_instance(tmp_path):
    stack = _stack(tmp_path)
    config = yaml.safe_load(stack._prometheus_config().read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "sales-agent"]
    targets = job["static_configs"][0]["targets"]
    assert targets == [
        stack.agent_instance(0),
        stack.agent_instance(1),
        f"127.0.0.1:{stack.ports[VOICE_AGENT]}",
    ]


def test_without_voice_traffic_there_is_no_voice_agent_and_no_speech_fault(tmp_path):
    stack = _stack(tmp_path, voice_concurrency=0)
    assert not stack.voice
    config = yaml.safe_load(stack._prometheus_config().read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "sales-agent"]
    assert len(job["static_configs"][0]["targets"]) == len(AGENTS)
    with pytest.raises(StackError, match="no stt provider"):
        stack.set_speech_fault("stt", "primary", "500")


def test_gameday_refuses_speech_scenarios_without_voice_traffic(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gameday_main(["--voice-concurrency", "0", "--scenarios", "crm-down,stt-down"])
    assert exit_info.value.code == 2
    assert "stt-down" in capsys.readouterr().err


def test_gameday_refuses_an_unknown_voice_tenant_before_starting_anything(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gameday_main(["--voice-tenant", "acmee", "--scenarios", "stt-down"])
    assert exit_info.value.code == 2
    assert "--voice-tenant: unknown tenant 'acmee'" in capsys.readouterr().err


def test_a_speech_fault_reaches_the_stand_in_and_is_cleared_by_the_recovery(tmp_path):
    """The stack's fault call against a real STT stand-in (in this process), as stt-down does it."""
    stack = _stack(tmp_path)
    with in_thread(lambda: run_stt_provider("primary")) as running:
        stack.ports["stt-primary"] = running.port
        stats = f"{running.admin_url}/admin/stats"
        stack.set_speech_fault("stt", "primary", "500")
        with urllib.request.urlopen(stats, timeout=5) as response:
            assert json.load(response)["fault"] == "500"
        stack.set_speech_fault("stt", "primary", "ok")
        with urllib.request.urlopen(stats, timeout=5) as response:
            assert json.load(response)["fault"] == "ok"


def test_a_lasting_alert_is_neither_waited_for_nor_unexpected_in_the_scenarios_after_it(
    tmp_path, monkeypatch
):
    """stt-down's failed calls leave the slow-burn ticket pending, then firing, for hours. The next
    scenario starts without waiting the 15-minute quiet timeout for it, and its firing there is that
    earlier outage's, not the new scenario's unexpected alert (nor its recording's)."""
    clock = FakeClock(1_796_000_000.0)
    slow_burn = {"alertname": "SLOCallAvailabilitySlowBurn", "severity": "warning", "component": "slo"}
    state: dict[str, object] = {"phase": "first", "slow_burn": None}

    def active(_stack: object) -> list[dict[str, str]]:
        return [slow_burn] if state["slow_burn"] else []

    def firing(_stack: object) -> dict[tuple[tuple[str, str], ...], dict[str, str]]:
        if state["slow_burn"] == "firing":
            return {tuple(sorted(slow_burn.items())): slow_burn}
        return {}

    def sent(_url: str) -> list[run.Notification]:
        note = []
        injected = state.get("injected_at")
        if injected is not None and clock.now >= injected + 30:  # type: ignore[operator]
            note.append(run.Notification(injected + 30, "page", "firing", {"alertname": "X"}))  # type: ignore[operator]
        recovered = state.get("recovered_at")
        if recovered is not None and clock.now >= recovered + 30:  # type: ignore[operator]
            note.append(run.Notification(recovered + 30, "page", "resolved", {"alertname": "X"}))  # type: ignore[operator]
        return note

    def inject(_stack: object) -> None:
        state.update(injected_at=clock.now, recovered_at=None)

    def recover(_stack: object) -> None:
        state["recovered_at"] = clock.now
        if state["phase"] == "first":
            state["slow_burn"] = "pending"  # the budget spent: true long after recovery

    def scenario(name: str, tolerated: frozenset[str]) -> Scenario:
        return Scenario(name, "critical", "d", frozenset({"X"}), inject, recover, tolerated=tolerated)

    day, recorded = fake_game_day(monkeypatch, tmp_path, clock, sent, active=active, firing=firing)

    first = day.run(scenario("stt-down", frozenset({"SLOCallAvailabilitySlowBurn"})))
    assert first.unexpected == []
    assert day.lasting == {"SLOCallAvailabilitySlowBurn"}

    state["phase"] = "second"
    state["slow_burn"] = "pending"
    before = clock.now
    original_inject = inject

    def inject_and_fire(stack: object) -> None:
        original_inject(stack)
        state["slow_burn"] = "firing"  # its 15 minutes of `for:` run out during the next scenario

    second = day.run(dataclasses.replace(scenario("tts-primary-down", frozenset()), inject=inject_and_fire))
    assert second.injected_at - before < run.POLL_S * 2  # no 15-minute wait for the quiet
    assert second.unexpected == []
    assert second.lingering == ["SLOCallAvailabilitySlowBurn"]
    assert "SLOCallAvailabilitySlowBurn" in recorded[1]["allowed"]
