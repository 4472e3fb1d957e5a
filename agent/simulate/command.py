"""``sales-agent simulate``: N scripted calls through the real agent, offline; text or voice.

Starts the local LLM providers (primary + backup) and the local CRM service in-process unless URLs
are given (and, with ``--mode voice``, local STT and TTS providers), runs the calls with a progress
bar, prints a summary table (the caller's wait p50/p95 and its stages) and each call's trace id.
Its first line comes before anything heavy is imported; LiteLLM and LiveKit load in a background
thread while the settings are read and the local services start (``agent/simulate/startup.py``).
Telemetry is the normal setup (OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, ``/metrics`` on
``SALES_AGENT_METRICS_PORT``) plus an in-process span capture for ``--show-trace``; ``/health`` and
``/ready`` are served on ``SALES_AGENT_HEALTH_PORT`` while it runs.

The LLM chain: ``--llm-url`` URLs, else the chain configured by ``--llm-config FILE``,
``SALES_AGENT_LLM_CONFIG`` or ``SALES_AGENT_LLM_CHAIN``, else two local providers started here. The
header line says which one runs. The other LLM settings (deadlines, cooldowns...) always come from
the configuration. Settings are built once, here; a bad value, a taken port or an unusable outbox
file is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent.simulate.startup import StartupLines, bytecode_note, prepare_main_thread, start_heavy_imports
from telemetry.config_errors import ConfigError, bind_listener, env_name, run_main

if TYPE_CHECKING:
    import asyncio

    import httpx
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from agent.app_settings import AppSettings
    from agent.runtime import Runtime
    from agent.simulate.runner import CallRunner
    from agent.simulate.stack import FaultSpec, Stack
    from agent.speech import SpeechServices

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sales-agent simulate",
        description="Run scripted calls through the real agent, LLM router, tools and CRM client "
        "(text, or voice: real audio through VAD, STT and TTS).",
    )
    parser.add_argument(
        "--mode",
        choices=("text", "voice"),
        default="text",
        help="text calls (default) or voice calls: espeak-ng caller audio, Silero VAD, STT and TTS over HTTP",
    )
    parser.add_argument("--calls", type=int, default=5, help="calls per batch (default 5)")
    parser.add_argument("--concurrency", type=int, default=2, help="calls at the same time (default 2)")
    parser.add_argument(
        "--faults",
        default="",
        help="faults switched on during the run, e.g. 'llm-primary=500,crm=down,stt-primary=hang' "
        "(targets: llm-<provider>, crm, calendar; voice: stt-<provider>, tts-<provider>)",
    )
    parser.add_argument(
        "--fault-after",
        type=int,
        default=None,
        help="switch the faults on after this many calls finished (default: a third of --calls)",
    )
    parser.add_argument("--show-trace", action="store_true", help="print the first call's span tree")
    parser.add_argument(
        "--llm-url",
        action="append",
        default=[],
        metavar="URL",
        help="OpenAI-compatible provider URL; repeat in fallback order (default: the configured chain, "
        "else two local providers started here)",
    )
    parser.add_argument(
        "--llm-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="LLM settings YAML (as SALES_AGENT_LLM_CONFIG): its chain and settings are used",
    )
    parser.add_argument(
        "--crm-url", default=None, help="CRM + calendar service URL (default: start one locally)"
    )
    parser.add_argument(
        "--stt-url",
        action="append",
        default=[],
        metavar="URL",
        help="voice: local STT provider URL, repeat in fallback order (default: start two locally)",
    )
    parser.add_argument(
        "--tts-url",
        action="append",
        default=[],
        metavar="URL",
        help="voice: OpenAI-compatible TTS URL, repeat in fallback order (default: start two locally)",
    )
    parser.add_argument(
        "--voice-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="voice: folder for the caller's spoken lines, made with espeak-ng at first use "
        "(default: ~/.cache/sales-agent/voice)",
    )
    parser.add_argument("--tenants", default="", help="comma-separated tenant ids (default: all configured)")
    parser.add_argument(
        "--forever", action="store_true", help="run batches until interrupted (load generator)"
    )
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between batches with --forever")
    parser.add_argument("--turn-timeout", type=float, default=30.0, help="seconds a scripted turn may take")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, each running --calls calls against the same CRM (and the Redis and "
        "PostgreSQL of SALES_AGENT_LLM_REDIS_URL / CRM_OUTBOX_URL); faults are on from the start",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="at exit, seconds to deliver CRM writes still queued; what is left is kept (default 10)",
    )
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[FaultSpec]:
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.interval < 0:
        parser.error("--interval cannot be negative")
    if args.fault_after is not None and args.fault_after < 0:
        parser.error("--fault-after cannot be negative")
    if args.turn_timeout <= 0:
        parser.error("--turn-timeout must be positive")
    if args.mode == "text" and (args.stt_url or args.tts_url or args.voice_cache):
        parser.error("--stt-url / --tts-url / --voice-cache need --mode voice")
    if args.voice_cache is not None and args.voice_cache.exists() and not args.voice_cache.is_dir():
        parser.error(f"--voice-cache {args.voice_cache}: not a folder")
    if args.drain_timeout < 0:
        parser.error("--drain-timeout cannot be negative")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1 and args.fault_after is not None:
        parser.error("--fault-after works with one worker; with --workers the faults are on from the start")
    if args.workers > 1 and args.show_trace:
        parser.error("--show-trace works with one worker")
    from agent.simulate.stack import parse_faults

    try:
        return parse_faults(args.faults)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("sales-agent simulate", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    faults = _validate(parser, args)
    if args.llm_url and args.llm_config:
        parser.error("--llm-url and --llm-config both choose the LLM chain: give one")
    lines = StartupLines()
    calls = "calls until interrupted" if args.forever else f"{args.calls} call{'s' * (args.calls != 1)}"
    if args.workers > 1:  # this process only starts the stack and the workers; each prints its own start
        lines.say(f"starting {args.workers} worker processes, {calls} each")
    else:
        lines.say(f"starting {calls}; loading LiteLLM and LiveKit in the background")
    import asyncio  # after the first line: asyncio (with ssl) is ~0.1 s

    settings = simulate_settings(args)
    if "outbox_path" in settings.crm.model_fields_set or settings.crm.outbox_url is not None:
        from agent.crm.outbox import Outbox

        # OutboxUnusable / OutboxDatabaseUnusable (CRM_OUTBOX_URL unreachable) now, before anything starts.
        Outbox(settings.crm.outbox_location).close()
    if args.workers > 1:
        from rich.console import Console

        from agent.simulate.workers import run_workers

        try:
            return asyncio.run(run_workers(args, faults, Console(), settings))
        except KeyboardInterrupt:
            return 130
    health_socket = None
    if settings.health.port:
        health_socket = bind_listener(
            settings.health.host, settings.health.port, env_name(type(settings.health), "port")
        )
    try:
        return asyncio.run(_simulate(args, faults, settings, health_socket, lines))
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # problems found once the stack is known (unknown fault target...)
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(exc)) from None


def simulate_settings(args: argparse.Namespace) -> AppSettings:
    """The settings root of this run: the environment, ``--llm-config``, and simulate's own defaults."""
    from agent.app_settings import AppSettings

    settings = AppSettings.from_env(llm={"config": args.llm_config} if args.llm_config else {})
    if "log_level" not in settings.telemetry.model_fields_set:
        # The terminal shows the progress and summary: only errors are logged unless asked for
        # (SALES_AGENT_LOG_LEVEL=INFO, e.g. in compose where the logs go to Loki).
        settings = settings.with_area("telemetry", log_level="ERROR")
    return settings


class _FaultSwitch:
    """Switches the ``--faults`` on once, after ``after`` calls finished (0: before the first call)."""

    def __init__(self, stack: Stack, faults: Sequence[FaultSpec], *, after: int) -> None:
        self._stack = stack
        self._faults = list(faults)
        self._after = after
        self._pending = bool(faults)
        self._tasks: list[asyncio.Task[None]] = []
        self._done = 0

    async def _switch(self, console: Console) -> None:
        from agent.simulate.stack import apply_faults

        await apply_faults(self._stack, self._faults)
        console.print(f"faults on: {', '.join(f'{f.target}={f.mode}' for f in self._faults)}")

    async def maybe_switch(self, *, done: int, console: Console) -> None:
        if self._pending and done >= self._after:
            self._pending = False
            await self._switch(console)

    def call_done(self, console: Console) -> None:
        """Count one finished call; switch the faults on (in a task) once enough have finished."""
        self._done += 1
        if self._pending and self._done >= self._after:
            self._pending = False
            import asyncio

            self._tasks.append(asyncio.get_running_loop().create_task(self._switch(console)))

    async def wait(self) -> None:
        import asyncio

        tasks, self._tasks = self._tasks, []
        await asyncio.gather(*tasks)


def _on_call_done(
    progress: Progress, task: TaskID, switch: _FaultSwitch, console: Console, _result: object
) -> None:
    progress.advance(task)
    switch.call_done(console)


def _metric_sum(reader: object, name: str) -> float:
    """The sum of every data point of ``name`` the in-process reader holds (cumulative)."""
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    total = 0.0
    if data is None:
        return total
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    total += sum(getattr(p, "value", 0) for p in metric.data.data_points)
    return total


async def _simulate(
    args: argparse.Namespace,
    faults: list[FaultSpec],
    settings: AppSettings,
    health_socket: socket.socket | None,
    lines: StartupLines,
) -> int:
    # Main thread, before the loader starts: only what the checks and the local services need.
    from rich.console import Console

    from agent.errors import InvalidInput
    from agent.llm.settings import ProviderConfig
    from agent.simulate.stack import check_faults, open_stack
    from agent.tenants import TenantRegistry
    from agent.vocabulary.local_providers import local_model

    console = Console()
    if not console.is_terminal:  # piped / captured: wide enough for the trace ids
        console = Console(width=140)
    tenants = TenantRegistry.from_file(settings.tenants.file)
    tenant_ids = [t.strip() for t in args.tenants.split(",") if t.strip()] or tenants.ids()
    for tenant_id in tenant_ids:
        try:
            tenants.get(tenant_id)
        except InvalidInput as exc:
            raise ConfigError(f"--tenants: {exc.message}") from None
    configured_chain = settings.llm.chain_configured and not args.llm_url
    if configured_chain:
        from agent.llm.chain import check_chain

        check_chain(settings.llm)  # no provider with its key...: say so before starting anything
    prepare_main_thread()
    note = bytecode_note()
    if note:
        lines.say(note)
    loader = start_heavy_imports()
    failed_calls = 0

    async with contextlib.AsyncExitStack() as exits:
        voice = args.mode == "voice"
        stack = await exits.enter_async_context(
            open_stack(
                args.llm_url,
                args.crm_url,
                start_llm=not configured_chain,
                voice=voice,
                stt_urls=args.stt_url,
                tts_urls=args.tts_url,
            )
        )
        check_faults(stack, faults)
        started = [f"LLM {ep.name}" for ep in stack.llm] if not (args.llm_url or configured_chain) else []
        started += ["CRM + calendar"] if args.crm_url is None else []
        started += [f"STT {ep.name}" for ep in stack.stt] if voice and not args.stt_url else []
        started += [f"TTS {ep.name}" for ep in stack.tts] if voice and not args.tts_url else []
        if started:
            lines.say(f"local services up: {', '.join(started)}")
        with console.status("loading LiteLLM and LiveKit", spinner="dots"):
            load_s = await loader.wait()
        lines.say(f"LiteLLM and LiveKit loaded ({load_s:.1f} s in the background)")
        # The loader is done: the rest of the imports (ours, on top of LiveKit and LiteLLM) are safe now.
        import httpx
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from agent.runtime import start_runtime
        from agent.simulate.backlog import Backlog
        from agent.simulate.report import calls_table, summarise, summary_table
        from agent.simulate.runner import run_batch
        from agent.simulate.stack import apply_faults
        from agent.simulate.trace_view import SpanCapture, render_trace
        from telemetry import names
        from telemetry.setup import setup_telemetry

        # Spans are kept in memory only for --show-trace: a synchronous exporter costs every span.
        capture = SpanCapture(max_traces=max(50, 4 * args.calls)) if args.show_trace else None
        reader = InMemoryMetricReader()
        telemetry = setup_telemetry(
            settings.telemetry, span_exporters=[capture] if capture else [], metric_readers=[reader]
        )
        exits.callback(telemetry.shutdown)  # one bounded flush at the end, even on errors
        configured = settings.crm.outbox_path if "outbox_path" in settings.crm.model_fields_set else None
        # CRM_OUTBOX_URL wins over the path: a PostgreSQL outbox, nothing of this run's to keep or remove.
        backlog = Backlog.at(configured, database=settings.crm.outbox_url is not None)
        exits.callback(backlog.cleanup)  # after the runtime closed: removed only when nothing is left
        settings = settings.with_area(
            "crm", outbox_path=str(backlog.path), crm_url=stack.crm_url, calendar_url=None
        )
        if configured_chain:
            chain_source = _chain_source(settings, args)
        else:
            chain = [
                ProviderConfig(name=ep.name, kind="local", model=local_model(ep.name), api_base=ep.api_base)
                for ep in stack.llm
            ]
            settings = settings.with_area("llm", chain=chain)
            chain_source = "--llm-url" if args.llm_url else "local providers started here"
        runtime = await start_runtime(
            settings,
            tenants=tenants,
            telemetry=telemetry,
            health_socket=health_socket,
            speech=_local_speech(settings, stack) if voice else None,
        )
        exits.push_async_callback(runtime.aclose)
        # Before closing (and after shared services' faults are reset): deliver the backlog or keep it.
        exits.push_async_callback(backlog.settle, runtime.crm, args.drain_timeout, console)
        if faults and not stack.started_locally:
            # Leave shared (compose) services as we found them.
            exits.push_async_callback(apply_faults, stack, faults, reset=True)
        chain = " -> ".join(p.name for p in settings.llm.chain)
        speech = ""
        if voice:
            stt, tts = (" -> ".join(e.name for e in chain) for chain in (stack.stt, stack.tts))
            speech = f", STT {stt}, TTS {tts}"
        console.print(
            f"simulate ({args.mode}): LLM chain {chain} ({chain_source}){speech}, CRM {stack.crm_url}, "
            f"tenants {', '.join(tenant_ids)}",
            markup=False,
        )
        lines.say("ready: the first call starts now")
        http = await exits.enter_async_context(httpx.AsyncClient(timeout=5.0))

        switch = _FaultSwitch(
            stack, faults, after=args.fault_after if args.fault_after is not None else args.calls // 3
        )
        batch = 0
        while True:
            batch += 1
            counted = (names.LLM_FALLBACKS, names.STT_FALLBACKS, names.TTS_FALLBACKS)
            before = {name: _metric_sum(reader, name) for name in counted}
            started = time.perf_counter()
            await switch.maybe_switch(done=0, console=console)  # --fault-after 0: faults from the start
            with Progress(
                TextColumn(f"batch {batch}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                progress_task = progress.add_task("calls", total=args.calls)
                run_one = _call_runner(args, uuid.uuid4().hex[:6], runtime=runtime, stack=stack, http=http)
                results = await run_batch(
                    calls=args.calls,
                    concurrency=args.concurrency,
                    tenants=tenant_ids,
                    run_one=run_one,
                    on_call_done=functools.partial(_on_call_done, progress, progress_task, switch, console),
                )
            await switch.wait()
            stats = runtime.crm.outbox_stats()
            delta = {name: round(_metric_sum(reader, name) - before[name]) for name in counted}
            summary = summarise(
                results,
                mode=args.mode,
                fallbacks=delta[names.LLM_FALLBACKS],
                speech_fallbacks={"stt": delta[names.STT_FALLBACKS], "tts": delta[names.TTS_FALLBACKS]},
                outbox_depth=stats.depth,
                outbox_oldest_age_s=stats.oldest_age_s,
                wall_s=time.perf_counter() - started,
            )
            failed_calls += summary.failed_calls
            console.print(summary_table(summary))
            console.print(calls_table(results))
            if capture is not None and results and results[0].trace_id:
                console.print(render_trace(capture.spans(results[0].trace_id)))
            if not args.forever:
                break
            if capture is not None:
                capture.clear()
            import asyncio

            await asyncio.sleep(args.interval)

    return 1 if failed_calls else 0


def _call_runner(
    args: argparse.Namespace,
    run_id: str,
    *,
    runtime: Runtime,
    stack: Stack,
    http: httpx.AsyncClient,
) -> CallRunner:
    """``(index, tenant) -> CallResult`` for this batch: a text call, or a voice call."""
    if args.mode == "voice":
        from agent.simulate.voice_runner import run_voice_call

        return functools.partial(
            run_voice_call,
            run_id=run_id,
            runtime=runtime,
            stt_admin_urls=[ep.admin_url for ep in stack.stt],
            http=http,
            turn_timeout_s=args.turn_timeout,
            clip_cache=args.voice_cache,
        )
    from agent.simulate.runner import run_call

    return functools.partial(run_call, run_id=run_id, runtime=runtime, turn_timeout_s=args.turn_timeout)


def _local_speech(settings: AppSettings, stack: Stack) -> SpeechServices:
    """STT and TTS chains over the stack's speech providers (deadlines and cooldowns from the
    configuration), and the Silero VAD model (loaded once)."""
    from agent.speech import SpeechServices, STTSettings, TTSSettings
    from agent.speech.silero_batch import BatchedSileroVAD

    stt = STTSettings.for_local([ep.per_call_api_base for ep in stack.stt]).chain
    tts = TTSSettings.for_local([ep.api_base for ep in stack.tts]).chain
    return SpeechServices(
        settings.stt.model_copy(update={"chain": stt}),
        settings.tts.model_copy(update={"chain": tts}),
        BatchedSileroVAD.load(),
    )


def _chain_source(settings: AppSettings, args: argparse.Namespace) -> str:
    if args.llm_config:
        return f"--llm-config {args.llm_config}"
    if settings.llm.config is not None:
        return f"SALES_AGENT_LLM_CONFIG={settings.llm.config}"
    return "SALES_AGENT_LLM_CHAIN"
