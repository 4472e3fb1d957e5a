"""The provider chain: one LiteLLM ``Router`` per process, one model group per provider.

Why we drive the order ourselves instead of ``Router(fallbacks=...)``: each provider attempt must be
its own span with its own ``error.type`` and the fallback must be a span event; the Router's
internal fallback hides the attempts inside one call. So the Router holds one single-deployment
model group per provider (deployment id = provider name) and ``RouterLLMStream`` walks them in order.

Cooldowns still live in the Router's cooldown store (in memory, or Redis when ``redis_url`` is set,
which shares them across job processes and workers). LiteLLM deliberately never cools down a lone
deployment, ignores ``APIConnectionError`` and cannot see our first-token deadline; so we count
each classified attempt failure in the same store with the Router's own allowed-fails counter
(``allowed_fails`` tolerated per ``cooldown_s`` window, the next one cools the provider down for
``cooldown_s``), exactly as ``should_cooldown_based_on_allowed_fails_policy`` does.

Retries: exactly one layer acts, and it is this chain (fallback to the next provider). The Router
has ``num_retries=0`` and no ``fallbacks``; LiteLLM's OpenAI client ``max_retries=0``; LiveKit's
``APIConnectOptions.max_retry`` is forced to 0 in ``RouterLLM.chat``. A retry of the same provider
inside a 2 s voice budget would only delay the healthy next provider.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from agent.llm.errors import LLMConfigError, NoUsableLLMProvider
from agent.llm.settings import LLMSettings, ProviderConfig

log = logging.getLogger(__name__)

_FAIL_COUNTER_SUFFIX = "sales_agent"
_MAX_RETRY_AFTER_S = 300.0


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


class ProviderChain:
    """The Router and the providers' cooldown state, shared by every session of the process."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self.providers = usable_providers(settings)
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
        kwargs: dict[str, Any] = {
            "model_list": model_list,
            "num_retries": 0,
            "allowed_fails": self.settings.allowed_fails,
            "cooldown_time": self.settings.cooldown_s,
        }
        if self.settings.redis_url:
            import importlib.util

            if importlib.util.find_spec("redis") is None:
                raise LLMConfigError(
                    "SALES_AGENT_LLM_REDIS_URL is set but the 'redis' package is not installed "
                    "(uv add redis), so LiteLLM cannot share cooldowns through Redis",
                    error_type="redis_client_missing",
                )
            kwargs["redis_url"] = self.settings.redis_url
        return Router(**kwargs)

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

    # --- cooldown state (the Router's store) ------------------------------------------------
    @property
    def _cooldowns(self) -> Any:
        return self.router.health().cooldowns

    def cooling_down(self) -> set[str]:
        active = self._cooldowns.get_active_cooldowns([p.name for p in self.providers], None)
        return {model_id for model_id, _value in active}

    async def async_cooling_down(self) -> set[str]:
        active = await self._cooldowns.async_get_active_cooldowns([p.name for p in self.providers], None)
        return {model_id for model_id, _value in active}

    def cooldown_remaining(self, name: str) -> float:
        for model_id, value in self._cooldowns.get_active_cooldowns([name], None):
            if model_id == name:
                return max(0.0, float(value["timestamp"]) + float(value["cooldown_time"]) - time.time())
        return 0.0

    async def record_failure(
        self, name: str, exc: BaseException, status_code: int, retry_after_s: float | None = None
    ) -> bool:
        """Count a failed attempt; returns True when this failure put the provider in cooldown.

        A 429 with ``Retry-After`` cools the provider down at once for that long (capped at
        ``_MAX_RETRY_AFTER_S``): the provider said when to come back, counting to allowed_fails
        would only send it more requests it will refuse.
        """
        store = self._cooldowns.cooldown_store
        fails = await store.async_increment_allowed_fails(
            name, _FAIL_COUNTER_SUFFIX, self.settings.cooldown_s
        )
        if retry_after_s:
            cooldown, why = min(retry_after_s, _MAX_RETRY_AFTER_S), "Retry-After"
        elif fails > self.settings.allowed_fails:
            cooldown, why = self.settings.cooldown_s, f"{fails} failures"
        else:
            return False
        self._cooldowns.add_deployment_to_cooldown(
            model_id=name, original_exception=exc, exception_status=status_code, cooldown_time=cooldown
        )
        log.warning("LLM provider %s cooling down for %.1f s (%s)", name, cooldown, why)
        return True

    def status(self) -> dict[str, bool]:
        cooling = self.cooling_down()
        return {p.name: p.name not in cooling for p in self.providers}
