"""Item 5: span export under load to a loopback OTLP/HTTP sink, and with the sink down or hanging.

Each scenario runs in its own child process configured like production: ``OTEL_EXPORTER_OTLP_ENDPOINT``
points at the sink and ``setup_telemetry`` builds the BatchSpanProcessor + OTLP exporter (bounded queue,
export timeout). The load is the instrumented tool path of item 1 (one span per call), paced at a target
rate. Counting: a span processor counts ended spans; a wrapper around the batch processor's exporter counts
spans handed to export and the results; the sink (``sales-agent otlp-sink``, its own process) counts spans it
decoded. Dropped = ended - handed to the exporter - still queued.

    python -m bench.bench_export [--quick]
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._common import (
    Table,
    bench_arg_parser,
    child_env,
    emit,
    percentile,
    rss_mb,
    run_child,
    verdict,
    write_result,
)
from local_services.harness import free_port, spawn

GOAL_SPANS_PER_S = 2000


# --- child: instrumented load against a configured endpoint ----------------------------------------


class CountingExporter:
    """Wraps the batch processor's exporter: spans handed over, export outcomes, time blocked in export."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.handed = 0
        self.ok = 0
        self.failed = 0
        self.calls = 0
        self.blocked_s = 0.0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.handed += len(spans)
        self.calls += 1
        started = time.perf_counter()
        try:
            result = self._inner.export(spans)
        except Exception:
            self.failed += len(spans)
            raise
        finally:
            self.blocked_s += time.perf_counter() - started
        if result == SpanExportResult.SUCCESS:
            self.ok += len(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        if "timeout_millis" in inspect.getfullargspec(self._inner.shutdown).args:
            self._inner.shutdown(timeout_millis=timeout_millis)
        else:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _install(endpoint: str) -> tuple[Any, Any, Any, list[str]]:
    """setup_telemetry against ``endpoint``; returns (telemetry, batch processor core, counters, notes)."""
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from telemetry.settings import TelemetrySettings
    from telemetry.setup import setup_telemetry

    notes: list[str] = []
    telemetry = setup_telemetry(TelemetrySettings())
    tp = telemetry.tracer_provider
    if tp is None:
        raise RuntimeError("setup_telemetry installed no TracerProvider")
    batch = [p for p in tp._active_span_processor._span_processors if isinstance(p, BatchSpanProcessor)]
    if not batch:  # setup_telemetry without an OTLP span exporter: add the SDK default so the bench runs
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        bsp = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
        tp.add_span_processor(bsp)
        batch = [bsp]
        notes.append("setup_telemetry built no BatchSpanProcessor: the bench added an SDK-default one")
    core = batch[0]._batch_processor
    counting = CountingExporter(core._exporter)
    core._exporter = counting
    notes.append(
        f"batch processor: max_queue_size={core._max_queue_size}, "
        f"max_export_batch_size={core._max_export_batch_size}, "
        f"schedule_delay={core._schedule_delay_millis:.0f} ms, "
        f"exporter={type(counting._inner).__name__}"
    )

    class EndedCounter(SpanProcessor):
        ended = 0

        def on_end(self, span: Any) -> None:
            EndedCounter.ended += 1

    tp.add_span_processor(EndedCounter())
    return telemetry, core, (counting, EndedCounter), notes


async def _paced_phase(path: Any, rate: float | None, duration_s: float, core: Any) -> dict[str, Any]:
    """Call ``path`` ``rate`` times per second (None: as fast as possible) for ``duration_s``."""
    latencies: list[float] = []
    queue_max = 0
    rss_max = rss_mb()
    started = time.perf_counter()
    next_sample = started
    done = 0
    total = int(duration_s * rate) if rate else None
    while True:
        now = time.perf_counter()
        elapsed = now - started
        if elapsed >= duration_s and (total is None or done >= total):
            break
        due = min(int(elapsed * rate) + 1, total) if rate and total else done + 50
        while done < due:
            t0 = time.perf_counter()
            await path()
            latencies.append(time.perf_counter() - t0)
            done += 1
        if now >= next_sample:
            queue_max = max(queue_max, len(core._queue))
            rss_max = max(rss_max, rss_mb())
            next_sample = now + 0.1
        if rate:
            await asyncio.sleep(0.002)
        else:
            await asyncio.sleep(0)
    wall = time.perf_counter() - started
    return {
        "ops": done,
        "wall_s": wall,
        "rate": done / wall,
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
        "max_us": max(latencies, default=0.0) * 1e6,
        "queue_max": queue_max,
        "rss_max_mb": rss_max,
    }


def _shutdown_bounded(telemetry: Any, limit_s: float) -> float | None:
    """Shutdown in a thread; seconds taken, or None if still running after ``limit_s``."""
    started = time.perf_counter()
    thread = threading.Thread(target=telemetry.shutdown, daemon=True)
    thread.start()
    thread.join(limit_s)
    return None if thread.is_alive() else time.perf_counter() - started


def child_run(
    endpoint: str, sink_url: str | None, phases: list[float | None], duration_s: float
) -> dict[str, Any]:
    from bench.bench_instrumentation import FULL_PATH, build_paths
    from local_services.harness import admin_stats

    telemetry, core, (counting, ended), notes = _install(endpoint)
    path = build_paths(sdk=True)[FULL_PATH]
    rss_start = rss_mb()
    results = []
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_paced_phase(path, 500, 0.5, core))  # warm-up
        if sink_url:
            _wait_drained(core, counting, 10)
        for rate in phases:
            before = (ended.ended, counting.handed, counting.ok, counting.failed)
            received_before = admin_stats(sink_url)["spans"] if sink_url else 0
            phase = loop.run_until_complete(_paced_phase(path, rate, duration_s, core))
            if sink_url:  # let the batch processor catch up, then compare with what arrived
                phase["drain_s"] = _wait_drained(core, counting, 20)
                phase["received"] = admin_stats(sink_url)["spans"] - received_before
            phase["target"] = rate
            phase["ended"] = ended.ended - before[0]
            phase["handed"] = counting.handed - before[1]
            phase["export_ok"] = counting.ok - before[2]
            phase["export_failed"] = counting.failed - before[3]
            phase["queued_at_end"] = len(core._queue)
            phase["dropped"] = max(0, phase["ended"] - phase["handed"] - phase["queued_at_end"])
            results.append(phase)
    finally:
        loop.close()
    rss_end = rss_mb()
    shutdown_s = _shutdown_bounded(telemetry, 30)
    return {
        "phases": results,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "shutdown_s": shutdown_s,
        "export_blocked_s": counting.blocked_s,
        "export_calls": counting.calls,
        "notes": notes,
    }


def _wait_drained(core: Any, counting: CountingExporter, limit_s: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        if not core._queue and not core._export_lock.locked():
            break
        time.sleep(0.05)
    return time.perf_counter() - started


# --- parent ---------------------------------------------------------------------------------------


def _scenario(mode: str, phases: list[float | None], duration_s: float) -> dict[str, Any]:
    args = ["--child", "--duration", str(duration_s), "--phases", ",".join(str(p or "max") for p in phases)]
    env_common = {"OTEL_METRIC_EXPORT_INTERVAL": "5000", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    if mode == "down":
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: the collector is down
        env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **env_common)
        return run_child("bench.bench_export", [*args, "--endpoint", endpoint], env=env)
    with spawn("otlp-sink", "--fault", mode, env=child_env()) as sink:
        url = sink.url
        env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=url, **env_common)
        sink_args = ["--sink-url", url] if mode == "ok" else []
        return run_child("bench.bench_export", [*args, "--endpoint", url, *sink_args], env=env)


def run(quick: bool) -> list[Table]:
    duration = 1.0 if quick else 10.0
    ladder: list[float | None] = [GOAL_SPANS_PER_S, None] if quick else [1000, 2000, 4000, None]
    fault_rate = 500 if quick else GOAL_SPANS_PER_S
    fault_duration = 1.5 if quick else 15.0

    sustained = _scenario("ok", ladder, duration)
    t1 = Table(
        "5a. Spans/s sustained to a loopback OTLP/HTTP sink (one span per instrumented tool call)",
        ["target/s", "achieved/s", "ended", "received by sink", "dropped", "queue max", "p50 µs", "p99 µs"],
    )
    goal_phase = None
    for ph in sustained["phases"]:
        t1.add(
            "max" if ph["target"] is None else int(ph["target"]),
            ph["rate"],
            ph["ended"],
            ph.get("received", "-"),
            ph["ended"] - ph.get("received", ph["ended"]),
            ph["queue_max"],
            ph["p50_us"],
            ph["p99_us"],
        )
        if ph["target"] == GOAL_SPANS_PER_S:
            goal_phase = ph
    if goal_phase is not None:
        lost = goal_phase["ended"] - goal_phase.get("received", 0)
        ok = lost == 0 and goal_phase["rate"] >= 0.97 * GOAL_SPANS_PER_S
        t1.verdicts.append(
            verdict(
                f"{GOAL_SPANS_PER_S:,} spans/s with 0 dropped",
                ok,
                f"{goal_phase['rate']:,.0f} spans/s achieved, {lost} of {goal_phase['ended']:,} not received",
            )
        )
    t1.notes += sustained["notes"]
    t1.notes.append(
        f"{duration:.0f} s per row; 'max' = unpaced (as fast as one event loop issues tool calls)."
    )

    faults = {mode: _scenario(mode, [fault_rate], fault_duration) for mode in ("ok", "down", "hang")}
    t2 = Table(
        f"5b. Sink healthy vs down (closed port) vs hanging, {fault_rate:,} calls/s "
        f"for {fault_duration:.0f} s",
        [
            "sink",
            "achieved/s",
            "p50 µs",
            "p99 µs",
            "max µs",
            "exported ok",
            "export failed",
            "dropped (queue full)",
            "queue max",
            "RSS start→max MB",
            "shutdown s",
        ],
    )
    for mode, res in faults.items():
        ph = res["phases"][0]
        t2.add(
            mode,
            ph["rate"],
            ph["p50_us"],
            ph["p99_us"],
            ph["max_us"],
            ph["export_ok"],
            ph["export_failed"],
            ph["dropped"],
            ph["queue_max"],
            f"{res['rss_start_mb']:.0f}→{ph['rss_max_mb']:.0f}",
            "did not finish in 30 s" if res["shutdown_s"] is None else f"{res['shutdown_s']:.2f}",
        )
    base = faults["ok"]["phases"][0]["p50_us"]
    worst = max(faults[m]["phases"][0]["p50_us"] for m in ("down", "hang"))
    t2.verdicts.append(
        verdict(
            "instrumented-path latency unchanged with the sink down/hanging (p50 within 20 %)",
            worst <= base * 1.2,
            f"p50 {base:.0f} µs healthy vs {worst:.0f} µs worst fault",
        )
    )
    rss_growth = max(
        faults[m]["phases"][0]["rss_max_mb"] - faults[m]["rss_start_mb"] for m in ("down", "hang")
    )
    t2.verdicts.append(
        verdict(
            "memory bounded with the sink down/hanging",
            rss_growth < 50,
            f"RSS grew at most {rss_growth:.1f} MB",
        )
    )
    t2.notes.append(
        "Dropped spans are the batch processor's queue overflow (ended - handed to exporter - still queued); "
        "'export failed' are spans the exporter gave up on."
    )
    return [t1, t2]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = bench_arg_parser(__doc__.splitlines()[0])
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", action="store_true", help=hidden)
    parser.add_argument("--endpoint", default="", help=hidden)
    parser.add_argument("--sink-url", default=None, help=hidden)
    parser.add_argument("--phases", default="2000", help=hidden)
    parser.add_argument("--duration", type=float, default=1.0, help=hidden)
    parser.add_argument("--result-out", type=Path, default=None, help=hidden)
    args = parser.parse_args(argv)
    if args.child:
        phases = [None if p == "max" else float(p) for p in args.phases.split(",")]
        write_result(args.result_out, child_run(args.endpoint, args.sink_url, phases, args.duration))
        sys.stdout.flush()
        os._exit(0)  # a hung exporter thread must not keep the child alive
    emit(run(args.quick), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
