"""Heavy imports in a daemon thread: what a process needs for its work but not to start.

LiteLLM alone is ~5 s of CPU on this project's 2-core machine (bench item 6). Two entry points load it
in the background instead of on the path someone waits on:

- ``simulate`` (``agent/simulate/startup.py``): LiteLLM and LiveKit while it prints its first line,
  reads the settings and starts the local services;
- the LiveKit worker (``agent/worker_warmup.py``): LiteLLM and the call modules once it has
  registered with the LiveKit server, so it accepts jobs seconds sooner; a job that arrives before
  they are loaded waits for them in its entrypoint.

The rule that makes a thread safe here: while the loader runs, no other thread imports the modules it
imports (a concurrent circular import can hand one thread a partially initialised module). Each user
imports what else it needs before it starts the loader and the loader's modules only after ``wait``.

Only the standard library at module level: ``simulate`` imports this before its first line.
"""

from __future__ import annotations

import concurrent.futures
import gc
import importlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

LoaderState = Literal["not started", "loading", "loaded", "failed"]
THREAD_NAME = "sales-agent-imports"


class BackgroundImports:
    """Imports ``modules`` in a daemon thread; ``wait`` returns when they are loaded or raises why not.

    ``start`` is idempotent, so whichever hook of a process comes first starts it. ``wait`` works from
    any thread's event loop (the LiveKit worker's jobs each run their own): the result is a
    ``concurrent.futures.Future`` that every loop can await without a helper thread.
    """

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = tuple(modules)
        self._result: concurrent.futures.Future[float] = concurrent.futures.Future()
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self.seconds = 0.0  # how long the imports took, once done

    def start(self) -> BackgroundImports:
        with self._lock:
            if self._started_at is None:
                self._started_at = time.perf_counter()
                threading.Thread(target=self._run, name=THREAD_NAME, daemon=True).start()
        return self

    def _run(self) -> None:
        assert self._started_at is not None
        self._result.set_running_or_notify_cancel()  # from now on no waiter's cancel can cancel it
        # Imports make hundreds of thousands of long-lived objects and almost no garbage, yet CPython
        # walks the whole heap each time it has grown by a quarter: 9 full collections, ~0.8 s of a
        # `simulate` start. None while they load; the process's first runtime collects once and
        # freezes what is left (agent/heap.py).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for module in self.modules:
                importlib.import_module(module)
        except BaseException as exc:  # re-raised to every waiter by wait()
            self.seconds = time.perf_counter() - self._started_at
            self._result.set_exception(exc)
        else:
            self.seconds = time.perf_counter() - self._started_at
            self._result.set_result(self.seconds)
        finally:
            if collecting:
                gc.enable()

    def add_done_callback(self, fn: Callable[[BackgroundImports], None]) -> None:
        """``fn(self)`` once the imports are done or failed (in the loader thread; at once if done)."""
        self._result.add_done_callback(lambda _result: fn(self))

    @property
    def state(self) -> LoaderState:
        if self._started_at is None:
            return "not started"
        if not self._result.done():
            return "loading"
        return "failed" if self._result.exception() is not None else "loaded"

    @property
    def error(self) -> BaseException | None:
        return self._result.exception() if self._result.done() else None

    def elapsed(self) -> float:
        """Seconds since ``start`` (0 before it); the import time once done."""
        if self._started_at is None:
            return 0.0
        return self.seconds if self._result.done() else time.perf_counter() - self._started_at

    async def wait(self) -> float:
        """Seconds the imports took; an import that failed is raised here. Does not start them.

        Cancelling the wait (``asyncio.timeout``, a job that ends) leaves the imports going on."""
        import asyncio  # not at the top: simulate's first line comes before asyncio is imported

        if self._result.done():
            return self._result.result()
        # shield: a waiter that gives up must not cancel the result the others wait for.
        return await asyncio.shield(asyncio.wrap_future(self._result))
