"""Take the start-up heap out of the garbage collector's full passes, once per process.

An agent process holds ~450,000 GC-tracked objects once LiteLLM, livekit-agents and the plugins are
imported (LiteLLM alone builds ~2,500 pydantic models), and they live as long as the process. CPython
still walks all of them in every full (generation 2) collection: ~165 ms with the event loop and
every call on it stopped, measured on the 2-core machine the benchmarks run on. Those collections
come more often the more a call allocates (spans, metric points, audio frames), so their cost grows
with load and with telemetry. ``gc.freeze()`` moves every object alive now into the permanent
generation, which collections skip; what calls allocate afterwards is collected as before.

Done once, when a process's first runtime has started (imports done, the Router warmed up): the
collection before the freeze (so the start-up's own garbage is freed, not kept forever) is the
process's one long pause, before it serves anything. ``SALES_AGENT_GC_FREEZE=false`` leaves the
collector as CPython ships it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

_lock = threading.Lock()
_frozen: FrozenHeap | None = None


@dataclass(frozen=True)
class FrozenHeap:
    objects: int  # objects moved to the permanent generation
    seconds: float  # the collection and the freeze, together


def freeze_startup_heap() -> FrozenHeap | None:
    """Collect once, then freeze everything alive; None when this process already did."""
    global _frozen
    with _lock:  # the worker's job threads each start a runtime: only the first one freezes
        if _frozen is not None:
            return None
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        _frozen = FrozenHeap(objects=gc.get_freeze_count(), seconds=time.perf_counter() - started)
    log.info(
        "start-up heap frozen: %d objects left out of full garbage collections (%.0f ms, once)",
        _frozen.objects,
        _frozen.seconds * 1000,
    )
    return _frozen


def frozen_heap() -> FrozenHeap | None:
    """What ``freeze_startup_heap`` did in this process, if it ran."""
    return _frozen
