"""Item 3: simulated calls per second of one worker process, telemetry on vs OTEL_SDK_DISABLED (text, voice).

Issue 8 item 3 and issue 13 goal 1. Text mode (tables 3 and 3b): the measured process is one "worker":
``setup_telemetry`` as in production (telemetry on: OTLP/HTTP to a loopback sink, ``sales-agent
otlp-sink``, with the span budget of ``SALES_AGENT_TRACE_DETAIL=turn``; off: ``OTEL_SDK_DISABLED=true``),
the runtime ``simulate`` uses (RouterLLM, ResilientCrm, SessionManager) and the scripted calls of
``agent.simulate`` through the real ``SalesCall`` in LiveKit's text mode. The LLM providers (primary +
backup) and the CRM service run as their own processes, started once and shared by every configuration,
so the measured process does only the worker's work. Each (concurrency, telemetry) configuration runs in
its own child process; the configurations alternate within each concurrency level, and each level is
repeated ``--repeats`` times (median; each 'vs off' ratio pairs a repeat with the off run of its own
rotation, then takes the median). Besides off and on: off measured again (the A/A control: two
identical configurations, the method's noise) and on with ``SALES_AGENT_TRACE_DETAIL=debug`` (every
LiveKit span: what the span budget saves). Spans per call are counted by the sink (what arrived, decoded).

Voice mode (table 3c, ``bench/_voice_throughput.py``): the same configurations (on-debug by
``--voice-modes``) over simulated voice calls (real audio at real-time pace, Silero VAD, the STT/TTS
stand-ins over HTTP: item 13's runtime), with CPU seconds per call and the agent's added latency beside
calls/s, because real-time pacing hides the cost in calls/s until the CPU is the limit; ``--voice-profile``
adds a pyinstrument profile on vs off at the largest level (table 3d).

    python -m bench.bench_throughput [--quick] [--mode text|voice|both] [--concurrency 1,4,16,32]
        [--voice-concurrency 3,15,40] [--voice-modes off,off-again,on,on-debug] [--voice-profile]
        [--repeats 2]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.vocabulary.local_providers import BACKUP, PRIMARY
from bench._common import (
    Table,
    bench_arg_parser,
    child_env,
    emit,
    median,
    percentile,
    rss_mb,
    run_child,
    verdict,
    write_result,
)
from local_services.harness import spawn

GOAL_RATIO = 0.95
WARM_CALLS = 2  # each child's warm-up calls before the measured batch (their spans reach the sink too)
_ISO_SLOT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?(?:[+-]\d{2}:\d{2}|Z)?")


# --- child: one worker process running a batch of calls -----------------------------------------


async def _one_call(
    index: int,
    run_id: str,
    tenant_id: str,
    runtime: Any,
    turn_latencies: list[float],
    turn_timeout_s: float = 60.0,
) -> bool:
    """One scripted call (as ``agent.simulate.runner.run_call``), timing every turn.

    ``turn_timeout_s`` bounds each turn (bench_peers runs calls under valgrind, ~50x slower)."""
    import uuid

    from livekit.agents.voice.run_result import FunctionCallOutputEvent

    from agent.call_context import CallContext
    from agent.sales_call import SalesCall
    from agent.simulate.scripts import ScriptState, render_turn, script_for

    script = script_for(index, run_id)
    ctx = CallContext(tenant_id=tenant_id, session_id=uuid.uuid4().hex, call_id=f"bench-{run_id}-{index}")
    call = SalesCall(ctx, runtime.services, greet_on_enter=False)
    state = ScriptState()
    ok = True
    try:
        await call.start()
        for turn in script.turns:
            if call.ending:
                break
            started = time.perf_counter()
            turn_input = render_turn(turn, state, index)
            result = await asyncio.wait_for(call.session.run(user_input=turn_input), turn_timeout_s)
            turn_latencies.append(time.perf_counter() - started)
            for event in result.events:
                if (
                    isinstance(event, FunctionCallOutputEvent)
                    and event.item.name == "check_availability"
                    and not event.item.is_error
                ):
                    state.slots = _ISO_SLOT.findall(event.item.output)
    except Exception:  # counted, not fatal: the figure is throughput of completed calls
        ok = False
    finally:
        await call.aclose()
    return ok


async def _child_async(
    llm_urls: list[str], crm_url: str, calls: int, concurrency: int, profile: bool = False
) -> dict[str, Any]:
    import psutil

    from agent.app_settings import AppSettings
    from agent.llm import LLMSettings
    from agent.runtime import start_runtime
    from agent.tenants import TenantRegistry
    from telemetry.setup import setup_telemetry

    chain = LLMSettings.for_local([f"{u}/v1" for u in llm_urls]).chain
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        settings = AppSettings.from_env(
            llm={"chain": chain},
            crm={"crm_url": crm_url, "calendar_url": None, "outbox_path": str(Path(tmp) / "o.db")},
            sessions={"max_sessions": max(1000, concurrency * 4)},
        )
        telemetry = setup_telemetry(settings.telemetry)
        tenants = TenantRegistry.from_file(settings.tenants.file)
        tenant_ids = tenants.ids()
        runtime = await start_runtime(settings, tenants=tenants)
        try:
            warm: list[float] = []
            await asyncio.gather(
                *(
                    _one_call(i, "warm", tenant_ids[i % len(tenant_ids)], runtime, warm)
                    for i in range(WARM_CALLS)
                )
            )
            latencies: list[float] = []
            limit = asyncio.Semaphore(concurrency)
            proc = psutil.Process()
            rss_peak = rss_mb()

            async def one(i: int) -> bool:
                nonlocal rss_peak
                async with limit:
                    ok = await _one_call(i, "run", tenant_ids[i % len(tenant_ids)], runtime, latencies)
                    rss_peak = max(rss_peak, rss_mb())
                    return ok

            profiler = _start_profiler() if profile else None
            threads0 = _cpu_by_thread(proc)
            cpu0 = proc.cpu_times()
            started = time.perf_counter()
            results = await asyncio.gather(*(one(i) for i in range(calls)))
            wall = time.perf_counter() - started
            cpu1 = proc.cpu_times()
            threads1 = _cpu_by_thread(proc)
            hotspots = _stop_profiler(profiler) if profiler is not None else None
            threads_cpu = {k: v - threads0.get(k, 0.0) for k, v in threads1.items()}
        finally:
            await runtime.aclose()
            if telemetry.enabled:
                telemetry.shutdown()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    completed = sum(results)
    return {
        "telemetry": telemetry.enabled,
        "calls": calls,
        "completed": completed,
        "turns": len(latencies),
        "wall_s": wall,
        "calls_per_s": completed / wall,
        "turns_per_s": len(latencies) / wall,
        "cpu_ms_per_call": cpu_s * 1000 / max(1, completed),
        "p50_turn_ms": percentile(latencies, 50) * 1000,
        "p95_turn_ms": percentile(latencies, 95) * 1000,
        "rss_peak_mb": rss_peak,
        "threads_cpu_s": threads_cpu,
        "hotspots": hotspots,
    }


def _start_profiler() -> Any:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    return profiler


def _stop_profiler(profiler: Any) -> dict[str, list[dict[str, Any]]]:
    from bench._common import aggregate_session

    return aggregate_session(profiler.stop(), top=60)


def _cpu_by_thread(proc: Any) -> dict[str, float]:
    """CPU seconds per thread name since process start (the exporters' background threads by name)."""
    import threading

    names_by_id = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for thread in proc.threads():
        name = names_by_id.get(thread.id, "other (non-Python or finished)")
        name = "MainThread" if name == "MainThread" else name.rstrip("0123456789-_ ")
        out[name] = out.get(name, 0.0) + thread.user_time + thread.system_time
    return out


# --- parent: shared dependencies, alternating configurations ------------------------------------


@contextlib.contextmanager
def llm_stand_ins() -> Iterator[list[str]]:
    """Two local LLM providers (primary, backup), each in its own process; yields their urls."""
    env = child_env()
    with (
        spawn("llm-provider", "--name", PRIMARY, env=env) as primary,
        spawn("llm-provider", "--name", BACKUP, env=env) as backup,
    ):
        yield [primary.url, backup.url]


@contextlib.contextmanager
def crm_stand_in() -> Iterator[str]:
    """The CRM service on a fresh database, in its own process; yields its url."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-crm-") as tmp,
        spawn("crm-service", "--db", f"{tmp}/crm.db", env=child_env()) as crm,
    ):
        yield crm.url


@contextlib.contextmanager
def dependencies() -> Iterator[tuple[list[str], str]]:
    """Two local LLM providers and the CRM service, each in its own process; yields (llm urls, crm url)."""
    with llm_stand_ins() as llm_urls, crm_stand_in() as crm_url:
        yield llm_urls, crm_url


# Telemetry modes measured side by side: off, off again as the A/A control (how far two identical
# configurations land apart in one run is this method's noise, the yardstick for any on/off
# difference), production ("on": OTLP to the loopback sink, the default span budget) and production
# with every span (SALES_AGENT_TRACE_DETAIL=debug: what the budget saves).
MODES = {
    "off": "off (OTEL_SDK_DISABLED)",
    "off-again": "off again (A/A control)",
    "on": "on (OTLP, trace detail turn)",
    "on-debug": "on, trace detail debug (every span)",
}


def mode_env(mode: str, sink_url: str, **extra: str) -> dict[str, str]:
    """The environment of a measured worker in telemetry ``mode`` (a key of ``MODES``)."""
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink_url, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    if mode.startswith("off"):
        return child_env(OTEL_SDK_DISABLED="true", **extra)
    # the shipped configuration, with its default trace detail or every span
    detail = "debug" if mode == "on-debug" else "turn"
    return child_env(**otlp, LIVEKIT_TELEMETRY_ALLOW_PII=None, SALES_AGENT_TRACE_DETAIL=detail, **extra)


def _run_config(
    llm_urls: list[str], crm_url: str, sink_url: str, calls: int, conc: int, mode: str, profile: bool = False
) -> dict[str, Any]:
    env = mode_env(mode, sink_url)
    args = ["--child", "--calls", str(calls), "--concurrency", str(conc), "--crm-url", crm_url]
    for url in llm_urls:
        args += ["--llm-url", url]
    if profile:
        args.append("--profile")
    return run_child("bench.bench_throughput", args, env=env, timeout_s=900)


def sink_admin(sink_url: str, method: str, path: str) -> dict[str, Any]:
    """The OTLP sink's admin API (reset its counters / read them)."""
    import httpx

    response = httpx.request(method, f"{sink_url}{path}", timeout=10.0)
    response.raise_for_status()
    return dict(response.json())


def calls_per_config(conc: int, quick: bool) -> int:
    """Calls one configuration runs at concurrency ``conc``.

    At least 48 (quick: a handful): a full garbage collection lands about every twelfth call at 30-75 ms
    (measured with ``gc.callbacks``), so a 12-call run (the size until 2026-12-02) caught none, one or two,
    and its CPU per call moved by up to ~2.5 % with that alone.
    """
    return max(2, conc * 2) if quick else max(48, conc * 3)


def paired_ratios(runs: list[dict[str, Any]], offs: list[dict[str, Any]]) -> tuple[float, float]:
    """(calls/s, CPU per call) of ``runs`` against off, each repeat against the off run of the same
    rotation (minutes apart at most), then the median over repeats: the host's speed drifts by 10-20 %
    over a run, which a ratio of two medians taken across the whole run carries into the figure."""
    rates = [run["calls_per_s"] / off["calls_per_s"] for run, off in zip(runs, offs, strict=True)]
    cpus = [off["cpu_ms_per_call"] / run["cpu_ms_per_call"] for run, off in zip(runs, offs, strict=True)]
    return median(rates), median(cpus)


def run(quick: bool, levels: list[int] | None = None, repeats: int | None = None) -> list[Table]:
    levels = levels or ([1, 4] if quick else [1, 4, 16, 32])
    repeats = repeats or (1 if quick else 2)
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    with dependencies() as (llm_urls, crm_url), spawn("otlp-sink", env=child_env()) as sink:
        sink_url = sink.url
        for rep in range(repeats):
            for conc in levels:
                calls = calls_per_config(conc, quick)
                order = list(MODES)
                shift = (rep + levels.index(conc)) % len(order)  # rotate which mode goes first
                for mode in order[shift:] + order[:shift]:
                    sink_admin(sink_url, "POST", "/admin/reset")
                    result = _run_config(llm_urls, crm_url, sink_url, calls, conc, mode)
                    # Every call's spans, the 2 warm-up calls' included (the child flushes before exit).
                    spans = sink_admin(sink_url, "GET", "/admin/stats")["spans"]
                    result["spans_per_call"] = spans / (calls + WARM_CALLS)
                    results.setdefault((conc, mode), []).append(result)
        prof_conc = min(16, max(levels))
        prof_calls = calls_per_config(prof_conc, quick)
        profiled = {
            on: _run_config(
                llm_urls, crm_url, sink_url, prof_calls, prof_conc, "on" if on else "off", profile=True
            )
            for on in (True, False)
        }
    table = Table(
        "3. Throughput of one worker process: simulated text calls (median of repeats)",
        [
            "concurrency",
            "telemetry",
            "calls/s",
            "turns/s",
            "p50 turn ms",
            "p95 turn ms",
            "CPU ms/call",
            "peak RSS MB",
            "spans/call",
            "vs off: calls/s",
            "vs off: CPU/call",
        ],
    )
    worst: dict[str, float] = {}
    rates: dict[tuple[int, str], float] = {}
    for conc in levels:
        offs = results[(conc, "off")]
        for mode, label in MODES.items():
            runs = results[(conc, mode)]
            m = {k: median([r[k] for r in runs]) for k in runs[0] if isinstance(runs[0][k], int | float)}
            ratio_rate = ratio_cpu = ""
            if mode != "off":
                rate, cpu = paired_ratios(runs, offs)
                ratio_rate, ratio_cpu = f"{rate:.2f}x", f"{cpu:.2f}x"
                worst[mode] = min(worst.get(mode, rate), rate)
                rates[(conc, mode)] = rate
            table.add(
                conc,
                label,
                m["calls_per_s"],
                m["turns_per_s"],
                m["p50_turn_ms"],
                m["p95_turn_ms"],
                m["cpu_ms_per_call"],
                m["rss_peak_mb"],
                m["spans_per_call"] if mode.startswith("on") else "",
                ratio_rate,
                ratio_cpu,
            )
            failed = sum(r["calls"] - r["completed"] for r in runs)
            if failed:
                table.notes.append(f"concurrency {conc}, telemetry {label}: {failed} calls failed")
    if "on" in worst:
        by_level = ", ".join(f"{rates[(conc, 'on')]:.2f}x at {conc}" for conc in levels)
        table.verdicts.append(
            verdict(
                "telemetry on >= 0.95x off (calls/s), text mode",
                worst["on"] >= GOAL_RATIO,
                f"worst level {worst['on']:.2f}x ({by_level})",
            )
        )
    if "off-again" in worst:
        spread = max(abs(1.0 - rates[(conc, "off-again")]) for conc in levels)
        table.notes.append(
            f"A/A control: off measured again lands at {worst['off-again']:.2f}x of off at its worst level; "
            f"two identical configurations differ by up to {spread:.2f} in 'vs off: calls/s' at one level: "
            "differences smaller than that are this method's noise."
        )
    if "on-debug" in worst:
        table.notes.append(
            f"Every span (SALES_AGENT_TRACE_DETAIL=debug): worst level {worst['on-debug']:.2f}x of off; "
            "the span budget's saving is the difference to the 'on' rows."
        )
    table.notes.append(
        "vs off: CPU/call = CPU ms per call off / on (< 1: telemetry costs CPU): less sensitive to other "
        "processes' load than calls/s on a shared machine."
    )
    table.notes.append(
        "LLM providers (no token delay) and the CRM run in separate processes on the same cores; "
        "a turn is one "
        "`session.run(user_input)` incl. tool calls and the LLM's follow-up."
    )
    title = (
        f"3b. Where telemetry's extra time goes: worker main thread at concurrency {prof_conc}, "
        "pyinstrument self time per call by package"
    )
    return [table, profile_table(title, profiled)]


def profile_table(title: str, profiled: dict[bool, dict[str, Any]], idle: tuple[str, ...] = ()) -> Table:
    """Telemetry on (``profiled[True]``) vs off: pyinstrument self time per completed call by package,
    largest extra first, and the functions with the most extra. ``idle``: functions that are the event
    loop waiting (``epoll.poll``), left out of their package (builtins) and of the functions."""
    prof = Table(title, ["package", "ms/call on", "ms/call off", "extra ms/call"])
    done = {on: max(1, profiled[on]["completed"]) for on in (True, False)}

    def is_idle(name: str) -> bool:
        return bool(idle) and name.startswith(idle)

    def per_call(on: bool) -> tuple[dict[str, float], dict[str, float]]:
        hotspots = profiled[on]["hotspots"]
        scale = 1000 / done[on]  # seconds over the batch -> ms per call
        functions = {f["name"]: f["self_s"] * scale for f in hotspots["functions"] if not is_idle(f["name"])}
        idle_s = sum(f["self_s"] for f in hotspots["functions"] if is_idle(f["name"]))
        packages = {
            p["name"]: (p["self_s"] - (idle_s if p["name"] == "builtins (C calls)" else 0.0)) * scale
            for p in hotspots["packages"]
        }
        return packages, functions

    (pkgs_on, fn_on), (pkgs_off, fn_off) = per_call(True), per_call(False)
    deltas = sorted(
        ((name, pkgs_on.get(name, 0.0), pkgs_off.get(name, 0.0)) for name in set(pkgs_on) | set(pkgs_off)),
        key=lambda row: row[1] - row[2],
        reverse=True,
    )
    for name, on_ms, off_ms in deltas[:12]:
        prof.add(name, on_ms, off_ms, on_ms - off_ms)
    prof.add(
        "total (sampled)",
        sum(pkgs_on.values()),
        sum(pkgs_off.values()),
        sum(pkgs_on.values()) - sum(pkgs_off.values()),
    )
    fn_deltas = sorted(((n, fn_on[n] - fn_off.get(n, 0.0)) for n in fn_on), key=lambda kv: -kv[1])[:8]
    prof.notes.append(
        "Functions with the most extra self time (ms/call): "
        + "; ".join(f"{name} +{delta:.1f}" for name, delta in fn_deltas)
    )
    threads = profiled[True].get("threads_cpu_s", {})
    prof.notes.append(
        "pyinstrument samples the main thread only; CPU seconds by thread during the profiled batch "
        "(telemetry on): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(threads.items(), key=lambda kv: -kv[1]))
    )
    return prof


def main(argv: list[str] | None = None) -> int:
    import argparse

    from bench import _voice_throughput as voice

    parser = bench_arg_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--mode", choices=("text", "voice", "both"), default="both", help="which calls (default both)"
    )
    parser.add_argument(
        "--concurrency", default=None, help="text: comma-separated levels (default 1,4,16,32)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per configuration (default 2)")
    parser.add_argument(
        "--voice-concurrency", default=None, help="voice: comma-separated levels (default 3,15,40)"
    )
    parser.add_argument(
        "--voice-modes",
        default=None,
        help="voice: configurations, off first (default off,off-again,on; on-debug: every span)",
    )
    parser.add_argument(
        "--voice-profile", action="store_true", help="voice: also profile on vs off at the largest level"
    )
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", action="store_true", help=hidden)
    parser.add_argument("--calls", type=int, default=4, help=hidden)
    parser.add_argument("--llm-url", action="append", default=[], help=hidden)
    parser.add_argument("--crm-url", default="", help=hidden)
    parser.add_argument("--stt-url", action="append", default=[], help=hidden)
    parser.add_argument("--tts-url", action="append", default=[], help=hidden)
    parser.add_argument("--no-warm-up", action="store_true", help=hidden)
    parser.add_argument("--profile", action="store_true", help=hidden)
    parser.add_argument("--result-out", type=Path, default=None, help=hidden)
    args = parser.parse_args(argv)
    if args.child:
        if args.mode == "voice":
            voice.child_main(args)
        else:
            conc = int(args.concurrency or 1)
            result = asyncio.run(_child_async(args.llm_url, args.crm_url, args.calls, conc, args.profile))
            write_result(args.result_out, result)
        sys.stdout.flush()
        os._exit(0)  # don't wait on exporter threads
    levels = _levels(parser, "--concurrency", args.concurrency)
    voice_levels = _levels(parser, "--voice-concurrency", args.voice_concurrency)
    voice_modes = args.voice_modes.split(",") if args.voice_modes else None
    if voice_modes is not None and (voice_modes[0] != "off" or not set(voice_modes) <= set(MODES)):
        parser.error(
            f"--voice-modes {args.voice_modes!r}: off first, then any of {', '.join(list(MODES)[1:])}"
        )
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats: at least 1")
    tables: list[Table] = []
    if args.mode in ("text", "both"):
        tables += run(args.quick, levels, args.repeats)
    if args.mode in ("voice", "both"):
        tables += voice.run(args.quick, voice_levels, args.repeats, voice_modes, args.voice_profile)
    emit(tables, args.json_out)
    return 0


def _levels(parser: Any, flag: str, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        levels = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        parser.error(f"{flag} {value!r}: expected comma-separated whole numbers, e.g. 1,4,16")
    if not levels or min(levels) < 1:
        parser.error(f"{flag} {value!r}: every level must be at least 1")
    return levels


if __name__ == "__main__":
    sys.exit(main())
