"""Item 11: voice. The caller's wait, what an STT or TTS failover costs, how fast a barge-in is heard.

- **11a caller's wait**: whole voice calls (espeak-ng caller audio at real-time pace through Silero VAD,
  the STT and TTS stand-ins over HTTP, the real agent, LLM stand-ins and CRM): healthy, primary STT
  answering 500, primary TTS answering 500 (with the shipped cooldown policy: one failover, then the
  primary is skipped). p50 / p95 / max of the caller's wait as ``sales_agent.turn.response_latency``
  records it, and each stage's p50. Goal: healthy p95 under 2 s (the product's response claim).
- **11b TTS failover**: time to a sentence's first audio through ``ChainTTS`` with the primary healthy,
  answering 500 and hanging (cut by the first-byte deadline); beside it livekit's
  ``tts.FallbackAdapter`` with the primary answering 500, at its default ``max_retry_per_tts=2`` and at
  0. A fresh chain per repetition, so every repetition pays the failover. Goal: + under 100 ms.
- **11c STT failover**: one utterance through ``ChainSTT``, primary healthy vs answering 500 (the backup
  transcribes the same audio).
- **11d barge-in**: the caller talks 0.8 s into the agent's greeting; time from their first word to the
  agent's audio being cut, with ``aec_warmup_duration=None`` (ours) and livekit's default 3 s (which
  ignores the caller during the session's first seconds of agent speech). Goal: under 1 s.

    python -m bench.bench_voice [--quick] [--parts wait,tts,stt,barge-in]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bench._common import Table, bench_arg_parser, emit, percentile, verdict

STAGES = ("endpointing", "stt", "llm", "tools", "tts")
GOAL_WAIT_P95_S = 2.0
GOAL_TTS_FAILOVER_MS = 100.0
GOAL_BARGE_IN_S = 1.0
SENTENCE = "Thanks for taking my call, I'm with Acme Sales."


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


@contextlib.asynccontextmanager
async def voice_runtime(
    workdir: Path, seconds_per_char: float, *, urls: dict[str, list[str]] | None = None, telemetry: Any = None
) -> AsyncIterator[tuple[Any, Any]]:
    """The voice stack and a runtime with speech chains over it; yields (stack, runtime).

    ``urls``: ``{"llm": [...], "crm": [url], "stt": [...], "tts": [...]}`` of stand-ins running
    elsewhere (their own processes); without it the stand-ins run in this process.
    """
    from agent.app_settings import AppSettings
    from agent.llm import ProviderConfig
    from agent.runtime import start_runtime
    from agent.simulate.stack import open_stack
    from agent.speech import SpeechServices, STTSettings, TTSSettings
    from agent.speech.silero_batch import BatchedSileroVAD
    from agent.tenants import TenantRegistry
    from agent.vocabulary.local_providers import local_model

    urls = urls or {}
    async with open_stack(
        urls.get("llm", ()),
        next(iter(urls.get("crm", ())), None),
        voice=True,
        stt_urls=urls.get("stt", ()),
        tts_urls=urls.get("tts", ()),
        tts_seconds_per_char=seconds_per_char,
    ) as stack:
        chain = [
            ProviderConfig(name=ep.name, kind="local", model=local_model(ep.name), api_base=ep.api_base)
            for ep in stack.llm
        ]
        settings = AppSettings.from_env(
            llm={"chain": chain},
            crm={"crm_url": stack.crm_url, "outbox_path": str(workdir / "outbox.sqlite3")},
            stt={"chain": STTSettings.for_local([ep.per_call_api_base for ep in stack.stt]).chain},
            tts={"chain": TTSSettings.for_local([ep.api_base for ep in stack.tts]).chain},
        )
        speech = SpeechServices(settings.stt, settings.tts, BatchedSileroVAD.load())
        runtime = await start_runtime(
            settings,
            tenants=TenantRegistry.from_mapping({"tenants": {"acme": {"display_name": "Acme"}}}),
            speech=speech,
            telemetry=telemetry,
        )
        try:
            yield stack, runtime
        finally:
            await runtime.aclose()


async def _calls(
    workdir: Path, calls: int, seconds_per_char: float, fault: tuple[str, str] | None = None, **kwargs: Any
) -> list[Any]:
    import httpx

    from agent.simulate.voice_runner import run_voice_call

    async with voice_runtime(workdir, seconds_per_char) as (stack, runtime), httpx.AsyncClient() as http:
        if fault is not None:
            target, mode = fault
            (
                await http.post(f"{stack.fault_targets()[target][0]}/admin/fault", json={"mode": mode})
            ).raise_for_status()
        return [
            await run_voice_call(
                index,
                "acme",
                run_id="bench",
                runtime=runtime,
                http=http,
                stt_admin_urls=[ep.admin_url for ep in stack.stt],
                clip_cache=workdir / "clips",
                **kwargs,
            )
            for index in range(calls)
        ]


async def caller_wait(workdir: Path, calls: int, seconds_per_char: float) -> Table:
    table = Table(
        "11a. The caller's wait over whole voice calls (end of speech -> first agent audio), milliseconds",
        ["scenario", "turns", "p50", "p95", "max", *(f"{s} p50" for s in STAGES), "failed calls"],
    )
    healthy_p95: float | None = None
    for name, fault in (("healthy", None), ("primary STT 500", ("stt-primary", "500")),
                        ("primary TTS 500", ("tts-primary", "500"))):  # fmt: skip
        results = await _calls(workdir, calls, seconds_per_char, fault)
        turns = [t for r in results for t in r.recorded_turns]
        waits = [t.wait_s for t in turns]
        stages = {s: percentile([t.stages[s] for t in turns if s in t.stages] or [0.0], 50) for s in STAGES}
        p95 = percentile(waits, 95) if waits else None
        if fault is None:
            healthy_p95 = p95
        p50 = percentile(waits, 50) if waits else None
        failed = sum(1 for r in results if r.failed)
        table.add(name, len(turns), _ms(p50), _ms(p95), _ms(max(waits, default=None)),
                  *(_ms(stages[s]) for s in STAGES), failed)  # fmt: skip
    if healthy_p95 is not None:
        table.verdicts.append(
            verdict(
                "healthy caller's wait p95 < 2 s",
                healthy_p95 < GOAL_WAIT_P95_S,
                f"{healthy_p95 * 1000:.0f} ms",
            )
        )
    table.notes.append(
        f"{calls} calls per scenario (the simulate rotation: a sale, a barge-in, a long silence), in turn. "
        "endpointing is the VAD's end-of-speech silence (0.55 s) plus the wait for the transcript; the STT "
        "request runs inside it. With a failing primary the first utterance or sentence pays the failover, "
        "then the primary cools down for 30 s and is skipped."
    )
    return table


async def _timed(reps: int, once: Callable[[], Awaitable[float]]) -> list[float]:
    return [await once() for _ in range(reps)]


async def tts_failover(reps: int) -> Table:
    from livekit.agents import APIConnectOptions, tts
    from livekit.plugins import openai

    from agent.call_context import CallContext
    from agent.speech import SpeechServices, STTSettings, TTSSettings
    from agent.speech.tts import ChainTTS
    from local_services.tts_provider import run_tts_provider

    call = CallContext("acme", "bench", "bench")

    async def first_audio(stream_factory: Callable[[], Any]) -> float:
        started = time.perf_counter()
        async with stream_factory() as stream:
            async for _audio in stream:
                return time.perf_counter() - started
        raise RuntimeError("no audio")

    table = Table(
        "11b. TTS: time to a sentence's first audio, milliseconds",
        ["setup", "p50", "p95", "+p50 vs healthy"],
    )
    async with run_tts_provider("primary") as primary, run_tts_provider("backup") as backup:

        def chain() -> ChainTTS:
            settings = TTSSettings.for_local([primary.url, backup.url])
            speech = SpeechServices(STTSettings.for_local(["http://127.0.0.1:9/v1"]), settings)
            return ChainTTS(speech.tts_chain, settings, call=call)

        async def through_chain() -> float:
            voice = chain()  # fresh health: every repetition pays the failover
            try:
                return await first_audio(lambda: voice.synthesize(SENTENCE))
            finally:
                await voice.aclose()

        def livekit_adapter(retries: int) -> Callable[[], Awaitable[float]]:
            async def once() -> float:
                plugins = [
                    openai.TTS(base_url=p.url, api_key="local", response_format="pcm")
                    for p in (primary, backup)
                ]
                adapter = tts.FallbackAdapter(plugins, max_retry_per_tts=retries)
                try:
                    options = APIConnectOptions(max_retry=0, timeout=10)
                    return await first_audio(lambda: adapter.synthesize(SENTENCE, conn_options=options))
                finally:
                    await adapter.aclose()
                    for plugin in plugins:
                        await plugin.aclose()

            return once

        rows: list[tuple[str, list[float]]] = []
        primary.service.set_fault("ok")
        rows.append(("ChainTTS, primary healthy", await _timed(reps, through_chain)))
        primary.service.set_fault("500")
        rows.append(("ChainTTS, primary 500", await _timed(reps, through_chain)))
        primary.service.set_fault("hang")
        rows.append(
            (
                "ChainTTS, primary hanging (first-byte deadline 2 s)",
                await _timed(max(1, reps // 5), through_chain),
            )
        )
        primary.service.set_fault("500")
        rows.append(("livekit FallbackAdapter, max_retry_per_tts=2 (default), primary 500",
                     await _timed(max(1, reps // 5), livekit_adapter(2))))  # fmt: skip
        rows.append(("livekit FallbackAdapter, max_retry_per_tts=0, primary 500",
                     await _timed(reps, livekit_adapter(0))))  # fmt: skip
    healthy = statistics.median(rows[0][1])
    for name, values in rows:
        p50 = statistics.median(values)
        table.add(name, _ms(p50), _ms(percentile(values, 95)), f"{(p50 - healthy) * 1000:+.0f}")
    extra_ms = (statistics.median(rows[1][1]) - healthy) * 1000
    table.verdicts.append(verdict("TTS failover (primary 500) adds < 100 ms", extra_ms < GOAL_TTS_FAILOVER_MS,
                                  f"{extra_ms:+.0f} ms"))  # fmt: skip
    table.notes.append(f"{reps} repetitions (hang and the default-retry adapter: {max(1, reps // 5)}); "
                       f"sentence of {len(SENTENCE)} characters, stand-ins on loopback.")  # fmt: skip
    return table


async def stt_failover(reps: int) -> Table:
    import numpy as np
    from livekit import rtc

    from agent.call_context import CallContext
    from agent.speech import SpeechServices, STTSettings, TTSSettings
    from agent.speech.silero_batch import BatchedSileroVAD
    from local_services.stt_provider import run_stt_provider

    frames = [rtc.AudioFrame(np.zeros(32000, dtype=np.int16).tobytes(), 16000, 1, 32000)]  # 2 s utterance
    call = CallContext("acme", "bench", "bench")
    vad = BatchedSileroVAD.load()
    table = Table(
        "11c. STT: one 2 s utterance through ChainSTT, milliseconds", ["setup", "p50", "p95", "+p50"]
    )
    async with run_stt_provider("primary") as primary, run_stt_provider("backup") as backup:

        async def once() -> float:
            settings = STTSettings.for_local([s.admin_url + "/calls/{call_id}/v1" for s in (primary, backup)])
            speech = SpeechServices(settings, TTSSettings.for_local(["http://127.0.0.1:9/v1"]), vad)
            chain = speech.for_call(call)["stt"]
            for service in (primary, backup):
                service.service.say(call.call_id, "Hello.")
            started = time.perf_counter()
            try:
                text = await chain.transcribe(frames)
                assert text == "Hello.", text
                return time.perf_counter() - started
            finally:
                await chain.aclose()
                await speech.for_call(call)["tts"].aclose()

        primary.service.set_fault("ok")
        healthy = await _timed(reps, once)
        primary.service.set_fault("500")
        failover = await _timed(reps, once)
    base = statistics.median(healthy)
    for name, values in (("primary healthy", healthy), ("primary 500 -> backup (same audio)", failover)):
        table.add(name, _ms(statistics.median(values)), _ms(percentile(values, 95)),
                  f"{(statistics.median(values) - base) * 1000:+.0f}")  # fmt: skip
    table.notes.append(f"{reps} repetitions, a fresh chain each (every repetition pays the failover).")
    return table


async def barge_in(workdir: Path, calls: int, seconds_per_char: float) -> Table:
    from agent.simulate.scripts import prospect_for
    from agent.simulate.voice_scripts import voice_barge_in

    table = Table(
        "11d. Barge-in: the caller talks 0.8 s into the greeting; seconds until the agent's audio is cut",
        ["aec_warmup_duration", "calls", "cut p50", "cut max", "barge-in line heard (call completed)"],
    )
    ours: list[float] = []
    for label, options in (("None (ours)", {}), ("3.0 (livekit default)", {"aec_warmup_duration": 3.0})):
        results = await _calls(
            workdir,
            calls,
            seconds_per_char,
            script=voice_barge_in(prospect_for(1, "bench")),
            session_options=options,
            turn_timeout_s=12.0,
        )
        reactions = [x for r in results for x in r.barge_in_reactions_s[:1]]
        completed = sum(1 for r in results if r.outcome == "callback")
        table.add(label, len(results), f"{statistics.median(reactions):.2f}" if reactions else "never",
                  f"{max(reactions):.2f}" if reactions else "-", f"{completed}/{len(results)}")  # fmt: skip
        if not options:
            ours = reactions
    if ours:
        table.verdicts.append(verdict("barge-in acted on within 1 s", max(ours) < GOAL_BARGE_IN_S,
                                      f"max {max(ours):.2f} s"))  # fmt: skip
    table.notes.append(
        "Cut = the caller's first word to the speaker's clear_buffer (the session stops the reply). "
        "During livekit's warm-up the caller's words do not interrupt the agent: the greeting plays on, "
        "and the line reaches STT only if the caller is still talking when the warm-up ends (last column)."
    )
    return table


PARTS = ("wait", "tts", "stt", "barge-in")  # 11a-11d; wait and barge-in run whole calls in real time


async def _run_all(quick: bool, parts: tuple[str, ...]) -> list[Table]:
    calls = 1 if quick else 3
    pace = 0.03 if quick else 0.065  # the TTS stand-in's seconds of audio per character (0.065: a real voice)
    reps = 3 if quick else 20
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        workdir = Path(tmp)
        tables = []
        if "wait" in parts:
            tables.append(await caller_wait(workdir, calls, pace))
        if "tts" in parts:
            tables.append(await tts_failover(reps))
        if "stt" in parts:
            tables.append(await stt_failover(reps))
        if "barge-in" in parts:
            tables.append(await barge_in(workdir, calls, pace))
        return tables


def run(quick: bool, parts: tuple[str, ...] = PARTS) -> list[Table]:
    import logging

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(_run_all(quick, parts))


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}"
    )
    args = parser.parse_args(argv)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        parser.error(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
    emit(run(args.quick, parts), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
