"""LLM configuration: the provider chain, its models, keys, deadlines and cooldowns.

Sources, later ones winning: defaults < YAML file named by ``SALES_AGENT_LLM_CONFIG`` < environment
(``SALES_AGENT_LLM_*``; ``SALES_AGENT_LLM_CHAIN`` is JSON). API keys come only from the provider's
standard environment variable and are never logged or put on spans. Every variable is listed in
``agent/llm/README.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.llm.errors import LLMConfigError
from agent.vocabulary.local_providers import local_model, local_provider_names

ProviderKind = Literal["openrouter", "openai", "gemini", "anthropic", "local"]

# Where each kind's key lives (first set variable wins) and LiteLLM's model prefix for it.
KEY_ENV_VARS: dict[str, tuple[str, ...]] = {
    "openrouter": ("OPENROUTER_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "local": (),
}
LITELLM_PREFIX: dict[str, str] = {
    "openrouter": "openrouter",
    "openai": "openai",
    "gemini": "gemini",
    "anthropic": "anthropic",
    "local": "openai",  # any OpenAI-compatible server at api_base
}

DEFAULT_FALLBACK_LINE = (
    "I'm sorry, I'm having trouble on my end right now. Let me call you back shortly to continue."
)


class ProviderConfig(BaseModel):
    """One link of the fallback chain."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")  # label on spans/metrics
    kind: ProviderKind
    model: str = Field(min_length=1)
    api_base: str | None = None  # required for "local"; optional override otherwise
    api_key_env: str | None = None  # read the key from this variable instead of the kind's default

    @model_validator(mode="after")
    def _local_needs_base(self) -> ProviderConfig:
        if self.kind == "local" and not self.api_base:
            raise ValueError(
                f"provider {self.name!r}: kind 'local' needs api_base (e.g. http://127.0.0.1:8081/v1)"
            )
        return self

    @property
    def litellm_model(self) -> str:
        return f"{LITELLM_PREFIX[self.kind]}/{self.model}"

    def api_key(self) -> SecretStr | None:
        """The key from the environment; ``local`` needs none (a placeholder is sent)."""
        if self.kind == "local" and not self.api_key_env:
            return SecretStr("local-no-key")
        for var in (self.api_key_env,) if self.api_key_env else KEY_ENV_VARS[self.kind]:
            value = os.environ.get(var or "")
            if value:
                return SecretStr(value)
        return None

    def key_env_names(self) -> tuple[str, ...]:
        return (self.api_key_env,) if self.api_key_env else KEY_ENV_VARS[self.kind]


DEFAULT_CHAIN: tuple[ProviderConfig, ...] = (
    ProviderConfig(name="openrouter", kind="openrouter", model="openai/gpt-4o-mini"),
    ProviderConfig(name="openai", kind="openai", model="gpt-4o-mini"),
    ProviderConfig(name="gemini", kind="gemini", model="gemini-2.5-flash"),
    ProviderConfig(name="anthropic", kind="anthropic", model="claude-haiku-4-5"),
)


class LLMSettings(BaseSettings):
    """Everything the LLM layer needs; see ``agent/llm/README.md`` for the variables."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_LLM_", extra="ignore")

    config: Path | None = None  # SALES_AGENT_LLM_CONFIG: YAML file with the same keys (lower case)
    chain: list[ProviderConfig] = Field(default_factory=lambda: list(DEFAULT_CHAIN))
    first_token_deadline_s: float = Field(default=2.0, gt=0, le=30)
    stream_timeout_s: float = Field(default=10.0, gt=0)  # max silence between chunks after the first
    allowed_fails: int = Field(default=2, ge=0)  # failures tolerated per cooldown window
    cooldown_s: float = Field(default=30.0, gt=0)  # how long a failing provider is skipped
    redis_url: str | None = None  # share cooldowns across processes / workers (LiteLLM's Redis support)
    fallback_line: str = DEFAULT_FALLBACK_LINE  # spoken when every provider failed
    temperature: float | None = None

    @field_validator("chain")
    @classmethod
    def _unique_names(cls, chain: list[ProviderConfig]) -> list[ProviderConfig]:
        if not chain:
            raise ValueError("the LLM chain is empty: configure at least one provider")
        names = [p.name for p in chain]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names in the chain must be unique, got {names}")
        return chain

    @classmethod
    def for_local(cls, urls: list[str], **overrides: Any) -> LLMSettings:
        """A chain of local OpenAI-compatible providers (``simulate``, demos): primary, backup, backup2..."""
        chain = [
            ProviderConfig(name=name, kind="local", model=local_model(name), api_base=url)
            for name, url in zip(local_provider_names(len(urls)), urls, strict=True)
        ]
        return cls(chain=chain, **overrides)

    @classmethod
    def load(cls, **overrides: Any) -> LLMSettings:
        """Defaults, then the YAML file (if ``SALES_AGENT_LLM_CONFIG`` or ``config=`` names one), then env."""
        path = overrides.get("config") or os.environ.get("SALES_AGENT_LLM_CONFIG")
        file_values: dict[str, Any] = {}
        if path:
            file = Path(path)
            if not file.is_file():
                raise LLMConfigError(f"SALES_AGENT_LLM_CONFIG points to {file}, which does not exist")
            try:
                loaded = yaml.safe_load(file.read_text()) or {}
            except yaml.YAMLError as exc:
                raise LLMConfigError(f"{file}: not valid YAML: {exc}") from exc
            if not isinstance(loaded, dict):
                raise LLMConfigError(f"{file}: expected a mapping of LLM settings at the top level")
            file_values = loaded
        env_settings = cls(**overrides)
        explicit_env = env_settings.model_fields_set  # fields set by env or overrides
        merged = {**file_values, **{k: getattr(env_settings, k) for k in explicit_env}}
        if not file_values:
            return env_settings
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise LLMConfigError(f"{path}: invalid LLM settings: {exc}") from exc
