"""Session limits: the spec's defaults, overridable by env and per tenant (``config/tenants.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SessionSettings(BaseSettings):
    """Process-wide session policy. Env: ``SALES_AGENT_SESSION_EXPIRY_MINUTES`` etc."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_SESSION_", extra="ignore", frozen=True)

    # Hard lifetime of a session from its start (protects against calls that never end).
    expiry_minutes: float = Field(default=30.0, gt=0)
    # How often the cleanup loop sweeps expired and idle sessions.
    cleanup_interval_minutes: float = Field(default=5.0, gt=0)
    # Capacity of this process; beyond it ``open`` refuses and ``load()`` reports the worker full.
    max_sessions: int = Field(default=1000, ge=1)
    # A session with no activity for this long is closed as idle; activity pushes the deadline.
    inactivity_minutes: float = Field(default=5.0, gt=0)
    # How long a session's on_close callback (goodbye + resource release) may take.
    close_timeout_s: float = Field(default=10.0, gt=0)


class SessionOverrides(BaseModel):
    """Per-tenant overrides (tenant plans); unset fields use the process-wide settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expiry_minutes: float | None = Field(default=None, gt=0)
    inactivity_minutes: float | None = Field(default=None, gt=0)
    # A tenant's share of this process's capacity (never more than the process max).
    max_sessions: int | None = Field(default=None, ge=1)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """The effective limits for one tenant, in seconds."""

    expiry_s: float
    inactivity_s: float
    max_sessions: int

    @classmethod
    def resolve(cls, settings: SessionSettings, overrides: SessionOverrides | None = None) -> SessionLimits:
        o = overrides or SessionOverrides()
        expiry = o.expiry_minutes if o.expiry_minutes is not None else settings.expiry_minutes
        inactivity = o.inactivity_minutes if o.inactivity_minutes is not None else settings.inactivity_minutes
        cap = min(o.max_sessions, settings.max_sessions) if o.max_sessions else settings.max_sessions
        return cls(expiry_s=expiry * 60.0, inactivity_s=inactivity * 60.0, max_sessions=cap)
