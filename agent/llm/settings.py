"""LLM configuration: the provider chain, its models, keys, deadlines and cooldowns.

Sources, later ones winning: defaults < YAML file named by ``SALES_AGENT_LLM_CONFIG`` < environment
(``SALES_AGENT_LLM_*``; ``SALES_AGENT_LLM_CHAIN`` is JSON). ``LLMSettings.load`` is what entry points
call (through ``AppSettings.from_env``): it also reads each provider's API key from its standard
environment variable (or ``api_key_env``) into the provider's ``SecretStr``, so nothing below the entry
point reads the environment. Keys are never taken from the chain JSON or the YAML file, never logged
and never put on spans. Every variable is listed in ``agent/llm/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.llm.errors import LLMConfigError
from agent.provider_settings import KeyedProvider, decode_chain, load_chain_settings, with_keys_from
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


class ProviderConfig(KeyedProvider):
    """One link of the fallback chain (``api_key_env`` / ``api_key``: ``KeyedProvider``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_env_vars: ClassVar[Mapping[str, tuple[str, ...]]] = KEY_ENV_VARS

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")  # label on spans/metrics
    kind: ProviderKind
    model: str = Field(min_length=1)
    api_base: str | None = None  # required for "local"; optional override otherwise

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


DEFAULT_CHAIN: tuple[ProviderConfig, ...] = (
    ProviderConfig(name="openrouter", kind="openrouter", model="openai/gpt-4o-mini"),
    ProviderConfig(name="openai", kind="openai", model="gpt-4o-mini"),
    ProviderConfig(name="gemini", kind="gemini", model="gemini-2.5-flash"),
    ProviderConfig(name="anthropic", kind="anthropic", model="claude-haiku-4-5"),
)


CHAIN_EXAMPLE = '[{"name": "primary", "kind": "openai", "model": "gpt-4o-mini"}, ...]'


class LLMSettings(BaseSettings):
    """Everything the LLM layer needs; see ``agent/llm/README.md`` for the variables."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_LLM_", extra="ignore", frozen=True)

    config: Path | None = None  # SALES_AGENT_LLM_CONFIG: YAML file with the same keys (lower case)
    chain: Annotated[list[ProviderConfig], NoDecode] = Field(default_factory=lambda: list(DEFAULT_CHAIN))
    first_token_deadline_s: float = Field(default=2.0, gt=0, le=30)
    stream_timeout_s: float = Field(default=10.0, gt=0)  # max silence between chunks after the first
    allowed_fails: int = Field(default=2, ge=0)  # failures tolerated per cooldown window
    cooldown_s: float = Field(default=30.0, gt=0)  # how long a failing provider is skipped
    # Share cooldowns across worker processes and hosts (agent.resilience.shared_cooldowns).
    redis_url: SecretStr | None = None  # redis://[user:password@]host:6379/0; the password is never logged
    redis_timeout_s: float = Field(default=0.25, gt=0, le=5)  # bound of every Redis call
    fallback_line: str = DEFAULT_FALLBACK_LINE  # spoken when every provider failed
    temperature: float | None = None

    @field_validator("chain", mode="before")
    @classmethod
    def _decode_chain(cls, chain: Any) -> Any:
        return decode_chain(chain, CHAIN_EXAMPLE)

    @field_validator("chain")
    @classmethod
    def _unique_names(cls, chain: list[ProviderConfig]) -> list[ProviderConfig]:
        if not chain:
            raise ValueError("the LLM chain is empty: configure at least one provider")
        names = [p.name for p in chain]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names in the chain must be unique, got {names}")
        return chain

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_url(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        if not isinstance(text, str) or not text.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("SALES_AGENT_LLM_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return text

    @property
    def chain_configured(self) -> bool:
        """True when the chain was set (env JSON, YAML file or a caller), not the built-in default."""
        return "chain" in self.model_fields_set

    def with_keys_from(self, environ: Mapping[str, str]) -> LLMSettings:
        """A copy whose providers hold their API keys read from ``environ``."""
        return with_keys_from(self, environ)

    @classmethod
    def for_local(cls, urls: list[str], **overrides: Any) -> LLMSettings:
        """A chain of local OpenAI-compatible providers (``simulate``, demos): primary, backup, backup2..."""
        chain = [
            ProviderConfig(name=name, kind="local", model=local_model(name), api_base=url)
            for name, url in zip(local_provider_names(len(urls)), urls, strict=True)
        ]
        return cls(chain=chain, **overrides)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LLMSettings:
        """Defaults, then the YAML file (``SALES_AGENT_LLM_CONFIG`` or ``config=``), then env; then keys.

        For entry points (``AppSettings.from_env``). Raises ``LLMConfigError`` naming the file and the
        field for a bad YAML file; a bad variable raises pydantic's ``ValidationError``.
        """
        return load_chain_settings(
            cls,
            what="LLM",
            error=lambda message: LLMConfigError(message, error_type="invalid_llm_config"),
            environ=environ,
            overrides=overrides,
        )
