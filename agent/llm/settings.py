"""LLM configuration: the provider chain, its models, keys, deadlines and cooldowns.

Sources, later ones winning: defaults < YAML file named by ``SALES_AGENT_LLM_CONFIG`` < environment
(``SALES_AGENT_LLM_*``; ``SALES_AGENT_LLM_CHAIN`` is JSON). ``LLMSettings.load`` is what entry points
call (through ``AppSettings.from_env``): it also reads each provider's API key from its standard
environment variable (or ``api_key_env``) into the provider's ``SecretStr``, so nothing below the entry
point reads the environment. Keys are never taken from the chain JSON or the YAML file, never logged
and never put on spans. Every variable is listed in ``agent/llm/README.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.llm.errors import LLMConfigError
from agent.vocabulary.local_providers import local_model, local_provider_names
from telemetry.config_errors import decode_json, describe_validation

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

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")  # label on spans/metrics
    kind: ProviderKind
    model: str = Field(min_length=1)
    api_base: str | None = None  # required for "local"; optional override otherwise
    api_key_env: str | None = None  # read the key from this variable instead of the kind's default
    # Filled from the environment by ``LLMSettings.load`` (``api_key_env`` or the kind's variable).
    api_key: SecretStr | None = Field(default=None, exclude=True)

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

    def key(self) -> SecretStr | None:
        """The key to send; ``local`` needs none (a placeholder is sent unless ``api_key_env`` is set)."""
        if self.kind == "local" and not self.api_key_env:
            return SecretStr("local-no-key")
        return self.api_key

    def key_env_names(self) -> tuple[str, ...]:
        return (self.api_key_env,) if self.api_key_env else KEY_ENV_VARS[self.kind]

    def with_key_from(self, environ: Mapping[str, str]) -> ProviderConfig:
        """A copy holding the key from the first of ``key_env_names()`` set in ``environ``."""
        if self.api_key is not None:
            return self
        for var in self.key_env_names():
            if environ.get(var):
                return self.model_copy(update={"api_key": SecretStr(environ[var])})
        return self


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
        chain = decode_json(chain, f"a list of providers, e.g. {CHAIN_EXAMPLE}")
        for item in chain if isinstance(chain, list) else ():
            if isinstance(item, Mapping) and "api_key" in item:
                raise ValueError(
                    "a provider cannot carry its api_key here: keys are read from the environment "
                    "(the kind's variable, or the one named by api_key_env)"
                )
        return chain

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
        """A copy whose providers hold their API keys read from ``environ``.

        Built with ``model_construct`` (the values are validated already) so that the copy still
        knows which fields were configured: ``model_copy(update=...)`` would count the chain as set.
        """
        values = {**dict(self), "chain": [p.with_key_from(environ) for p in self.chain]}
        return type(self).model_construct(_fields_set=set(self.model_fields_set), **values)

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
        env_settings = cls(**overrides)
        path = env_settings.config
        if path is None:
            return env_settings.with_keys_from(os.environ if environ is None else environ)
        file_values = _read_yaml(path)
        explicit = {k: getattr(env_settings, k) for k in env_settings.model_fields_set}  # env or overrides
        try:
            merged = cls.model_validate({**file_values, **explicit})
        except ValidationError as exc:
            raise LLMConfigError(
                f"SALES_AGENT_LLM_CONFIG={path}: invalid LLM settings: {describe_validation(exc)}",
                error_type="invalid_llm_config",
            ) from None
        return merged.with_keys_from(os.environ if environ is None else environ)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise LLMConfigError(
            f"SALES_AGENT_LLM_CONFIG={path}: the file {what}; expected a YAML file of LLM settings",
            error_type="invalid_llm_config",
        )
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise LLMConfigError(
            f"SALES_AGENT_LLM_CONFIG={path}: cannot read the file: {exc}", error_type="invalid_llm_config"
        ) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LLMConfigError(
            f"SALES_AGENT_LLM_CONFIG={path}: not valid YAML{at}: {problem}", error_type="invalid_llm_config"
        ) from None
    if not isinstance(loaded, dict):
        raise LLMConfigError(
            f"SALES_AGENT_LLM_CONFIG={path}: expected a mapping of LLM settings at the top level",
            error_type="invalid_llm_config",
        )
    return loaded
