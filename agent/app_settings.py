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

SttPlugin = Literal["deepgram", "openai"]
TtsPlugin = Literal["cartesia", "openai"]
VadPlugin = Literal["silero", "none"]


class WorkerSettings(BaseSettings):
    """The LiveKit worker's own switches (``SALES_AGENT_*``)."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_", extra="ignore")

    # Speech plugins. Keys come from the plugins' own env vars (DEEPGRAM_API_KEY, CARTESIA_API_KEY,
    # OPENAI_API_KEY); models are the plugins' defaults unless set here.
    stt: SttPlugin = "deepgram"
    stt_model: str | None = None
    tts: TtsPlugin = "cartesia"
    tts_model: str | None = None
    tts_voice: str | None = None
    vad: VadPlugin = "silero"
    language: str = "en"
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
    def crm(self) -> CrmSettings:
        from agent.crm import CrmSettings

        return CrmSettings()
