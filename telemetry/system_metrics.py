"""Process and host metrics from psutil, named per the OTel semantic conventions, plus event-loop lag.

opentelemetry-instrumentation-system-metrics exists but still emits the pre-1.0 names (e.g.
``process.runtime.cpython.memory``) and is not a dependency; the handful of observable
instruments below follow the current conventions (``process.*``, ``system.*``).
Cardinality is kept low: CPU by mode (not per core), filesystems only for the configured mount
points, network I/O per interface and direction.

CPU is exported as the cumulative counters ``system.cpu.time`` / ``process.cpu.time`` (seconds by
mode): alert rules and dashboards take ``rate()`` of them over a window of their choosing, which no
collection can disturb. The ``*.cpu.utilization`` gauges are kept for quick looks, but each reading
covers a trailing window of at least ``CPU_WINDOW_S`` (``CpuWindow``): psutil's ``cpu_percent(None)``
measures "since the previous call", and every reader (a scrape, the OTLP reader, an in-memory reader)
is a caller, so a busy host read twice in a row looked idle on the second read.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import psutil
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from telemetry import names

log = logging.getLogger(__name__)

METER_NAME = "sales_agent.runtime"
CPU_WINDOW_S = 30.0  # the utilization gauges' shortest window, whoever reads them and how often


def _gc_collections() -> Iterable[Observation]:
    return [
        Observation(stats["collections"], {names.CPYTHON_GC_GENERATION: generation})
        for generation, stats in enumerate(gc.get_stats())
    ]


def _safe(fn: Callable[[], Iterable[Observation]]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """A failing probe (permissions, a vanished mount) yields nothing instead of breaking collection."""

    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        try:
            return list(fn())
        except (psutil.Error, OSError) as exc:
            log.debug("system metric probe failed: %s", exc)
            return []

    return callback


class SystemMetrics:
    """Registers the observable instruments on ``meter``; keeps the psutil handles they read."""

    def __init__(self, meter: Meter, mountpoints: Iterable[str] = ("/",)) -> None:
        self._process = psutil.Process()
        self._cpu_count = psutil.cpu_count() or 1
        self._mountpoints = tuple(mountpoints)
        self._system_cpu_window = CpuWindow(system_cpu_seconds)
        self._process_cpu_window = CpuWindow(self._process_cpu_seconds, wall_clock_share=self._cpu_count)
        self._register(meter)

    def _register(self, m: Meter) -> None:
        m.create_observable_counter(
            "process.cpu.time", [_safe(self._process_cpu_time)], unit="s", description="CPU seconds by mode"
        )
        m.create_observable_gauge(
            "process.cpu.utilization",
            [_safe(self._process_cpu_utilization)],
            unit="1",
            description=f"Process CPU time / wall time / CPUs over the last {CPU_WINDOW_S:g} s or more",
        )
        m.create_observable_up_down_counter(
            "process.memory.usage", [_safe(self._rss)], unit="By", description="Resident set size"
        )
        m.create_observable_up_down_counter(
            "process.memory.virtual", [_safe(self._vms)], unit="By", description="Virtual memory size"
        )
        m.create_observable_up_down_counter(
            "process.unix.file_descriptor.count",
            [_safe(self._fds)],
            unit="{file_descriptor}",
            description="Open file descriptors",
        )
        m.create_observable_up_down_counter(
            "process.thread.count", [_safe(self._threads)], unit="{thread}", description="OS threads"
        )
        m.create_observable_counter(
            "system.cpu.time",
            [_safe(self._system_cpu_time)],
            unit="s",
            description="Host CPU seconds by mode, summed over all logical CPUs",
        )
        m.create_observable_gauge(
            "system.cpu.utilization",
            [_safe(self._system_cpu)],
            unit="1",
            description=f"Host CPU by mode over the last {CPU_WINDOW_S:g} s or more",
        )
        m.create_observable_up_down_counter(
            "system.memory.usage", [_safe(self._memory_usage)], unit="By", description="Host memory by state"
        )
        m.create_observable_gauge(
            "system.memory.utilization", [_safe(self._memory_utilization)], unit="1", description="Used share"
        )
        m.create_observable_up_down_counter(
            "system.filesystem.usage", [_safe(self._fs_usage)], unit="By", description="Filesystem by state"
        )
        m.create_observable_gauge(
            "system.filesystem.utilization", [_safe(self._fs_utilization)], unit="1", description="Used share"
        )
        m.create_observable_counter(
            "system.network.io", [_safe(self._network_io)], unit="By", description="Bytes by direction"
        )
        # Not psutil's: the interpreter's own count. Full collections (generation 2) stop the event loop
        # for as long as they walk the heap (agent/heap.py freezes the start-up heap out of them).
        m.create_observable_counter(
            names.CPYTHON_GC_COLLECTIONS,
            [_safe(_gc_collections)],
            unit="{collection}",
            description="Garbage collections by generation since the process started",
        )
        for window, index in (("1m", 0), ("5m", 1), ("15m", 2)):
            m.create_observable_gauge(
                f"system.cpu.load_average.{window}",
                [_safe(lambda i=index: [Observation(os.getloadavg()[i])])],
                unit="{thread}",
                description=f"Load average over {window}",
            )

    def _process_cpu_time(self) -> Iterable[Observation]:
        times = self._process.cpu_times()
        return [
            Observation(times.user, {"cpu.mode": "user"}),
            Observation(times.system, {"cpu.mode": "system"}),
        ]

    def _process_cpu_seconds(self) -> dict[str, float]:
        times = self._process.cpu_times()
        return {"busy": times.user + times.system}

    def _process_cpu_utilization(self) -> Iterable[Observation]:
        shares = self._process_cpu_window.shares()
        return [Observation(shares["busy"])] if shares else []

    def _rss(self) -> Iterable[Observation]:
        return [Observation(self._process.memory_info().rss)]

    def _vms(self) -> Iterable[Observation]:
        return [Observation(self._process.memory_info().vms)]

    def _fds(self) -> Iterable[Observation]:
        return [Observation(self._process.num_fds())]

    def _threads(self) -> Iterable[Observation]:
        return [Observation(self._process.num_threads())]

    def _system_cpu_time(self) -> Iterable[Observation]:
        return [Observation(seconds, {"cpu.mode": mode}) for mode, seconds in system_cpu_seconds().items()]

    def _system_cpu(self) -> Iterable[Observation]:
        shares = self._system_cpu_window.shares()
        return [Observation(share, {"cpu.mode": mode}) for mode, share in shares.items()]

    def _memory_states(self) -> tuple[int, dict[str, int]]:
        vm = psutil.virtual_memory()
        states = {"used": vm.used, "free": vm.free}
        for state in ("cached", "buffers"):
            if hasattr(vm, state):
                states[state] = getattr(vm, state)
        return vm.total, states

    def _memory_usage(self) -> Iterable[Observation]:
        _, states = self._memory_states()
        return [Observation(v, {"system.memory.state": s}) for s, v in states.items()]

    def _memory_utilization(self) -> Iterable[Observation]:
        total, states = self._memory_states()
        return [Observation(v / total, {"system.memory.state": s}) for s, v in states.items()]

    def _fs_usage(self) -> Iterable[Observation]:
        out = []
        for mount in self._mountpoints:
            usage = psutil.disk_usage(mount)
            attrs = {"system.filesystem.mountpoint": mount}
            out.append(Observation(usage.used, {**attrs, "system.filesystem.state": "used"}))
            out.append(Observation(usage.free, {**attrs, "system.filesystem.state": "free"}))
        return out

    def _fs_utilization(self) -> Iterable[Observation]:
        return [
            Observation(psutil.disk_usage(m).percent / 100.0, {"system.filesystem.mountpoint": m})
            for m in self._mountpoints
        ]

    def _network_io(self) -> Iterable[Observation]:
        out = []
        for nic, counters in psutil.net_io_counters(pernic=True).items():
            nic_attrs = {"network.interface.name": nic}
            out.append(Observation(counters.bytes_sent, {**nic_attrs, "network.io.direction": "transmit"}))
            out.append(Observation(counters.bytes_recv, {**nic_attrs, "network.io.direction": "receive"}))
        return out


# Linux counts guest time inside user/nice as well: summing every mode would count it twice.
_OVERLAPPING_CPU_MODES = frozenset({"guest", "guest_nice"})


def system_cpu_seconds() -> dict[str, float]:
    """Cumulative host CPU seconds by mode (guest time is inside user/nice already)."""
    times = psutil.cpu_times()._asdict()
    return {mode: seconds for mode, seconds in times.items() if mode not in _OVERLAPPING_CPU_MODES}


class CpuWindow:
    """CPU shares over a trailing window of at least ``window_s``, however often they are read.

    Each read appends a sample of the cumulative CPU seconds and compares it with the newest sample
    that is at least ``window_s`` old (or the oldest one while the window fills), so two readers
    collecting a second apart both see the same busy minute. ``read()`` returns cumulative seconds
    by mode; the shares are each mode's part of all CPU seconds (host: sums to 1), or, with
    ``wall_clock_share`` (logical CPUs), each mode's seconds per wall-clock second per CPU (a process).
    Hand-written: psutil only offers "since the previous call".
    """

    def __init__(
        self,
        read: Callable[[], Mapping[str, float]],
        *,
        window_s: float = CPU_WINDOW_S,
        wall_clock_share: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._window_s = window_s
        self._cpus = wall_clock_share
        self._clock = clock
        self._lock = threading.Lock()  # readers collect from their own threads
        self._samples: deque[tuple[float, Mapping[str, float]]] = deque()
        self._samples.append((clock(), read()))

    def shares(self) -> dict[str, float]:
        """Shares by mode over the window; empty until some time and CPU has passed."""
        with self._lock:
            now, current = self._clock(), self._read()
            samples = self._samples
            samples.append((now, current))
            # Keep exactly one sample older than the window: the base of the next reading.
            while len(samples) > 2 and now - samples[1][0] >= self._window_s:
                samples.popleft()
            base_time, base = samples[0]
        elapsed = now - base_time
        deltas = {mode: max(0.0, current[mode] - base.get(mode, 0.0)) for mode in current}
        if self._cpus is not None:
            if elapsed <= 0:
                return {}
            return {mode: delta / elapsed / self._cpus for mode, delta in deltas.items()}
        total = sum(deltas.values())
        if total <= 0:
            return {}
        return {mode: delta / total for mode, delta in deltas.items()}


class LoopLagMonitor:
    """Measures how late ``asyncio.sleep(interval)`` wakes up: time the loop spent blocked or busy.

    One per event loop; the app starts it on its own loop (``Telemetry.start_loop_lag_monitor``).
    """

    def __init__(self, meter: Meter, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self._gauge = meter.create_gauge(
            names.EVENT_LOOP_LAG, unit="s", description="How late the event loop ran a timer (last sample)"
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - started - self.interval_s)
            self._gauge.set(lag)

    def start(self) -> asyncio.Task[None]:
        """Start on the running loop; cancel the returned task to stop."""
        task = asyncio.get_running_loop().create_task(self.run(), name="sales_agent.event_loop_lag")
        task.add_done_callback(_log_unexpected_end)
        return task


def _log_unexpected_end(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if (exc := task.exception()) is not None:
            log.error("event-loop lag monitor stopped: %r", exc)
