"""Names of the local OpenAI-compatible LLM providers (``simulate``, demos, compose, benchmarks).

A local chain's first provider is ``primary``, the second ``backup``, further ones ``backup2``,
``backup3``...; each serves the model ``<name>-model``. The names label spans and metrics
(``gen_ai.provider.name``) and are the ``simulate --faults llm-<name>`` targets.
"""

from __future__ import annotations

from typing import Final

PRIMARY: Final = "primary"
BACKUP: Final = "backup"
DEFAULT_LOCAL_PROVIDERS: Final = (PRIMARY, BACKUP)


def local_provider_names(count: int) -> tuple[str, ...]:
    """The names of a local chain of ``count`` providers, in fallback order."""
    return (*DEFAULT_LOCAL_PROVIDERS, *(f"{BACKUP}{i}" for i in range(2, count)))[:count]


def local_model(name: str) -> str:
    """The model id a local provider called ``name`` serves."""
    return f"{name}-model"
