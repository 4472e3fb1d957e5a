"""All of the agent process's configuration in one place, read from the environment.

Each area keeps its own pydantic-settings class next to its code (``TelemetrySettings``,
``LLMSettings``, ``CrmSettings``, ``SessionSettings``, ``TenantSettings``); ``AppSettings`` holds the
worker's own switches and builds the others on demand, so importing it stays cheap (the LLM and CRM
settings modules are imported only when asked for). Secrets (provider keys, LiveKit credentials) are
read by the plugins and settings classes from env and are never logged.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.session_settings import SessionSettings
from agent.tenants import TenantSettings
from telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from agent.crm import CrmSettings
    from agent.llm.settings import LLMSettings
    from agent.speech.settings import STTSettings, TTSSettings


class WorkerSettings(BaseSettings):
    """The LiveKit worker's own switches (``SALES_AGENT_*``)."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_", extra="ignore")

    # Speech (STT and TTS chains, Silero VAD) is configured by STTSettings / TTSSettings.
    # "thread": every call of a worker runs in one process (one Router, one SessionManager, imports paid
    # once: ~320 MB instead of ~320 MB per prewarmed process). "process": livekit's isolation default.
    job_executor: Literal["thread", "process"] = "thread"
    # livekit marks the worker unavailable above this load (our load = open sessions / max_sessions).
    load_threshold: float = Field(default=0.95, gt=0, le=1)
    # Explicit dispatch name (empty: automatic dispatch to every room).
    agent_name: str = ""
    # /health and /ready (0 = off). /metrics is SALES_AGENT_METRICS_PORT (telemetry settings).
    health_port: int = Field(default=0, ge=0, le=65535)
    health_host: str = "127.0.0.1"
    # Tenant used when a job carries no tenant in its metadata (empty: such jobs are rejected).
    default_tenant: str = ""


class AppSettings:
    """Aggregate view; each part is parsed from env the first time it is used."""

    @cached_property
    def worker(self) -> WorkerSettings:
        return WorkerSettings()

    @cached_property
    def telemetry(self) -> TelemetrySettings:
        return TelemetrySettings()

    @cached_property
    def sessions(self) -> SessionSettings:
        return SessionSettings()

    @cached_property
    def tenants(self) -> TenantSettings:
        return TenantSettings()

    @cached_property
    def llm(self) -> LLMSettings:
        from agent.llm.settings import LLMSettings

        # load(), not the constructor: it also reads the YAML file named by SALES_AGENT_LLM_CONFIG.
        return LLMSettings.load()

    @cached_property
    def stt(self) -> STTSettings:
        from agent.speech.settings import STTSettings

        return STTSettings.load()  # + the YAML file named by SALES_AGENT_STT_CONFIG

    @cached_property
    def tts(self) -> TTSSettings:
        from agent.speech.settings import TTSSettings

        return TTSSettings.load()  # + the YAML file named by SALES_AGENT_TTS_CONFIG

    @cached_property
    def crm(self) -> CrmSettings:
        from agent.crm import CrmSettings

        return CrmSettings()
