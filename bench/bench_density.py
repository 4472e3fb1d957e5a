"""Item 13: voice density. How many concurrent simulated voice calls one agent process carries on this
machine while the agent's own added latency stays at or under 100 ms at p95, and what a call costs in RSS.

**Method.** The stand-ins run as their own processes, started once and shared by every level (so their
CPU is not the agent's): two LLM providers, the CRM service, two STT and two TTS providers and the
OTLP sink. Each concurrency level runs in a fresh child process, the "agent": telemetry as shipped
(OTLP/HTTP to the sink), the runtime with speech chains (``bench_voice.voice_runtime``, one shared
Silero model, a ``CallVAD`` per call) and N scripted voice calls of ``simulate --mode voice``
(``voice_runner.run_voice_call``: espeak-ng caller audio at real-time pace, the rotation a sale, a
barge-in, a long silence), all N at once, their starts spread over the first ``STAGGER_S`` seconds.
Levels step up (``LEVELS``) until the p95 added latency passes 100 ms, the peak RSS passes 2 GB, a call
fails, or the time budget is spent.

**Added latency, per answered turn** (the turn recorder's figures, ``agent/turn_recorder.py``)::

    added = wait - designed_silence - provider_time

- ``wait``: the recorder's caller wait, livekit's end of speech (``stopped_speaking_at``) -> the reply's
  first audio frame played.
- ``designed_silence``: the silence the turn detection waits for by design before a turn can end:
  max(the silence Silero counts before it reports the end of speech, the session's minimum endpointing
  delay), read from the objects. Silero counts silence in whole 32 ms windows, so its default
  ``min_silence_duration`` of 0.55 s is reported after 18 windows, 0.576 s (``vad_counted_silence_s``).
- ``provider_time``: what the providers took, measured inside the stand-ins (``FirstByteTimer``):
  the turn's own LLM requests from received to their last byte, the part of them inside the turn's
  wait (``llm_time_per_turn``: joined to the turn by the call's conversation and the clock), and this
  level's mean of one STT request to its answer and one TTS request to its first audio. The LLM's
  whole stream is the provider's because the agent needs all of it before the caller hears anything:
  every scripted turn streams tool calls (acted on at the stream's end: LiteLLM holds the finish
  chunk until ``[DONE]``), then a one-sentence reply (spoken once the sentence is complete, at the
  stream's end). Per turn, not a mean: replies differ in length, and so do their streams' times. The
  CRM's tool time is not subtracted: it counts as the agent's (conservative).

**The LLM stand-ins stream at a model's pace** (``LLM_TOKEN_DELAY_S`` between content chunks, one word
each; ``--llm-token-delay 0`` sends each stream in one burst, as before 2026-12-02). In a burst the
agent's per-chunk work is serial time after the provider is done, which a real model's decoding gaps
would hide; paced, the caller waits for the model and the agent's share is what is left after its
``[DONE]``.

Everything else is the agent: the VAD falling behind, the STT request's client side, the event loop's
queueing between stages, LiteLLM's stream handling, tool dispatch, the TTS client and the first frame.
The recorder's wait starts where livekit places the end of speech, computed when the VAD reports it; a
VAD running late shifts that start too, so the table also shows the wait on the caller's own clock
(``heard``: the line's last spoken sample -> the agent's first frame; the clips are trimmed of
silence, and the microphone delivers each 50 ms frame once spoken, so this includes the room input's
framing, as a real caller's wait does).

**One process per core** (``--processes 2``): each level's calls are shared out over that many agent
processes, as LiveKit's dispatch shares jobs out over the workers of a host (its load balancing is not
what is measured: the shares are equal). The processes finish their warm-up calls, wait for each other
and start their batches together; their turns are pooled into one level, CPU % is summed (of one core),
RSS is the sum of their peaks. The goal is stated per process and per machine; the default (one
process) is the figure the goal table reports.

    python -m bench.bench_density [--quick] [--levels 1,5,10] [--processes 2] [--llm-token-delay S]
                                  [--json-out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.vocabulary.local_providers import BACKUP, PRIMARY
from bench._common import Table, bench_arg_parser, child_env, percentile, run_child, verdict, write_result
from local_services.harness import admin_stats, spawn

GOAL_ADDED_P95_S = 0.100
GOAL_CALLS = 50
RSS_LIMIT_MB = 2048.0
LEVELS = (1, 5, 10, 20, 35, 50, 70, 100)
QUICK_LEVELS = (1,)
SATURATED_P50_S = 1.0  # the ladder stops after a level whose added p50 passes this (or RSS / failures)
MIN_CALLS = 3  # a level runs at least this many calls (one after another at level 1): enough turns
# Agent process k's calls are indexed from k * INDEX_STRIDE: a multiple of 24 (the scripts' rotation of
# 3 and the prospects' cycles of 8, 6 and 4), so every process runs the same mix of callers.
INDEX_STRIDE = 24 * 50
STAGGER_S = 5.0  # call starts spread over this many seconds (real calls do not start in lockstep)
PACE_S_PER_CHAR = 0.065  # the TTS stand-in's seconds of audio per character (a real voice)
LLM_TOKEN_DELAY_S = 0.02  # between the LLM stand-in's word chunks: ~50 words/s, a hosted model's pace
BUDGET_S = 1500.0  # no new level starts after this long (each level is bounded by the child timeout too)
TURN_TIMEOUT_S = 30.0
CALL_BOUND_S = 240.0  # a whole call (a few turns of real-time audio, ~25 s unloaded) within this


# --- child: the agent process, N concurrent voice calls -------------------------------------------


# Silero scores 512-sample windows at 16 kHz (256 at 8 kHz): 32 ms either way
# (livekit/plugins/silero/onnx_model.py), and counts silence in whole windows.
SILERO_WINDOW_S = 0.032


def vad_counted_silence_s(min_silence_s: float, window_s: float = SILERO_WINDOW_S) -> float:
    """The silence Silero has counted when it reports END_OF_SPEECH: ``min_silence_duration`` rounded up
    to whole windows (its default 0.55 s is 18 windows, 0.576 s). livekit then places the end of speech
    that far back (``time.time() - silence_duration - inference_duration``), so the caller's wait starts
    there and this much of it is the VAD's design, not the agent's work."""
    windows = math.ceil(round(min_silence_s / window_s, 6))
    return windows * window_s


def _designed_silence_s(call: Any) -> float:
    """From a running call's session: max(the silence the VAD counts before END_OF_SPEECH, the minimum
    endpointing delay). A turn cannot end sooner than this after the last word, by design."""
    vad_silence = getattr(call.session.vad, "min_silence_duration", None) or 0.0
    min_delay = call.session.options.endpointing.get("min_delay") or 0.0
    return max(vad_counted_silence_s(float(vad_silence)), float(min_delay))


@dataclass
class VoiceAgent:
    """The agent process's voice runtime and what a scripted call needs (``voice_agent``)."""

    runtime: Any
    http: Any
    stt_admin: list[str]
    clips: Path
    telemetry: Any
    designed: list[float] = field(default_factory=list)  # designed silence seen by each started call

    async def call(
        self, index: int, run_id: str, *, stagger_over: int = 0, stagger_index: int | None = None
    ) -> Any:
        """One scripted voice call; the batch's first ``stagger_over`` calls (``stagger_index``, the
        call's place in the batch: ``index`` unless the batch's indexes start elsewhere) start spread
        over STAGGER_S."""
        from agent.simulate.runner import CallResult
        from agent.simulate.voice_runner import run_voice_call

        place = index if stagger_index is None else stagger_index
        if place < stagger_over:  # the first wave's starts spread; later calls replace finished ones
            await asyncio.sleep(STAGGER_S * place / stagger_over)
        call = run_voice_call(
            index, "acme", run_id=run_id, runtime=self.runtime, http=self.http,
            stt_admin_urls=self.stt_admin, clip_cache=self.clips, turn_timeout_s=TURN_TIMEOUT_S,
            on_started=lambda c: self.designed.append(_designed_silence_s(c)),
        )  # fmt: skip
        try:
            # Each turn is bounded, closing the call is not: a call that never ends (seen once, under
            # the profiler at 40 calls) is a failed call in the table, not a lost run.
            return await asyncio.wait_for(call, CALL_BOUND_S)
        except TimeoutError:
            return CallResult(
                index=index, script="?", tenant_id="acme", call_id=f"sim-{run_id}-{index}", mode="voice",
                duration_s=CALL_BOUND_S, error=f"the call did not end within {CALL_BOUND_S:.0f} s",
            )  # fmt: skip

    async def warm_up(self) -> None:
        """One call (connections open, caches filled) before measuring; its telemetry flushed."""
        await self.call(0, "warm")
        if self.telemetry.enabled:
            self.telemetry.force_flush()


@contextlib.asynccontextmanager
async def voice_agent(urls: dict[str, list[str]]) -> AsyncIterator[VoiceAgent]:
    """Telemetry from the environment (as shipped, or ``OTEL_SDK_DISABLED``) and the voice runtime
    over the stand-ins at ``urls``; telemetry is shut down on exit."""
    import httpx

    from bench.bench_voice import voice_runtime
    from telemetry import TelemetrySettings, setup_telemetry

    telemetry = setup_telemetry(TelemetrySettings())
    with tempfile.TemporaryDirectory(prefix="bench-density-") as tmp:
        workdir = Path(tmp)
        clips = Path(os.environ.get("SALES_AGENT_VOICE_CACHE", workdir / "clips"))
        try:
            async with (
                voice_runtime(workdir, PACE_S_PER_CHAR, urls=urls, telemetry=telemetry) as (stack, runtime),
                httpx.AsyncClient(timeout=10.0) as http,
            ):
                yield VoiceAgent(runtime, http, [ep.admin_url for ep in stack.stt], clips, telemetry)
        finally:
            if telemetry.enabled:
                telemetry.shutdown()


async def measure_batch(
    agent: VoiceAgent,
    calls: int,
    total: int,
    *,
    run_id: str = "run",
    profile: bool = False,
    first_index: int = 0,
) -> dict[str, Any]:
    """``total`` voice calls, ``calls`` at a time: wall time, the process's CPU (all threads, and by
    thread), RSS, and every call's turns (with the call's ``call_key``, see ``llm_time_per_turn``).
    With telemetry on, what the batch left in the exporters' queues is flushed before the CPU is read
    (its export is the batch's cost), after the wall time. Call indexes start at ``first_index``."""
    import psutil

    from agent.simulate.runner import run_batch
    from agent.simulate.voice_scripts import voice_script_for
    from bench.bench_throughput import _cpu_by_thread, _start_profiler, _stop_profiler

    proc = psutil.Process()
    rss_before = proc.memory_info().rss / 2**20
    rss_peak = rss_before
    stop = asyncio.Event()

    async def sample_rss() -> None:
        nonlocal rss_peak
        while not stop.is_set():
            rss_peak = max(rss_peak, proc.memory_info().rss / 2**20)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    sampler = asyncio.create_task(sample_rss())
    profiler = _start_profiler() if profile else None
    threads0 = _cpu_by_thread(proc)
    cpu0 = proc.cpu_times()
    started = time.perf_counter()
    results = await run_batch(
        calls=total, concurrency=calls, tenants=["acme"],
        run_one=lambda index, _tenant: agent.call(
            first_index + index, run_id, stagger_over=calls, stagger_index=index
        ),
    )  # fmt: skip
    wall = time.perf_counter() - started
    if agent.telemetry.enabled:
        agent.telemetry.force_flush()
    cpu1 = proc.cpu_times()
    threads1 = _cpu_by_thread(proc)
    hotspots = _stop_profiler(profiler) if profiler is not None else None
    stop.set()
    await sampler
    return {
        "calls": calls,
        "total": total,
        "completed": sum(1 for r in results if not r.failed),
        "failed": sum(1 for r in results if r.failed),
        "turns": [
            {
                "wait_s": t.wait_s,
                "stages": t.stages,
                "ended_at": t.ended_at,
                "call_key": list(voice_script_for(r.index, run_id).lines[0].transcript_tools),
            }
            for r in results
            for t in r.recorded_turns
        ],
        "heard_waits_s": [w for r in results for w in r.heard_waits_s],
        "designed_silence_s": agent.designed[0],
        "wall_s": wall,
        "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "call_s": sum(r.duration_s for r in results),
        "rss_before_mb": rss_before,
        "rss_peak_mb": max(rss_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "threads_cpu_s": {k: v - threads0.get(k, 0.0) for k, v in threads1.items()},
        "hotspots": hotspots,
    }


BARRIER_TIMEOUT_S = 300.0


def wait_for_parties(barrier: Path, parties: int, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
    """Mark this process ready in ``barrier`` (a folder) and wait until ``parties`` processes are."""
    (barrier / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout_s
    while sum(1 for _ in barrier.glob("ready-*")) < parties:
        if time.monotonic() > deadline:  # a sibling that died: the parent reports its error
            raise TimeoutError(f"{parties} agent processes were not ready within {timeout_s:.0f} s")
        time.sleep(0.02)


async def _child_async(
    urls: dict[str, list[str]],
    calls: int,
    total: int,
    profile: bool,
    warm_up: bool,
    barrier: tuple[Path, int] | None = None,
    run_id: str = "run",
    first_index: int = 0,
) -> dict[str, Any]:
    """``total`` voice calls, ``calls`` at a time (the level); figures of the calls after the warm-up.
    With ``barrier`` (folder, parties) the batch starts once every agent process of the level is ready."""
    async with voice_agent(urls) as agent:
        if warm_up:
            await agent.warm_up()
        if barrier is not None:
            await asyncio.to_thread(wait_for_parties, *barrier)
        return await measure_batch(
            agent, calls, total, run_id=run_id, profile=profile, first_index=first_index
        )


def child_main(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)
    urls = {kind: getattr(args, f"{kind}_url") for kind in ("llm", "crm", "stt", "tts")}
    barrier = (args.barrier, args.parties) if args.barrier is not None else None
    write_result(
        args.result_out,
        asyncio.run(
            _child_async(
                urls,
                args.calls,
                args.total,
                args.profile,
                not args.no_warm_up,
                barrier,
                args.run_id,
                args.first_index,
            )
        ),
    )
    return 0


# --- parent: stand-ins in their own processes, stepping the level ---------------------------------


@contextlib.contextmanager
def stand_ins(llm_token_delay_s: float = LLM_TOKEN_DELAY_S) -> Iterator[tuple[dict[str, list[str]], str]]:
    """Every dependency of a voice call in its own process; yields (urls by kind, OTLP sink url)."""
    env = child_env()
    pace = ("--seconds-per-char", str(PACE_S_PER_CHAR))
    tokens = ("--token-delay", str(llm_token_delay_s))
    with (
        tempfile.TemporaryDirectory(prefix="bench-density-crm-") as tmp,
        spawn("llm-provider", "--name", PRIMARY, *tokens, env=env) as llm1,
        spawn("llm-provider", "--name", BACKUP, *tokens, env=env) as llm2,
        spawn("crm-service", "--db", f"{tmp}/crm.db", env=env) as crm,
        spawn("stt-provider", "--name", PRIMARY, env=env) as stt1,
        spawn("stt-provider", "--name", BACKUP, env=env) as stt2,
        spawn("tts-provider", "--name", PRIMARY, *pace, env=env) as tts1,
        spawn("tts-provider", "--name", BACKUP, *pace, env=env) as tts2,
        spawn("otlp-sink", env=env) as sink,
    ):
        yield (
            {
                "llm": [llm1.url, llm2.url],
                "crm": [crm.url],
                "stt": [stt1.url, stt2.url],
                "tts": [tts1.url, tts2.url],
            },
            sink.url,
        )


def first_bytes(urls: dict[str, list[str]]) -> dict[str, tuple[int, float, float]]:
    """(requests, seconds to first byte in total, seconds to last byte in total) per provider kind,
    summed over its stand-ins."""
    out = {}
    for kind in ("llm", "stt", "tts", "crm"):
        stats = [admin_stats(url) for url in urls[kind]]
        out[kind] = (
            sum(s["first_byte_count"] for s in stats),
            sum(s["first_byte_s_total"] for s in stats),
            sum(s["last_byte_s_total"] for s in stats),
        )
    return out


def prefill_clips(cache_dir: Path, calls: int) -> None:
    """Every line the first ``calls`` scripted callers speak, made now into ``cache_dir`` (the agent
    children's ``SALES_AGENT_VOICE_CACHE``): a line not in the cache is made by espeak-ng inside the
    call, blocking the agent's event loop in the middle of a measured batch."""
    from agent.simulate.caller_audio import make_clip
    from agent.simulate.voice_scripts import voice_script_for

    for index in range(calls):
        for line in voice_script_for(index, "prefill").lines:  # the spoken words do not name the run
            make_clip(line.spoken, cache_dir=cache_dir)


def shares(calls: int, processes: int) -> list[int]:
    """``calls`` shared out over ``processes`` as evenly as whole calls allow (no process gets none)."""
    processes = max(1, min(processes, calls))
    return [calls // processes + (1 if i < calls % processes else 0) for i in range(processes)]


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's figures from its agent processes: turns pooled, CPU and calls summed, RSS the sum
    of the processes' peaks (they need not peak together: an upper bound), wall time the longest."""
    if len(results) == 1:
        return results[0]
    threads: dict[str, float] = {}
    for result in results:
        for name, seconds in result["threads_cpu_s"].items():
            threads[name] = threads.get(name, 0.0) + seconds
    return {
        **{key: sum(r[key] for r in results) for key in ("calls", "total", "completed", "failed")},
        **{key: sum(r[key] for r in results) for key in ("cpu_s", "call_s", "rss_before_mb", "rss_peak_mb")},
        "turns": [turn for r in results for turn in r["turns"]],
        "heard_waits_s": [wait for r in results for wait in r["heard_waits_s"]],
        "designed_silence_s": results[0]["designed_silence_s"],
        "wall_s": max(r["wall_s"] for r in results),
        "threads_cpu_s": threads,
        "hotspots": None,
        "processes": len(results),
    }


def _run_level(
    urls: dict[str, list[str]],
    sink_url: str,
    calls: int,
    *,
    profile: bool,
    quick: bool,
    clips: Path,
    processes: int = 1,
) -> dict[str, Any]:
    env = child_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=sink_url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        SALES_AGENT_VOICE_CACHE=str(clips),
    )
    parts = shares(calls, processes)
    common: list[str] = []
    for kind, values in urls.items():
        for url in values:
            common += [f"--{kind}-url", url]
    if profile:
        common.append("--profile")
    if quick:
        common.append("--no-warm-up")
    before = first_bytes(urls)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-density-barrier-") as barrier:
        if len(parts) > 1:
            common += ["--barrier", barrier, "--parties", str(len(parts))]

        def one(part: tuple[int, int]) -> dict[str, Any]:
            process, share = part
            total = share if quick else max(share, MIN_CALLS)
            # Each process its own call ids: the stand-ins and the CRM key their scripts and writes by them;
            # and its own call indexes, so every call's caller (and so its LLM conversation) is its own.
            args = ["--child", "--calls", str(share), "--total", str(total), "--run-id", f"p{process}",
                    "--first-index", str(process * INDEX_STRIDE)]  # fmt: skip
            args += common
            return run_child("bench.bench_density", args, env=env, timeout_s=600 + 6 * total)

        with ThreadPoolExecutor(max_workers=len(parts)) as pool:  # run_child blocks: one thread each
            result = merge_results(list(pool.map(one, enumerate(parts))))
    add_provider_times(result, before, first_bytes(urls))
    records = [r for url in urls["llm"] for r in admin_stats(url, route="requests")["requests"]]
    result["llm_unmatched_turns"] = llm_time_per_turn(result["turns"], records)
    if result["turns"]:  # 13b's stand-in column: the turns' own LLM time, on average
        result["provider_s"]["llm"] = sum(t["llm_provider_s"] for t in result["turns"]) / len(result["turns"])
    result["load"] = (load_before, os.getloadavg()[0])
    return result


def llm_time_per_turn(turns: list[dict[str, Any]], records: list[dict[str, Any]]) -> int:
    """Each turn's LLM provider time, into its ``llm_provider_s``: the part of every LLM request of
    the turn's call that fell inside the turn's wait (from the caller's end of turn to the reply's
    first audio). A request is the call's when its label (the conversation's first user message)
    holds every ``/tool`` line of the call's first line (``call_key``: unique per call, the prospect's
    e-mail or phone). Per turn, not a level's mean: replies differ in length, and at a model's pace
    their streams' times differ by more than the goal's margin. Returns how many turns matched no
    request (their LLM time is left out of the subtraction: counted as the agent's)."""
    by_call: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    keys = {tuple(t["call_key"]) for t in turns if t.get("call_key")}
    for record in records:
        for key in keys:
            if all(line in record["label"] for line in key):
                by_call.setdefault(key, []).append(record)
    unmatched = 0
    for turn in turns:
        start, end = turn["ended_at"], turn["ended_at"] + turn["wait_s"]
        overlap = 0.0
        for record in by_call.get(tuple(turn.get("call_key") or ()), ()):
            served = (record["start"], record["start"] + record["last_byte_s"])
            overlap += max(0.0, min(end, served[1]) - max(start, served[0]))
        turn["llm_provider_s"] = overlap
        unmatched += overlap == 0.0
    return unmatched


def add_provider_times(
    result: dict[str, Any],
    before: dict[str, tuple[int, float, float]],
    after: dict[str, tuple[int, float, float]],
) -> None:
    """The providers' own time per turn between two ``first_bytes`` readings, into ``result``:
    ``provider_s`` (per kind, what ``summarise`` subtracts: the LLM's streams to their last byte, the
    STT's answer and the TTS's first audio) and ``crm_mean_s`` (shown only)."""
    turns = max(1, len(result["turns"]))
    provider = {}
    for kind in ("llm", "stt", "tts"):
        count = after[kind][0] - before[kind][0]
        field_index = 2 if kind == "llm" else 1  # the whole stream for the LLM (module docstring)
        seconds = after[kind][field_index] - before[kind][field_index]
        mean = seconds / count if count else 0.0
        per_turn = count / turns if kind == "llm" else 1.0  # a turn with tool calls streams twice
        provider[kind] = mean * per_turn
    result["provider_s"] = provider
    crm_count = after["crm"][0] - before["crm"][0]
    # Shown, not subtracted: CRM writes also go out from the outbox, off any turn's path.
    result["crm_mean_s"] = (after["crm"][1] - before["crm"][1]) / crm_count if crm_count else 0.0


def summarise(result: dict[str, Any]) -> dict[str, float]:
    """A level's figures. A turn's LLM provider time is its own (``llm_time_per_turn``) when known,
    else the level's mean; STT and TTS are the level's means (one request each per turn)."""
    provider = sum(result["provider_s"].values())
    speech = provider - result["provider_s"]["llm"]
    waits = [t["wait_s"] for t in result["turns"]]
    added = [
        t["wait_s"] - result["designed_silence_s"]
        - (speech + t["llm_provider_s"] if "llm_provider_s" in t else provider)
        for t in result["turns"]
    ]  # fmt: skip
    calls = result["calls"]
    return {
        "turns": len(waits),
        "wait_p50": percentile(waits, 50),
        "wait_p95": percentile(waits, 95),
        "heard_p95": percentile(result["heard_waits_s"], 95),
        "added_p50": percentile(added, 50),
        "added_p95": percentile(added, 95),
        "rss_peak": result["rss_peak_mb"],
        "rss_per_call": (result["rss_peak_mb"] - result["rss_before_mb"]) / calls,
        "cpu_pct": 100 * result["cpu_s"] / result["wall_s"],
        "cpu_ms_per_call_s": 1000 * result["cpu_s"] / max(result["call_s"], 1e-9),
        "provider_ms": 1000 * provider,
    }


# bench_throughput._cpu_by_thread's name for the batched VAD's thread (silero-batch_0, digits dropped).
VAD_THREAD = "silero-batch"


def _stage_table(levels: list[tuple[int, dict[str, Any]]]) -> Table:
    from bench.bench_voice import STAGES

    table = Table(
        "13b. What grows with concurrency: the turn recorder's stages (p95, ms) and CPU by thread",
        ["calls", *(f"{s} p95" for s in STAGES), "stand-ins STT / LLM / TTS", "CRM per request",
         "event loop CPU s", "VAD model thread CPU s", "other threads CPU s"],
    )  # fmt: skip
    for calls, result in levels:
        turns = result["turns"]
        stages = [percentile([t["stages"][s] for t in turns if s in t["stages"]], 95) for s in STAGES]
        threads = result["threads_cpu_s"]
        loop_s = threads.get("MainThread", 0.0)
        vad_s = threads.get(VAD_THREAD, 0.0)
        other = sum(threads.values()) - loop_s - vad_s
        table.add(calls, *(f"{1000 * v:.0f}" for v in stages),
                  " / ".join(f"{1000 * result['provider_s'][k]:.1f}" for k in ("stt", "llm", "tts")),
                  f"{1000 * result['crm_mean_s']:.1f}", round(loop_s, 1), round(vad_s, 1),
                  round(other, 1))  # fmt: skip
    table.notes.append(
        "endpointing = livekit's end of speech -> turn committed (the designed silence, the VAD's lag and "
        "the STT round trip); stt = end of speech -> final transcript; llm = the turn's LLM streams to "
        "their first chunk (agent side: a tool-call stream's first chunk is its end); tts = first reply "
        "text -> first audio played (it includes the rest of a paced reply's stream). Stand-ins: their "
        "own time per turn (mean; the LLM's streams to their last byte, STT and TTS to first byte); the "
        "CRM's per request (tools' share, not subtracted). "
        "Silero scores every call's windows on the model's own thread (silero-batch_0, "
        "agent/speech/silero_batch.py); the loop's default executor (asyncio_N: the outbox's store, "
        "LiteLLM's logging) counts among the other threads; the session, framing and everything else "
        "run on the main thread."
    )
    return table


IDLE_FUNCTIONS = ("epoll.poll", "select.select", "select.poll")  # the event loop waiting: not work


def _profile_table(calls: int, result: dict[str, Any]) -> Table:
    table = Table(
        f"13c. Profile of the event loop at {calls} calls (pyinstrument, main thread, self time while busy)",
        ["package / function", "self s", "share of busy"],
    )
    hotspots = result.get("hotspots") or {"packages": [], "functions": []}
    idle = sum(e["self_s"] for e in hotspots["functions"] if e["name"].startswith(IDLE_FUNCTIONS))
    busy = sum(e["self_s"] for e in hotspots["packages"]) - idle
    busy = busy if busy > 0 else 1.0
    for entry in hotspots["packages"][:12]:
        own = entry["self_s"] - (idle if entry["name"] == "builtins (C calls)" else 0.0)
        table.add(entry["name"], round(own, 2), f"{100 * own / busy:.0f} %")
    functions = [e for e in hotspots["functions"] if not e["name"].startswith(IDLE_FUNCTIONS)]
    for entry in functions[:15]:
        table.add(entry["name"], round(entry["self_s"], 2), f"{100 * entry['self_s'] / busy:.0f} %")
    table.notes.append(
        f"Packages first (busy time: C calls less the loop's idle wait), then functions. The loop waited "
        f"{idle:.1f} s in epoll (idle, left out); it was busy {busy:.1f} s. The VAD model's thread is "
        "not sampled (its CPU: 13b)."
    )
    return table


def run(
    quick: bool,
    levels: tuple[int, ...] | None = None,
    processes: int = 1,
    llm_token_delay_s: float = LLM_TOKEN_DELAY_S,
) -> list[Table]:
    levels = levels or (QUICK_LEVELS if quick else LEVELS)
    where = "one agent process" if processes == 1 else f"{processes} agent processes (calls shared out)"
    table = Table(
        f"13a. Voice density: concurrent voice calls in {where}, milliseconds / MB",
        ["calls", "turns", "wait p50", "wait p95", "heard p95", "added p50", "added p95", "peak RSS MB",
         "RSS/call MB", "CPU %", "CPU ms per call-s", "failed", "load 1-min (start/end)"],
    )  # fmt: skip
    done: list[tuple[int, dict[str, Any]]] = []
    best: int | None = None  # the largest level meeting the goal's bounds
    first_miss: tuple[int, str] | None = None
    started = time.monotonic()
    with (
        stand_ins(llm_token_delay_s) as (urls, sink_url),
        tempfile.TemporaryDirectory(prefix="bench-clips-") as tmp,
    ):
        clips = Path(tmp)
        prefill_clips(clips, max(max(levels), MIN_CALLS))
        for calls in levels:
            if time.monotonic() - started > BUDGET_S:
                table.notes.append(f"time budget ({BUDGET_S:.0f} s) spent before {calls} calls")
                break
            result = _run_level(
                urls, sink_url, calls, profile=False, quick=quick, clips=clips, processes=processes
            )
            done.append((calls, result))
            s = summarise(result)
            load = result["load"]
            millis = [
                f"{1000 * s[k]:.0f}" for k in ("wait_p50", "wait_p95", "heard_p95", "added_p50", "added_p95")
            ]
            table.add(calls, s["turns"], *millis, round(s["rss_peak"]), f"{s['rss_per_call']:.1f}",
                      round(s["cpu_pct"]), round(s["cpu_ms_per_call_s"]), result["failed"],
                      f"{load[0]:.1f} / {load[1]:.1f}")  # fmt: skip
            reasons = []
            if s["added_p95"] > GOAL_ADDED_P95_S:
                reasons.append(f"added p95 {1000 * s['added_p95']:.0f} ms > 100 ms")
            if s["rss_peak"] > RSS_LIMIT_MB:
                reasons.append(f"peak RSS {s['rss_peak']:.0f} MB > 2 GB")
            if result["failed"]:
                reasons.append(f"{result['failed']} failed calls")
            if reasons and first_miss is None:
                first_miss = (calls, "; ".join(reasons))
            if first_miss is None:
                best = calls
            # Past the goal the ladder goes on to show how the latency grows, until the agent saturates.
            if s["added_p50"] > SATURATED_P50_S or s["rss_peak"] > RSS_LIMIT_MB or result["failed"]:
                break
        profiled = None
        if done and not quick and processes == 1:  # what dominates at the last (largest) level
            profiled = (
                done[-1][0],
                _run_level(urls, sink_url, done[-1][0], profile=True, quick=False, clips=clips),
            )
    designed = done[0][1]["designed_silence_s"] if done else 0.0
    detail = f"{best or 0} calls with added p95 <= 100 ms, peak RSS <= 2 GB and no failed call"
    if first_miss is not None:
        detail += f" (at {first_miss[0]}: {first_miss[1]})"
    elif done:
        detail += f" (the ladder ended at {done[-1][0]} without a miss)"
    table.verdicts.append(
        verdict(f">= {GOAL_CALLS} concurrent voice calls", (best or 0) >= GOAL_CALLS, detail)
    )
    table.notes += [
        f"added = wait - designed silence ({1000 * designed:.0f} ms: max(the silence Silero counts before it "
        "reports the end of speech, its min_silence_duration in whole 32 ms windows; the session's min "
        "endpointing delay)) - the providers' times measured inside the stand-ins: the turn's own LLM "
        "requests to their last byte, the part inside its wait (the agent acts on tool calls and speaks "
        "a one-sentence reply only once its stream has ended; requests joined to the turn by the call's "
        "conversation and the wait's clock times), and the level's mean of one STT request to its answer "
        "and one TTS request to its first audio. wait = the turn recorder's caller wait; heard = the "
        "caller's own clock (the line's last spoken sample -> first agent frame). Turns whose LLM "
        "requests were not found (their LLM time counted as the agent's), by level: "
        + ", ".join(f"{calls}: {r.get('llm_unmatched_turns', 0)}" for calls, r in done)
        + ".",
        (
            f"The LLM stand-ins stream one word per chunk, {1000 * llm_token_delay_s:.0f} ms apart (a "
            "hosted model's pace); finish, usage and [DONE] follow the last word at once."
            if llm_token_delay_s
            else "The LLM stand-ins send each stream in one burst (--llm-token-delay 0): the agent's "
            "per-chunk work then comes after the provider's last byte and counts as added."
        ),
        f"N calls at a time, the first N starts spread over {STAGGER_S:.0f} s; at least {MIN_CALLS} calls "
        "per level (at 1: one after another); one warm-up call first (not with --quick: one call, no "
        "warm-up). The ladder goes on past the goal until added p50 passes 1 s. Each level is a "
        "fresh agent process with telemetry as shipped (OTLP to the sink). Stand-ins (2 LLM, CRM, 2 STT, "
        "2 TTS, OTLP sink) each in their own process, shared by the levels: their CPU is not the agent's.",
        "RSS/call = (peak RSS during the level - RSS after the warm-up call) / calls. CPU % of one core "
        "(the agent process, all threads); CPU ms per call-s = agent CPU per second of call.",
    ]
    if processes > 1:
        table.notes.append(
            f"Each level's calls shared out over {processes} agent processes started together after their "
            "warm-up calls; turns pooled; CPU % summed over the processes (of one core); peak RSS the sum "
            "of their peaks. No profiled rerun."
        )
    tables = [table, _stage_table(done)]
    if profiled is not None:
        tables.append(_stage_table([profiled]))
        tables[-1].title = f"13b'. The profiled rerun at {profiled[0]} calls (profiler on: slower)"
        tables.append(_profile_table(*profiled))
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--levels", default="", help="comma-separated concurrency levels (default: the ladder)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="agent processes per level, calls shared out (default 1)"
    )
    parser.add_argument(
        "--llm-token-delay",
        type=float,
        default=LLM_TOKEN_DELAY_S,
        help=f"seconds between the LLM stand-ins' word chunks (default {LLM_TOKEN_DELAY_S}; 0: one burst)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--barrier", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="run", help=argparse.SUPPRESS)
    parser.add_argument("--first-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--total", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-warm-up", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-out", type=Path, default=None, help=argparse.SUPPRESS)
    for kind in ("llm", "crm", "stt", "tts"):
        parser.add_argument(f"--{kind}-url", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    try:
        levels = tuple(int(x) for x in args.levels.split(",") if x.strip()) or None
    except ValueError:
        parser.error(f"--levels {args.levels!r}: expected comma-separated whole numbers, e.g. 1,5,10")
    if levels is not None and any(n < 1 for n in levels):
        parser.error("--levels: every level must be at least 1 call")
    if args.processes < 1:
        parser.error("--processes: at least 1")
    if args.llm_token_delay < 0:
        parser.error("--llm-token-delay: seconds, 0 or more")
    from bench._common import emit

    emit(run(args.quick, levels, args.processes, args.llm_token_delay), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
