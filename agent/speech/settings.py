"""STT and TTS configuration: each a provider chain, configured like the LLM chain.

Sources, later ones winning: defaults < YAML file (``SALES_AGENT_STT_CONFIG`` / ``SALES_AGENT_TTS_CONFIG``)
< environment (``SALES_AGENT_STT_*`` / ``SALES_AGENT_TTS_*``; ``..._CHAIN`` is JSON). ``load`` is what
entry points call (through ``AppSettings.from_env``): it also reads each provider's API key, only from
the kind's standard variable (``DEEPGRAM_API_KEY``, ``CARTESIA_API_KEY``, ``OPENAI_API_KEY``) or the
one named by ``api_key_env``, into the provider's ``SecretStr``, so nothing below the entry point reads
the environment. Keys are never taken from the chain JSON or the YAML file and never logged. A provider
without its key is left out of the chain with a log line (``agent.speech.chain``). Every variable is
listed in ``agent/README.md``.

``api_base`` may contain ``{call_id}``: each call's provider client then gets its own URL. Only the
local stand-ins use it (``simulate`` routes each call's audio to that call's scripted lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import quote

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.provider_settings import KeyedProvider, decode_chain, load_chain_settings, with_keys_from
from agent.speech.errors import SpeechConfigError

SpeechKind = Literal["openai", "deepgram", "cartesia", "local"]
STT_KINDS = frozenset({"openai", "deepgram", "local"})
TTS_KINDS = frozenset({"openai", "cartesia", "local"})

KEY_ENV_VARS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "deepgram": ("DEEPGRAM_API_KEY",),
    "cartesia": ("CARTESIA_API_KEY",),
    "local": (),
}


class SpeechProviderConfig(KeyedProvider):
    """One link of an STT or TTS chain (``api_key_env`` / ``api_key``: ``KeyedProvider``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_env_vars: ClassVar[Mapping[str, tuple[str, ...]]] = KEY_ENV_VARS

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")  # label on spans/metrics
    kind: SpeechKind
    model: str | None = None  # the plugin's default when unset
    voice: str | None = None  # TTS only
    api_base: str | None = None  # required for "local"; may contain {call_id}

    @model_validator(mode="after")
    def _local_needs_base(self) -> SpeechProviderConfig:
        if self.kind == "local" and not self.api_base:
            raise ValueError(
                f"provider {self.name!r}: kind 'local' needs api_base (e.g. http://127.0.0.1:8111/v1)"
            )
        return self

    def base_url(self, call_id: str) -> str | None:
        if self.api_base is None:
            return None
        return self.api_base.replace("{call_id}", quote(call_id, safe=""))


def _check_chain(chain: list[SpeechProviderConfig], kinds: frozenset[str], what: str) -> None:
    if not chain:
        raise ValueError(f"the {what} chain is empty: configure at least one provider")
    names = [p.name for p in chain]
    if len(set(names)) != len(names):
        raise ValueError(f"provider names in the {what} chain must be unique, got {names}")
    for p in chain:
        if p.kind not in kinds:
            raise ValueError(
                f"provider {p.name!r}: kind {p.kind!r} cannot do {what}; use one of {sorted(kinds)}"
            )


CHAIN_EXAMPLE = '[{"name": "primary", "kind": "openai", "model": "..."}, ...]'


class _ChainSettings(BaseSettings):
    """What STT and TTS chains share; subclasses set the prefix, defaults and their deadline."""

    what: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = frozenset()

    config: Path | None = None  # ..._CONFIG: YAML file with the same keys (lower case)
    chain: Annotated[list[SpeechProviderConfig], NoDecode]
    allowed_fails: int = Field(default=0, ge=0)  # failures tolerated per cooldown window
    cooldown_s: float = Field(default=30.0, gt=0)  # how long a failing provider is skipped

    @field_validator("chain", mode="before")
    @classmethod
    def _decode_chain(cls, chain: Any) -> Any:
        return decode_chain(chain, CHAIN_EXAMPLE)

    @field_validator("chain")
    @classmethod
    def _valid_chain(cls, chain: list[SpeechProviderConfig]) -> list[SpeechProviderConfig]:
        _check_chain(chain, cls.kinds, cls.what)
        return chain

    def with_keys_from(self, environ: Mapping[str, str]) -> Self:
        """A copy whose providers hold their API keys read from ``environ``."""
        return with_keys_from(self, environ)

    @classmethod
    def for_local(cls, urls: list[str], **overrides: Any) -> Self:
        """A chain of local stand-ins (``simulate``): primary, backup, backup2..."""
        names = ["primary", "backup", *(f"backup{i}" for i in range(2, len(urls)))]
        chain = [
            SpeechProviderConfig(name=name, kind="local", api_base=url)
            for name, url in zip(names, urls, strict=False)
        ]
        return cls(chain=chain, **overrides)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Defaults, then the YAML file named by ``..._CONFIG`` (or ``config=``), then env; then keys.

        For entry points (``AppSettings.from_env``). Raises ``SpeechConfigError`` naming the file and the
        field for a bad YAML file; a bad variable raises pydantic's ``ValidationError``.
        """
        return load_chain_settings(
            cls,
            what=cls.what,
            error=lambda message: SpeechConfigError(message, error_type="invalid_speech_config"),
            environ=environ,
            overrides=overrides,
        )


class STTSettings(_ChainSettings):
    """``SALES_AGENT_STT_*``: the speech-to-text chain."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_STT_", extra="ignore", frozen=True)
    what: ClassVar[str] = "STT"
    kinds: ClassVar[frozenset[str]] = STT_KINDS

    chain: Annotated[list[SpeechProviderConfig], NoDecode] = Field(
        default_factory=lambda: [
            SpeechProviderConfig(name="deepgram", kind="deepgram", model="nova-3"),
            SpeechProviderConfig(name="openai", kind="openai", model="gpt-4o-mini-transcribe"),
        ]
    )
    # One utterance's transcription per attempt; past it the next provider gets the same audio.
    attempt_timeout_s: float = Field(default=3.0, gt=0, le=30)
    language: str = "en"


class TTSSettings(_ChainSettings):
    """``SALES_AGENT_TTS_*``: the text-to-speech chain."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_TTS_", extra="ignore", frozen=True)
    what: ClassVar[str] = "TTS"
    kinds: ClassVar[frozenset[str]] = TTS_KINDS

    chain: Annotated[list[SpeechProviderConfig], NoDecode] = Field(
        default_factory=lambda: [
            SpeechProviderConfig(name="cartesia", kind="cartesia", model="sonic-3"),
            SpeechProviderConfig(name="openai", kind="openai", model="gpt-4o-mini-tts"),
        ]
    )
    # A sentence's first audio byte; past it the next provider synthesizes the sentence.
    first_byte_deadline_s: float = Field(default=2.0, gt=0, le=30)
    # Silence between audio chunks once the sentence started (a stalled stream).
    stream_timeout_s: float = Field(default=5.0, gt=0, le=60)
    language: str = "en"
