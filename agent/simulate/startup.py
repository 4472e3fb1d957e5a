"""``simulate``'s start-up: a first line at once, the heavy imports in the background, a line per stage.

LiteLLM and LiveKit are most of a start (bench item 6: ~5 s of CPU on this project's 2-core machine
with their bytecode compiled, twice that without). The user used to stare at a silent terminal for
all of it. Now ``simulate`` prints its first line before it imports anything heavy, imports LiteLLM
and LiveKit in a background thread while the main thread reads the settings and starts the local
services, and says when each stage is done.

One rule keeps the two threads from importing the same modules at the same time (a concurrent
circular import can hand one of them a partially initialised module): the loader thread imports
only ``HEAVY_MODULES`` and what they pull in; the main thread imports what the stand-ins need
before the loader starts (``prepare_main_thread``) and nothing else until ``wait`` returned.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

# Imported by the loader thread, in this order; what they pull in comes along (openai, numpy, ...).
HEAVY_MODULES = ("livekit.agents", "litellm")
# Imported by the main thread before the loader starts: everything the local services need to start.
MAIN_THREAD_MODULES = (
    "agent.simulate.stack",
    "local_services.llm_provider",
    "local_services.crm_service",
    "rich.console",
    "rich.status",  # the spinner while waiting for the loader
    "concurrent.futures.thread",  # asyncio.to_thread, which ``wait`` uses
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


class BackgroundImports:
    """Imports ``modules`` in a daemon thread; ``wait`` returns when they are loaded or raises why not."""

    def __init__(self, modules: Sequence[str] = HEAVY_MODULES) -> None:
        self._modules = tuple(modules)
        self._done = threading.Event()
        self._error: BaseException | None = None
        self.seconds = 0.0

    def start(self) -> BackgroundImports:
        threading.Thread(target=self._run, name="sales-agent-imports", daemon=True).start()
        return self

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            for module in self._modules:
                importlib.import_module(module)
        except BaseException as exc:  # re-raised in the main thread by wait()
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - started
            self._done.set()

    async def wait(self) -> float:
        """Seconds the imports took; an import that failed is raised here."""
        import asyncio  # not at the top: this module is on the path to simulate's first line

        if not self._done.is_set():
            await asyncio.to_thread(self._done.wait)
        if self._error is not None:
            raise self._error
        return self.seconds


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
