"""The process's whole configuration: one root, built once by each entry point, passed down, frozen.

``AppSettings.from_env()`` is called by every entry point (the worker's ``run_worker`` and its job
processes, ``simulate``, ``outbox``) and nowhere else; library code receives the root or the area it
needs and never reads the environment. Each area keeps its pydantic-settings class next to its code,
with one prefix per area (standard names such as ``OTEL_*`` and the providers' API key variables are
kept as they are):

| area | class | variables |
| --- | --- | --- |
| telemetry | ``TelemetrySettings`` | ``OTEL_*`` (standard), ``SALES_AGENT_*`` (process-wide switches) |
| worker | ``WorkerSettings`` | ``SALES_AGENT_*`` (dispatch, job executor) |
| health | ``HealthSettings`` | ``SALES_AGENT_HEALTH_*`` |
| sessions | ``SessionSettings`` | ``SALES_AGENT_SESSION_*`` |
| tenants | ``TenantSettings`` | ``SALES_AGENT_TENANTS_*`` |
| LLM | ``LLMSettings`` | ``SALES_AGENT_LLM_*`` and the providers' key variables |
| STT | ``STTSettings`` | ``SALES_AGENT_STT_*`` and the providers' key variables |
| TTS | ``TTSSettings`` | ``SALES_AGENT_TTS_*`` and the providers' key variables |
| CRM | ``CrmSettings`` | ``CRM_*`` |

Every invalid value is rejected by ``from_env`` with a ``ConfigError`` naming the variable and what was
expected (entry points print it and exit 2). Nothing is mutated afterwards: an entry point that needs
another value derives a copy (``settings.model_copy(update=...)``, or ``with_area``). API keys are read
once into ``SecretStr`` fields and never logged.

Importing this module stays cheap: it never imports litellm or livekit (a test pins it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.crm.settings import CrmSettings
from agent.health.registry import HealthSettings
from agent.llm.settings import LLMSettings
from agent.session_settings import SessionSettings
from agent.speech.settings import STTSettings, TTSSettings
from agent.tenants import TenantSettings
from telemetry.config_errors import ConfigError, settings_error
from telemetry.settings import TelemetrySettings

log = logging.getLogger(__name__)

# Old name -> the name that replaced it. The old one is still read (AliasChoices on the field); a
# warning is logged once per process when it is set.
DEPRECATED_VARIABLES: dict[str, str] = {
    "CRM_RETRY_ATTEMPTS": "CRM_RETRIES",
    "CALENDAR_URL": "CRM_CALENDAR_URL",
    "DEPLOYMENT_ENVIRONMENT": "SALES_AGENT_DEPLOYMENT_ENVIRONMENT",
}
_warned: set[str] = set()

# The single-plugin speech variables that the STT and TTS chains replaced -> what to set instead.
# Still set, they would be silently ignored (a worker asked for openai STT would try deepgram), so
# ``from_env`` refuses them by name.
REPLACED_VARIABLES: dict[str, str] = {
    "SALES_AGENT_STT": 'SALES_AGENT_STT_CHAIN, a JSON list of providers (agent/README.md, "Speech")',
    "SALES_AGENT_STT_MODEL": "the model of a provider in SALES_AGENT_STT_CHAIN",
    "SALES_AGENT_TTS": 'SALES_AGENT_TTS_CHAIN, a JSON list of providers (agent/README.md, "Speech")',
    "SALES_AGENT_TTS_MODEL": "the model of a provider in SALES_AGENT_TTS_CHAIN",
    "SALES_AGENT_TTS_VOICE": "the voice of a provider in SALES_AGENT_TTS_CHAIN",
    "SALES_AGENT_LANGUAGE": "SALES_AGENT_STT_LANGUAGE and SALES_AGENT_TTS_LANGUAGE",
    "SALES_AGENT_VAD": "nothing: the VAD is always Silero (its segments are what the STT chain transcribes)",
}


class WorkerSettings(BaseSettings):
    """The LiveKit worker's own switches (``SALES_AGENT_*``)."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_", extra="ignore", frozen=True)

    # Speech (the STT and TTS chains) is the "stt" and "tts" areas; the VAD is always Silero.
    # "thread": every call of a worker runs in one process (one Router, one SessionManager, imports paid
    # once: ~320 MB instead of ~320 MB per prewarmed process). "process": livekit's isolation default.
    job_executor: Literal["thread", "process"] = "thread"
    # livekit marks the worker unavailable above this load (our load = open sessions / max_sessions).
    load_threshold: float = Field(default=0.95, gt=0, le=1)
    # Explicit dispatch name (empty: automatic dispatch to every room).
    agent_name: str = ""
    # Tenant used when a job carries no tenant in its metadata (empty: such jobs are rejected).
    default_tenant: str = ""
    # The longest a job accepted during the worker's warm-up (LiteLLM and the call modules loading
    # after it registered) waits for it before it ends with an error; a normal warm-up takes seconds.
    warmup_timeout_s: float = Field(default=120.0, gt=0)
    # Freeze the start-up heap once the process's first runtime is up (``agent/heap.py``): full
    # garbage collections then skip the ~450,000 objects of the imports (~165 ms each otherwise).
    gc_freeze: bool = True


AreaName = Literal["telemetry", "worker", "health", "sessions", "tenants", "llm", "stt", "tts", "crm"]
_AREAS: dict[str, tuple[type[BaseSettings], Callable[..., BaseSettings]]] = {
    "telemetry": (TelemetrySettings, TelemetrySettings),
    "worker": (WorkerSettings, WorkerSettings),
    "health": (HealthSettings, HealthSettings),
    "sessions": (SessionSettings, SessionSettings),
    "tenants": (TenantSettings, TenantSettings),
    "llm": (LLMSettings, LLMSettings.load),  # + the YAML file and the providers' keys
    "stt": (STTSettings, STTSettings.load),  # likewise
    "tts": (TTSSettings, TTSSettings.load),
    "crm": (CrmSettings, CrmSettings),
}


class AppSettings(BaseModel):
    """The settings root. Build it with ``from_env()`` at an entry point; pass it (or a part) down."""

    model_config = ConfigDict(frozen=True)

    telemetry: TelemetrySettings
    worker: WorkerSettings
    health: HealthSettings
    sessions: SessionSettings
    tenants: TenantSettings
    llm: LLMSettings
    stt: STTSettings
    tts: TTSSettings
    crm: CrmSettings

    @classmethod
    def from_env(cls, **overrides: Mapping[str, Any]) -> AppSettings:
        """Every area from the environment, all problems reported at once as one ``ConfigError``.

        ``overrides`` maps an area to keyword arguments that beat the environment (command-line flags),
        e.g. ``from_env(llm={"config": path})``.
        """
        unknown = set(overrides) - set(_AREAS)
        if unknown:
            raise TypeError(f"unknown settings areas: {sorted(unknown)}")
        parts: dict[str, BaseSettings] = {}
        problems = replaced_variables(os.environ)
        for area, (settings_cls, load) in _AREAS.items():
            try:
                parts[area] = load(**dict(overrides.get(area, {})))
            except ValidationError as exc:
                problems.append(str(settings_error(exc, settings_cls)))
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("; ".join(problems))
        warn_deprecated(os.environ)
        return cls.model_validate(parts)

    def with_area(self, area: AreaName, **changes: Any) -> AppSettings:
        """A copy with some values of one area changed (the root and the area stay frozen)."""
        part: BaseModel = getattr(self, area)
        return self.model_copy(update={area: part.model_copy(update=changes)})


def replaced_variables(environ: Mapping[str, str]) -> list[str]:
    """One problem per replaced variable that is still set, saying what to set instead."""
    return [
        f"{old} is no longer read (the speech chains replaced it): unset it and set {instead}"
        for old, instead in REPLACED_VARIABLES.items()
        if old in environ
    ]


def warn_deprecated(environ: Mapping[str, str]) -> None:
    """One warning per process for each deprecated variable that is set."""
    for old, new in DEPRECATED_VARIABLES.items():
        if old in environ and old not in _warned:
            _warned.add(old)
            if new in environ:
                log.warning("%s is deprecated and ignored: %s is also set and wins", old, new)
            else:
                log.warning("%s is deprecated: rename it %s (same meaning)", old, new)
