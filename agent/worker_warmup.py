"""The LiveKit worker's warm-up: LiteLLM and the call modules, loaded after the worker registers.

Why after: livekit-agents (1.8) registers a worker with the LiveKit server only once its pool is warm:
``AgentServer.run`` awaits ``ProcPool.start()``, which waits until ``num_idle_processes`` job threads
(or processes) have run ``prewarm``. Everything imported before ``cli.run_app`` or inside ``prewarm``
is paid before the worker can be offered a job. A call needs LiteLLM (~5 s of CPU on this project's
2-core machine, bench item 6); registering and answering a job offer do not.

So, per process:

- the worker process starts the loader when it has registered (``worker_registered``), whatever the
  executor: its job threads (``thread`` executor) share these modules, and its own services (the
  outbox drainer, the health checks of the LLM chain) need them too;
- a job process of its own (``process`` executor) starts its loader in ``prewarm``; LiveKit's
  forkserver has usually imported the modules already (``preload_modules``: shared copy-on-write by
  every job process, at the price of registering after the forkserver loaded them), so it finds them;
- a job that arrives before the modules are loaded waits for them in its entrypoint (``wait_in_job``):
  a log line when it starts and ends, a ``worker_warmup_wait`` span, bounded by
  ``SALES_AGENT_WARMUP_TIMEOUT_S``;
- ``/ready`` fails its critical ``warmup`` check until they are loaded. A failed warm-up (a broken
  installation) leaves the worker registered but unavailable: its load is 1.0 and every job offer is
  rejected, with the error on ``/ready`` and in the log.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.background_imports import BackgroundImports

if TYPE_CHECKING:
    from agent.health import Check

log = logging.getLogger(__name__)

# What a call needs and registration does not; also LiveKit's forkserver preload (``process`` executor).
WARMUP_MODULES = ("litellm", "agent.llm.router_llm", "agent.crm", "agent.sales_call", "agent.runtime")
# What the worker's main thread imports while the loader runs (its services start meanwhile): imported
# before the loader starts, so the two threads never import the same module at the same time.
MAIN_THREAD_MODULES = ("agent.sessions", "agent.health", "agent.health.checks")
WARMUP_WAIT_SPAN = "worker_warmup_wait"

_warmup = BackgroundImports(WARMUP_MODULES)


def warmup() -> BackgroundImports:
    """This process's loader of ``WARMUP_MODULES`` (not started until a hook starts it)."""
    return _warmup


def prepare_main_thread() -> None:
    for module in MAIN_THREAD_MODULES:
        importlib.import_module(module)


def start_warmup() -> BackgroundImports:
    """Start loading (idempotent); the outcome is logged once, from the loader thread."""
    loader = warmup()
    if loader.state == "not started":
        log.info("loading LiteLLM and the call modules in the background (the worker's warm-up)")
        loader.start().add_done_callback(_log_outcome)
    return loader


def _log_outcome(loader: BackgroundImports) -> None:
    if loader.error is None:
        log.info("warm-up done: LiteLLM and the call modules loaded in %.2f s", loader.seconds)
    else:
        log.error(
            "warm-up failed after %.2f s: %s: %s; this worker takes no jobs (load 1.0, /ready 503) "
            "until it is restarted with a working installation",
            loader.seconds,
            type(loader.error).__name__,
            loader.error,
        )


def warmup_failed() -> bool:
    return warmup().state == "failed"


def warmup_check() -> Check:
    """A critical health check: healthy once the warm-up has loaded its modules."""

    async def check() -> tuple[bool, dict[str, Any]]:
        loader = warmup()
        details: dict[str, Any] = {"state": loader.state, "seconds": round(loader.elapsed(), 3)}
        if loader.error is not None:
            details["error"] = f"{type(loader.error).__name__}: {str(loader.error)[:200]}"
        return loader.state == "loaded", details

    return check


async def wait_in_job(job_id: str, span_attributes: Mapping[str, Any], timeout_s: float) -> bool:
    """At a job's start: True once the warm-up's modules are loaded (at once, or after waiting for
    them); False when they failed or are still loading after ``timeout_s`` (logged; the job ends)."""
    from opentelemetry import trace

    from telemetry.span_status import set_error

    loader = warmup()
    if loader.state == "not started":  # a job process whose prewarm did not run (tests)
        start_warmup()
    if loader.state == "loaded":
        return True
    extra = {"job_id": job_id, **span_attributes}
    log.info(
        "job %s arrived %.1f s into the worker's warm-up: its call starts once LiteLLM and the call "
        "modules are loaded",
        job_id,
        loader.elapsed(),
        extra=extra,
    )
    started = time.perf_counter()
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span(WARMUP_WAIT_SPAN, attributes=span_attributes) as span:
        try:
            async with asyncio.timeout(timeout_s):
                await loader.wait()
        except TimeoutError:
            message = f"the warm-up is still loading after {timeout_s:g} s (SALES_AGENT_WARMUP_TIMEOUT_S)"
            set_error(span, message)
            log.error("job %s ends: %s", job_id, message, extra=extra)
            return False
        except Exception as exc:  # the import's own error, logged by _log_outcome
            set_error(span, f"the warm-up failed: {type(exc).__name__}")
            log.error("job %s ends: the warm-up failed (%s)", job_id, type(exc).__name__, extra=extra)
            return False
    waited = time.perf_counter() - started
    log.info("job %s waited %.2f s for the worker's warm-up", job_id, waited, extra=extra)
    return True
