"""The agent's LLM: LiteLLM's Router behind a LiveKit ``llm.LLM``, with per-attempt telemetry.

``build_llm(settings)`` is the entry point; see ``agent/llm/README.md`` for configuration.
litellm is imported only when ``build_llm`` runs (it costs ~4 s and 200 MB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.llm.errors import LLMConfigError, NoUsableLLMProvider, ProviderAttemptError
from agent.llm.settings import LLMSettings, ProviderConfig

if TYPE_CHECKING:
    from agent.call_context import CallContext
    from agent.llm.router_llm import RouterLLM
    from agent.resilience import ResilienceState

__all__ = [
    "LLMConfigError",
    "LLMSettings",
    "NoUsableLLMProvider",
    "ProviderAttemptError",
    "ProviderConfig",
    "RouterLLM",
    "build_llm",
]


def build_llm(
    settings: LLMSettings,
    *,
    call: CallContext | None = None,
    resilience: ResilienceState | None = None,
) -> RouterLLM:
    """A RouterLLM over a new provider chain (one Router per event loop; ``llm.for_call(call)`` gives
    per-call labelled views of the same chain).

    ``resilience``: whose cooldowns the chain uses. The worker passes ``process_resilience()`` so
    every job (each with its own Router on its own loop) skips a failing provider; without it the
    chain keeps its own. With ``redis_url`` they are shared through Redis by every worker, and those
    are the fallback when Redis cannot be reached. Raises ``NoUsableLLMProvider`` when no provider of
    the chain has its API key.
    """
    from agent.llm.chain import ProviderChain
    from agent.llm.instruments import add_availability_source, instruments
    from agent.llm.router_llm import RouterLLM
    from telemetry import names

    cooldowns: Any = resilience.cooldowns if resilience is not None else None
    if settings.redis_url is not None:  # shared by every worker; the process's own as the fallback
        from agent.resilience import Cooldowns
        from agent.resilience.shared_cooldowns import shared_cooldowns

        cooldowns = shared_cooldowns(
            settings.redis_url.get_secret_value(),
            local=cooldowns if cooldowns is not None else Cooldowns(),
            timeout_s=settings.redis_timeout_s,
        )
    chain = ProviderChain(settings, cooldowns)
    add_availability_source(chain.status)
    for provider in chain.providers:  # at 0 from the start, so increase() sees the first cut stream
        instruments().tool_calls_dropped.add(0, {names.GEN_AI_PROVIDER_NAME: provider.name})
    return RouterLLM(chain, call=call)


def __getattr__(name: str) -> object:
    if name == "RouterLLM":  # lazy: importing it pulls in livekit.agents
        from agent.llm.router_llm import RouterLLM

        return RouterLLM
    raise AttributeError(name)
