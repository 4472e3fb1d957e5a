"""The settings root: built once from the environment, frozen, every bad value named, one prefix per area."""

from __future__ import annotations

import ast
import json
import logging
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent import app_settings
from agent.app_settings import DEPRECATED_VARIABLES, REPLACED_VARIABLES, AppSettings, WorkerSettings
from agent.crm import CrmSettings
from agent.health import HealthSettings
from agent.llm import LLMSettings
from agent.session_settings import SessionSettings
from agent.speech.settings import STTSettings, TTSSettings
from agent.tenants import TenantSettings
from telemetry.config_errors import ConfigError, env_name
from telemetry.settings import TelemetrySettings

REPO = Path(__file__).resolve().parents[2]
AREAS = {
    "telemetry": TelemetrySettings,
    "worker": WorkerSettings,
    "health": HealthSettings,
    "sessions": SessionSettings,
    "tenants": TenantSettings,
    "llm": LLMSettings,
    "stt": STTSettings,
    "tts": TTSSettings,
    "crm": CrmSettings,
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in list(os.environ):
        if var.startswith(("SALES_AGENT_", "CRM_", "CALENDAR_", "DEPLOYMENT_")):
            monkeypatch.delenv(var)
    monkeypatch.setattr(app_settings, "_warned", set())


def test_the_root_holds_every_area_and_cannot_be_changed():
    settings = AppSettings.from_env()
    assert {name: type(getattr(settings, name)) for name in AREAS} == AREAS
    with pytest.raises(ValidationError, match="frozen"):
        settings.crm.retries = 0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.telemetry = settings.telemetry  # type: ignore[misc]
    quiet = settings.with_area("telemetry", log_stderr=False)
    assert quiet.telemetry.log_stderr is False and settings.telemetry.log_stderr is True


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SALES_AGENT_LLM_CHAIN", "openai,gemini", "SALES_AGENT_LLM_CHAIN: expected JSON"),
        (
            "SALES_AGENT_LLM_CHAIN",
            '[{"name": "x", "kind": "openai"}]',
            "SALES_AGENT_LLM_CHAIN: 0.model: Field required",
        ),
        ("SALES_AGENT_LLM_COOLDOWN_S", "-1", "SALES_AGENT_LLM_COOLDOWN_S: Input should be greater than 0"),
        (
            "SALES_AGENT_SESSION_MAX_SESSIONS",
            "lots",
            "SALES_AGENT_SESSION_MAX_SESSIONS: Input should be a valid",
        ),
        ("SALES_AGENT_HEALTH_PORT", "70000", "SALES_AGENT_HEALTH_PORT: Input should be less than or equal"),
        ("SALES_AGENT_METRICS_PORT", "x", "SALES_AGENT_METRICS_PORT: Input should be a valid integer"),
        (
            "SALES_AGENT_STT_CHAIN",
            '[{"name": "w", "kind": "cartesia"}]',
            "SALES_AGENT_STT_CHAIN: provider 'w': kind 'cartesia' cannot do STT",
        ),
        ("SALES_AGENT_TTS_CHAIN", "cartesia", "SALES_AGENT_TTS_CHAIN: expected JSON"),
        (
            "SALES_AGENT_TTS_FIRST_BYTE_DEADLINE_S",
            "0",
            "SALES_AGENT_TTS_FIRST_BYTE_DEADLINE_S: Input should be greater than 0",
        ),
        ("CRM_RETRIES", "-1", "CRM_RETRIES: Input should be greater than or equal to 0"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL: Input should be"),
    ],
)
def test_an_invalid_value_is_rejected_with_the_variable_and_what_was_expected(
    monkeypatch, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        AppSettings.from_env()
    message = str(caught.value)
    assert expected in message and "\n" not in message


def test_all_problems_are_reported_at_once_and_secrets_are_not_echoed(monkeypatch):
    monkeypatch.setenv("SALES_AGENT_LLM_CHAIN", "nope")
    monkeypatch.setenv("CRM_READ_TIMEOUT_S", "soon")
    monkeypatch.setenv("CRM_API_KEY", "crm-secret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    with pytest.raises(ConfigError) as caught:
        AppSettings.from_env()
    message = str(caught.value)
    assert "SALES_AGENT_LLM_CHAIN" in message and "CRM_READ_TIMEOUT_S" in message
    assert "secret-value" not in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # A misspelt operation used to be ignored silently.
        (
            '{"book_meetin": {"retries": 1}}',
            "CRM_RETRY_OVERRIDES: unknown operation 'book_meetin'; expected one of",
        ),
        # An unknown field used to fail late, at the first call, with a TypeError.
        ('{"book_meeting": {"attempts": 1}}', "CRM_RETRY_OVERRIDES: book_meeting.attempts: Extra inputs"),
        # An ill-typed value used to turn retries off silently.
        (
            '{"book_meeting": {"retries": "two"}}',
            "CRM_RETRY_OVERRIDES: book_meeting.retries: Input should be",
        ),
        ('{"book_meeting": {"retries": -1}}', "CRM_RETRY_OVERRIDES: book_meeting.retries: Input should be"),
        ("book_meeting=1", "CRM_RETRY_OVERRIDES: expected JSON"),
    ],
)
def test_bad_retry_overrides_are_rejected_at_start(monkeypatch, overrides, expected):
    monkeypatch.setenv("CRM_RETRY_OVERRIDES", overrides)
    with pytest.raises(ConfigError, match="CRM_RETRY_OVERRIDES") as caught:
        AppSettings.from_env()
    assert expected in str(caught.value)


def test_retry_overrides_apply_per_operation(monkeypatch):
    monkeypatch.setenv("CRM_RETRY_OVERRIDES", '{"book_meeting": {"retries": 1, "wait_max_s": 2}}')
    crm = AppSettings.from_env().crm
    book = crm.retry_policy_overrides()["book_meeting"]
    assert (book.retries, book.wait_max_s, book.wait_initial_s) == (1, 2.0, 1.0)


def test_crm_retries_is_the_name_and_the_old_one_still_works_with_one_warning(monkeypatch, caplog):
    monkeypatch.setenv("CRM_RETRY_ATTEMPTS", "5")
    with caplog.at_level(logging.WARNING, logger="agent.app_settings"):
        assert AppSettings.from_env().crm.retries == 5
        assert AppSettings.from_env().crm.retries == 5
    warnings = [r.getMessage() for r in caplog.records if "CRM_RETRY_ATTEMPTS" in r.getMessage()]
    assert warnings == ["CRM_RETRY_ATTEMPTS is deprecated: rename it CRM_RETRIES (same meaning)"]
    monkeypatch.setenv("CRM_RETRIES", "1")
    assert AppSettings.from_env().crm.retries == 1  # the new name wins
    assert env_name(CrmSettings, "retries") == "CRM_RETRIES"


@pytest.mark.parametrize(("old", "new"), sorted(DEPRECATED_VARIABLES.items()))
def test_every_deprecated_name_still_sets_its_value(monkeypatch, old, new):
    field = {"CRM_RETRY_ATTEMPTS": ("crm", "retries", "2", 2)}.get(old)
    field = (
        field
        or {
            "CALENDAR_URL": ("crm", "calendar_url", "http://calendar:1", "http://calendar:1"),
            "DEPLOYMENT_ENVIRONMENT": ("telemetry", "deployment_environment", "staging", "staging"),
        }[old]
    )
    area, name, raw, value = field
    monkeypatch.setenv(old, raw)
    assert getattr(getattr(AppSettings.from_env(), area), name) == value
    assert env_name(AREAS[area], name) == new


@pytest.mark.parametrize("old", sorted(REPLACED_VARIABLES))
def test_a_replaced_speech_variable_is_refused_with_what_to_set_instead(monkeypatch, old):
    # Before the chains these chose the speech plugins; silently ignored, SALES_AGENT_STT=openai would
    # leave a worker trying deepgram.
    monkeypatch.setenv(old, "openai")
    with pytest.raises(ConfigError) as refused:
        AppSettings.from_env()
    assert f"{old} is no longer read" in str(refused.value)
    assert REPLACED_VARIABLES[old] in str(refused.value)


def test_replaced_variables_are_not_read_by_any_area():
    read = {env_name(cls, field) for cls in AREAS.values() for field in cls.model_fields}
    assert read & set(REPLACED_VARIABLES) == set()


# Names kept as their owners spell them (OpenTelemetry, livekit, the providers' key variables).
STANDARD = ("OTEL_", "LIVEKIT_", "DEEPGRAM_API_KEY", "CARTESIA_API_KEY", "OPENAI_API_KEY")
PREFIXES = {
    "telemetry": "SALES_AGENT_",
    "worker": "SALES_AGENT_",
    "health": "SALES_AGENT_HEALTH_",
    "sessions": "SALES_AGENT_SESSION_",
    "tenants": "SALES_AGENT_TENANTS_",
    "llm": "SALES_AGENT_LLM_",
    "stt": "SALES_AGENT_STT_",
    "tts": "SALES_AGENT_TTS_",
    "crm": "CRM_",
}


def test_one_prefix_per_area_and_no_variable_read_by_two_areas():
    seen: dict[str, str] = {}
    for area, settings_cls in AREAS.items():
        for field in settings_cls.model_fields:
            variable = env_name(settings_cls, field)
            assert variable.startswith((PREFIXES[area], *STANDARD)), (area, field, variable)
            assert variable not in seen, f"{variable} is read by {seen.get(variable)} and {area}"
            seen[variable] = area
    # The process-wide prefix is shared by telemetry and the worker: their names must not overlap
    # with an area's own prefix.
    for variable, area in seen.items():
        if area in ("telemetry", "worker"):
            assert not variable.startswith(tuple(p for a, p in PREFIXES.items() if p != "SALES_AGENT_")), (
                variable
            )


# Where the environment may be read: the settings loaders and the entry points. Everything else
# receives its settings.
ENV_READERS = {
    "agent/app_settings.py": "the root's loader (deprecated names)",
    "agent/provider_settings.py": "the LLM, STT and TTS chains' loaders read the providers' keys",
    "agent/cli.py": "sets LITELLM_LOCAL_MODEL_COST_MAP before litellm is imported",
    "agent/simulate/workers.py": "passes its environment on to the worker processes it starts",
    "agent/gameday/command.py": "the game day's children inherit the operator's environment",
    "telemetry/http_semconv.py": "sets OTEL_SEMCONV_STABILITY_OPT_IN before httpx is instrumented",
    "agent/worker.py": "sets LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE before livekit starts its job threads",
}


def _environment_uses(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in ("environ", "getenv", "putenv")
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    ]


def test_no_environment_reads_below_the_entry_points():
    offenders = []
    for package in ("agent", "telemetry", "local_services"):
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative not in ENV_READERS and (lines := _environment_uses(path)):
                offenders.append(f"{relative}:{lines}")
    assert offenders == []


def test_api_keys_are_read_once_into_secrets_and_never_shown(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-secret")
    monkeypatch.setenv("CRM_API_KEY", "crm-secret")
    settings = AppSettings.from_env()
    openai = next(p for p in settings.llm.chain if p.kind == "openai")
    assert openai.key() is not None and openai.key().get_secret_value() == "sk-openai-secret"
    deepgram = next(p for p in settings.stt.chain if p.kind == "deepgram")
    assert deepgram.key().get_secret_value() == "dg-secret"  # type: ignore[union-attr]
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert "secret" not in shown.replace("SecretStr", "")
    monkeypatch.setenv("OPENAI_API_KEY", "changed")  # read once: the root does not follow the environment
    assert openai.key().get_secret_value() == "sk-openai-secret"  # type: ignore[union-attr]


@pytest.mark.parametrize("area", ["LLM", "STT", "TTS"])
def test_a_chain_cannot_carry_a_key(monkeypatch, area):
    chain = [{"name": "a", "kind": "openai", "model": "m", "api_key": "sk-in-json"}]
    monkeypatch.setenv(f"SALES_AGENT_{area}_CHAIN", json.dumps(chain))
    with pytest.raises(ConfigError, match="keys are read from the environment") as caught:
        AppSettings.from_env()
    assert "sk-in-json" not in str(caught.value)
