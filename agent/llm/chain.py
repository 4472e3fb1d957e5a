"""The provider chain: one LiteLLM ``Router`` per process, one model group per provider.

Why we drive the order ourselves instead of ``Router(fallbacks=...)``: each provider attempt must be
its own span with its own ``error.type`` and the fallback must be a span event; the Router's
internal fallback hides the attempts inside one call. So the Router holds one single-deployment
model group per provider (deployment id = provider name) and ``RouterLLMStream`` walks them in order.

Cooldowns live in ``agent.resilience.Cooldowns`` (``allowed_fails`` tolerated per ``cooldown_s``
window, the next failure cools the provider down for ``cooldown_s``; a 429's Retry-After at once),
not in the Router: LiteLLM refuses a deployment in its own cooldown list locally
(``RouterRateLimitError``, no request sent), so when every provider cooled down no request could
show that one had recovered, and callers heard the fallback line for a whole cooldown after the
providers were healthy again. The Router runs with ``disable_cooldowns``; the chain skips cooling
providers itself and, when all of them cool down, still sends the turn down the chain. The
``Cooldowns`` object comes from the process's ``ResilienceState``, so every job of a worker (each
with its own Router on its own loop) shares it. With ``SALES_AGENT_LLM_REDIS_URL`` the cooldowns are
``SharedCooldowns`` over Redis (every worker, every host), with the process's own as the fallback;
the stream then reads and writes them off its event loop (``asyncio.to_thread``).

Retries: exactly one layer acts, and it is this chain (fallback to the next provider). The Router
has ``num_retries=0`` and no ``fallbacks``; LiteLLM's OpenAI client ``max_retries=0``; LiveKit's
``APIConnectOptions.max_retry`` is forced to 0 in ``RouterLLM.chat``. A retry of the same provider
inside a 2 s voice budget would only delay the healthy next provider.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.llm.errors import NoUsableLLMProvider
from agent.llm.settings import LLMSettings, ProviderConfig
from agent.resilience import Cooldowns

if TYPE_CHECKING:
    from agent.resilience.shared_cooldowns import SharedCooldowns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    config: ProviderConfig
    position: int  # 0-based place in the configured chain (after leaving out keyless ones)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def key(self) -> str:
        """Its identity in the shared cooldowns: the same provider at the same place, whichever chain."""
        c = self.config
        return f"{c.name}|{c.kind}|{c.model}|{c.api_base or ''}"


def usable_providers(settings: LLMSettings) -> list[Provider]:
    """The chain without providers whose API key is missing (one log line each)."""
    usable: list[Provider] = []
    for config in settings.chain:
        if config.key() is None:
            log.warning(
                "LLM provider %s left out of the chain: no API key (set %s)",
                config.name,
                " or ".join(config.key_env_names()),
            )
            continue
        usable.append(Provider(config, len(usable)))
    if not usable:
        configured = ", ".join(p.name for p in settings.chain)
        raise NoUsableLLMProvider(
            f"No usable LLM provider: every provider of the chain ({configured}) lacks its API key. "
            "Set OPENROUTER_API_KEY / OPENAI_API_KEY / GEMINI_API_KEY / ANTHROPIC_API_KEY, or configure "
            "a 'local' provider through SALES_AGENT_LLM_CHAIN or SALES_AGENT_LLM_CONFIG.",
            error_type="no_usable_llm_provider",
        )
    log.info("LLM chain: %s", " -> ".join(f"{p.name}({p.model})" for p in usable))
    return usable


def check_chain(settings: LLMSettings) -> list[Provider]:
    """What the chain can use, or the ``LLMConfigError`` that stops a process at start (no litellm needed:
    the worker calls this before it registers with LiveKit)."""
    return usable_providers(settings)


class ProviderChain:
    """The Router and the providers' cooldown state, shared by every session of the process."""

    def __init__(self, settings: LLMSettings, cooldowns: Cooldowns | SharedCooldowns | None = None) -> None:
        self.settings = settings
        self.providers = check_chain(settings)
        self.cooldowns = cooldowns if cooldowns is not None else Cooldowns()
        self._by_name = {p.name: p for p in self.providers}
        self.router = self._build_router()
        self._warmed = False

    def _build_router(self) -> Any:
        from litellm import Router  # ~4 s import: only when the LLM is built

        # Our adapter logs every attempt and fallback; LiteLLM's per-call INFO lines would repeat them.
        for logger_name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
            logging.getLogger(logger_name).setLevel(logging.WARNING)

        model_list = []
        for p in self.providers:
            params: dict[str, Any] = {
                "model": p.config.litellm_model,
                "api_key": p.config.key().get_secret_value(),  # type: ignore[union-attr]
                "stream_timeout": self.settings.stream_timeout_s,
                "timeout": self.settings.stream_timeout_s,
                "max_retries": 0,  # the OpenAI SDK's own retries: off (see module docstring)
            }
            if p.config.api_base:
                params["api_base"] = p.config.api_base
            model_list.append({"model_name": p.name, "litellm_params": params, "model_info": {"id": p.name}})
        # Cooldowns are ours (module docstring): a Router-side cooldown would refuse requests locally.
        return Router(model_list=model_list, num_retries=0, disable_cooldowns=True)

    async def warm(self) -> None:
        """Pay LiteLLM's lazy first-call setup (~0.5 s) now, not inside the first turn's deadline.

        ``mock_response`` runs the Router's whole path without a network call or tokens. Idempotent.
        """
        if self._warmed:
            return
        self._warmed = True
        for p in self.providers:
            try:
                stream = await self.router.acompletion(
                    model=p.name,
                    messages=[{"role": "user", "content": "warm-up"}],
                    stream=True,
                    mock_response="ok",
                )
                async for _chunk in stream:
                    pass
            except Exception:  # warming is best effort
                log.debug("LLM warm-up of %s failed", p.name, exc_info=True)

    # --- cooldown state (shared: agent.resilience.Cooldowns) -----------------------------------
    def cooling_down(self) -> set[str]:
        cooling = self.cooldowns.cooling_down(p.key for p in self.providers)
        return {p.name for p in self.providers if p.key in cooling}

    def cooldown_remaining(self, name: str) -> float:
        provider = self._by_name.get(name)
        return self.cooldowns.remaining(provider.key) if provider is not None else 0.0

    def record_failure(self, name: str, retry_after_s: float | None = None) -> bool:
        """Count a failed attempt; returns True when this failure put the provider in cooldown.

        A 429 with ``Retry-After`` cools the provider down at once for that long (capped at 300 s):
        the provider said when to come back, counting to allowed_fails would only send it more
        requests it will refuse.
        """
        provider = self._by_name[name]
        cooldown = self.cooldowns.record_failure(
            provider.key,
            allowed_fails=self.settings.allowed_fails,
            window_s=self.settings.cooldown_s,
            retry_after_s=retry_after_s,
        )
        if cooldown is None:
            return False
        why = "Retry-After" if retry_after_s else f"more than {self.settings.allowed_fails} failures"
        log.warning("LLM provider %s cooling down for %.1f s (%s)", name, cooldown, why)
        return True

    def record_success(self, name: str) -> None:
        """The provider answered: if it was cooling down (tried because all were), it is usable again."""
        provider = self._by_name[name]
        if self.cooldowns.remaining(provider.key) > 0:
            log.info("LLM provider %s answered during its cooldown: usable again", name)
        self.cooldowns.record_success(provider.key)

    # --- the same, off the event loop when the cooldowns are in Redis ------------------------
    async def cooling_down_now(self) -> set[str]:
        if self.cooldowns.remote:
            return await asyncio.to_thread(self.cooling_down)
        return self.cooling_down()

    async def record_failure_now(self, name: str, retry_after_s: float | None = None) -> bool:
        if self.cooldowns.remote:
            return await asyncio.to_thread(self.record_failure, name, retry_after_s)
        return self.record_failure(name, retry_after_s)

    async def record_success_now(self, name: str) -> None:
        if self.cooldowns.remote:
            await asyncio.to_thread(self.record_success, name)
        else:
            self.record_success(name)

    def status(self) -> dict[str, bool]:
        cooling = self.cooling_down()
        return {p.name: p.name not in cooling for p in self.providers}
