"""``simulate``'s start-up: a first line at once, the heavy imports in the background, a line per stage.

LiteLLM and LiveKit are most of a start (bench item 6: ~5 s of CPU on this project's 2-core machine
with their bytecode compiled, twice that without). The user used to stare at a silent terminal for
all of it. Now ``simulate`` prints its first line before it imports anything heavy, imports LiteLLM
and LiveKit in a background thread while the main thread reads the settings and starts the local
services, and says when each stage is done.

One rule keeps the two threads from importing the same modules at the same time (a concurrent
circular import can hand one of them a partially initialised module; the loader is
``agent/background_imports.py``, which the LiveKit worker uses too): the loader thread imports
only ``HEAVY_MODULES`` and what they pull in; the main thread imports what the stand-ins need
before the loader starts (``prepare_main_thread``) and nothing else until ``wait`` returned.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from pathlib import Path

from agent.background_imports import BackgroundImports

# Imported by the loader thread, in this order; what they pull in comes along (openai, numpy, ...).
HEAVY_MODULES = ("livekit.agents", "litellm")
# Imported by the main thread before the loader starts: everything the local services need to start.
MAIN_THREAD_MODULES = (
    "agent.simulate.stack",
    "local_services.llm_provider",
    "local_services.crm_service",
    "rich.console",
    "rich.status",  # the spinner while waiting for the loader
    "concurrent.futures.thread",  # asyncio's default executor, should the main thread use it meanwhile
)


def bytecode_note(module: str = "litellm") -> str:
    """What this start will pay for compiling sources, when ``module``'s bytecode is not on disk."""
    spec = importlib.util.find_spec(module)  # a top-level name: found without importing it
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return ""
    if Path(importlib.util.cache_from_source(spec.origin)).exists():
        return ""
    if sys.dont_write_bytecode:
        return (
            "LiteLLM and LiveKit are not compiled to bytecode and PYTHONDONTWRITEBYTECODE is set, so "
            "every start compiles them (about twice as slow); `uv sync --compile-bytecode` does it once"
        )
    return "first start since install: LiteLLM and LiveKit are compiled to bytecode now (once)"


def start_heavy_imports() -> BackgroundImports:
    """LiteLLM and LiveKit, loading in the background from now on (``prepare_main_thread`` first)."""
    return BackgroundImports(HEAVY_MODULES).start()


def prepare_main_thread() -> None:
    for module in MAIN_THREAD_MODULES:
        importlib.import_module(module)


class StartupLines:
    """The lines ``simulate`` prints while it starts, each with the seconds since the command began."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def say(self, text: str) -> None:
        # print, not rich: this is the first line, before rich (or anything else) is imported.
        print(f"simulate: {text} [{self.elapsed():.1f} s]", flush=True)
