"""The agent's LLM: LiteLLM's Router behind a LiveKit ``llm.LLM``, with per-attempt telemetry.

``build_llm(settings)`` is the entry point; see ``agent/llm/README.md`` for configuration.
litellm is imported only when ``build_llm`` runs (it costs ~4 s and 200 MB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.llm.errors import LLMConfigError, NoUsableLLMProvider, ProviderAttemptError
from agent.llm.settings import LLMSettings, ProviderConfig

if TYPE_CHECKING:
    from agent.call_context import CallContext
    from agent.llm.router_llm import RouterLLM

__all__ = [
    "LLMConfigError",
    "LLMSettings",
    "NoUsableLLMProvider",
    "ProviderAttemptError",
    "ProviderConfig",
    "RouterLLM",
    "build_llm",
]


def build_llm(settings: LLMSettings | None = None, *, call: CallContext | None = None) -> RouterLLM:
    """A RouterLLM over a new provider chain (one Router; build once per process and share it,
    ``llm.for_call(call)`` gives per-call labelled views of the same chain).

    Raises ``NoUsableLLMProvider`` when no provider of the chain has its API key.
    """
    from agent.llm.chain import ProviderChain
    from agent.llm.instruments import add_availability_source
    from agent.llm.router_llm import RouterLLM

    chain = ProviderChain(settings or LLMSettings.load())
    add_availability_source(chain.status)
    return RouterLLM(chain, call=call)


def __getattr__(name: str) -> object:
    if name == "RouterLLM":  # lazy: importing it pulls in livekit.agents
        from agent.llm.router_llm import RouterLLM

        return RouterLLM
    raise AttributeError(name)
