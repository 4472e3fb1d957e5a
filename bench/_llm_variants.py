"""The measured child of ``bench_peers`` and ``bench_llm_path``: one variant of one call, in blocks.

A variant is a *path* (how the streamed reply is fetched), a *telemetry* mode (who instruments it) and
optional LiteLLM *switches*. The child sets the variant up, warms up, then runs the measured blocks
between callgrind markers (``bench._callgrind``), and last, outside the measured region, a counting
pass: a few more calls with the in-memory exporters cleared and every metric measurement counted, so
spans / attributes / events / measurements per call are exact and cost nothing in the figures.

Paths (every one asks the same local provider for the same 12-word reply: 14 streamed chunks):
  router       ``Router.acompletion(stream=True)`` on the Router ``ProviderChain`` builds (the agent's)
  routerllm    ``RouterLLM.chat()`` consumed as LiveKit consumes it (the agent's whole LLM path)
  acompletion  ``litellm.acompletion(stream=True)`` with the same deployment parameters, no Router
  openai       the ``openai`` SDK's ``AsyncOpenAI.chat.completions.create(stream=True)``
  httpx        a raw httpx POST, SSE lines parsed with ``json.loads``
  sim          one scripted simulated call (``agent.simulate`` scripts through ``SalesCall``, LLM + tools
               + CRM), as ``bench_throughput`` runs it

Telemetry modes:
  none              no SDK providers (the OTel API's no-ops; for ``sim``: ``OTEL_SDK_DISABLED=true``)
  ours              SDK providers (in-memory span exporter, in-memory metric reader) set globally,
                    LiveKit's tracer switched to a no-op: the RouterLLM's own spans/metrics/events only
  ours+livekit      the same providers, LiveKit's llm_request spans included
  production        ``setup_telemetry`` as the worker runs it (redaction, views, httpx and LiveKit
                    wiring, log bridge), OTLP off, in-memory exporter and reader attached
  production-nolk   ``production`` with LiveKit's tracer switched to a no-op (LiveKit's spans off)
  production-otlp   ``setup_telemetry`` exactly as shipped, exporting over OTLP/HTTP to a loopback sink
                    (``--otlp-url``), nothing in-memory attached: the cost a deployment pays, export
                    threads' encoding included (spans and logs are flushed at the end of each block)
  litellm-otel      LiteLLM's built-in OpenTelemetry callback (``litellm.callbacks``), defaults (traces)
  litellm-otel-metrics  the same with its metrics on (``enable_metrics=True``)
  openllmetry       ``opentelemetry-instrumentation-litellm`` (Traceloop's OpenLLMetry), defaults
  openinference     ``openinference-instrumentation-litellm`` (Arize), defaults
Peers get private SDK providers (the same in-memory exporter/reader kind), so for ``sim`` our own
telemetry stays off (``OTEL_SDK_DISABLED``) while the peer records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._callgrind import Markers
from bench._common import child_env, write_result

# 12 words -> 12 content chunks + the finish chunk + the usage chunk = 14 streamed chunks.
REPLY = "Thanks for calling Acme today, how can I help your team grow?"
STREAMED_CHUNKS = 14
USER_TEXT = "Hi, I run sales operations at a mid-size logistics company. What do you offer?"
TENANT = "acme"

PATHS = ("router", "routerllm", "acompletion", "openai", "httpx", "sim")
TELEMETRY = (
    "none",
    "ours",
    "ours+livekit",
    "production",
    "production-nolk",
    "production-otlp",
    "litellm-otel",
    "litellm-otel-metrics",
    "openllmetry",
    "openinference",
)
PEERS = ("litellm-otel", "litellm-otel-metrics", "openllmetry", "openinference")
# LiteLLM's documented module-level switches tried by bench_llm_path (each set to True).
SWITCHES = (
    "suppress_debug_info",
    "turn_off_message_logging",
    "disable_streaming_logging",
    "disable_token_counter",
    "disable_aiohttp_transport",
)
# The package each peer needs (a dependency-group member; the bench skips a peer that is missing).
PEER_PACKAGES = {
    "openllmetry": ("opentelemetry.instrumentation.litellm", "opentelemetry-instrumentation-litellm"),
    "openinference": ("openinference.instrumentation.litellm", "openinference-instrumentation-litellm"),
}

Call = Callable[[], Awaitable[Any]]


# --- what a variant emitted ------------------------------------------------------------------------


@dataclass
class Sinks:
    """The in-memory exporters/readers a variant's telemetry lands in (empty for ``none``)."""

    span_exporters: list[Any] = field(default_factory=list)
    metric_readers: list[Any] = field(default_factory=list)

    def clear(self) -> None:
        for exporter in self.span_exporters:
            exporter.clear()

    def spans(self) -> list[Any]:
        return [span for exporter in self.span_exporters for span in exporter.get_finished_spans()]

    def metric_series(self) -> int:
        points = 0
        for reader in self.metric_readers:
            data = reader.get_metrics_data()
            for rm in data.resource_metrics if data else []:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        points += len(list(metric.data.data_points))
        return points


class MeasurementCounter:
    """Counts every synchronous metric measurement (counter add, histogram record, ...) of any SDK
    MeterProvider, by instrument name, while ``active``; installed only for the counting pass."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics._internal import measurement_consumer as mc

        self.by_instrument: Counter[str] = Counter()
        original = mc.SynchronousMeasurementConsumer.consume_measurement
        counter = self

        def counting(consumer: Any, measurement: Any) -> None:
            counter.by_instrument[measurement.instrument.name] += 1
            original(consumer, measurement)

        mc.SynchronousMeasurementConsumer.consume_measurement = counting  # type: ignore[method-assign]


def _flush_spans_and_logs(handle: Any) -> None:
    """Export what the span and log batches hold now (metrics leave on their own timer)."""
    if handle is not None and handle.otlp_enabled:
        handle.tracer_provider.force_flush()
        handle.logger_provider.force_flush()


async def count_exported(call: Call, handle: Any, otlp_url: str, calls: int) -> dict[str, Any]:
    """Spans and log records per call as the loopback OTLP sink received them, metric measurements
    per call as the SDK was handed them."""
    from bench.bench_throughput import sink_admin

    measurements = MeasurementCounter()
    handle.force_flush()
    sink_admin(otlp_url, "POST", "/admin/reset")
    for _ in range(calls):
        await call()
    await _settle()
    _flush_spans_and_logs(handle)
    stats = sink_admin(otlp_url, "GET", "/admin/stats")
    n = max(1, calls)
    return {
        "spans": stats.get("spans", 0) / n,
        "log_records": stats.get("log_records", 0) / n,
        "measurements": sum(measurements.by_instrument.values()) / n,
        "measurements_by_instrument": {k: v / n for k, v in sorted(measurements.by_instrument.items())},
    }


def _new_sdk_providers(sinks: Sinks) -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    sinks.span_exporters.append(exporter)
    sinks.metric_readers.append(reader)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider, MeterProvider(metric_readers=[reader])


def _livekit_tracer_off() -> None:
    from livekit.agents.telemetry import traces
    from opentelemetry import trace

    traces.tracer.set_provider(trace.NoOpTracerProvider())


def install_telemetry(mode: str, sinks: Sinks, otlp_url: str = "") -> Any:
    """Set up ``mode`` (see the module docstring); returns the production Telemetry handle or None."""
    from opentelemetry import metrics, trace

    if mode == "none":
        return None
    if mode == "production-otlp":
        import os

        from telemetry.settings import TelemetrySettings
        from telemetry.setup import setup_telemetry

        if not otlp_url:
            raise ValueError("telemetry production-otlp needs --otlp-url (the loopback OTLP sink)")
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_url
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        # Metrics are exported on a timer (15 s by default), not per call: under callgrind a call takes
        # ~40x its native time, so the timer would land in every block. ``measure`` counts one export
        # as its own block instead.
        os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = str(24 * 3600 * 1000)
        # The same for the span and log batches (5 s and 1 s timers): each block ends with a flush, so
        # its calls' spans and logs leave in one batch per signal, as they would at native speed,
        # instead of one small batch per timer tick over a block that runs ~40x longer.
        os.environ["OTEL_BSP_SCHEDULE_DELAY"] = str(24 * 3600 * 1000)
        os.environ["OTEL_BLRP_SCHEDULE_DELAY"] = str(24 * 3600 * 1000)
        return setup_telemetry(TelemetrySettings())
    if mode in ("ours", "ours+livekit"):
        tracer_provider, meter_provider = _new_sdk_providers(sinks)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        if mode == "ours":
            _livekit_tracer_off()
        return None
    if mode in ("production", "production-nolk"):
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from telemetry.settings import TelemetrySettings
        from telemetry.setup import setup_telemetry

        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
        sinks.span_exporters.append(exporter)
        sinks.metric_readers.append(reader)
        handle = setup_telemetry(TelemetrySettings(), span_exporters=[exporter], metric_readers=[reader])
        if mode == "production-nolk":
            _livekit_tracer_off()
        return handle
    tracer_provider, meter_provider = _new_sdk_providers(sinks)
    if mode in ("litellm-otel", "litellm-otel-metrics"):
        import litellm
        from litellm.integrations.opentelemetry import OpenTelemetry, OpenTelemetryConfig
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        # What `litellm.callbacks = ["otel"]` builds, with the bench's providers injected instead of a
        # global one (a global provider would switch our own telemetry on in the `sim` path).
        config = OpenTelemetryConfig(exporter=InMemorySpanExporter(), enable_metrics=mode.endswith("metrics"))
        callback = OpenTelemetry(
            config=config, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        litellm.callbacks = [callback]
        return None
    if mode == "openllmetry":
        from opentelemetry.instrumentation.litellm import LiteLLMInstrumentor

        LiteLLMInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        return None
    if mode == "openinference":
        from openinference.instrumentation.litellm import LiteLLMInstrumentor as OILiteLLMInstrumentor

        OILiteLLMInstrumentor().instrument(tracer_provider=tracer_provider)
        return None
    raise ValueError(f"unknown telemetry mode {mode!r}")


# --- the paths -------------------------------------------------------------------------------------


def request_body() -> dict[str, Any]:
    """A turn as the agent sends it: its system instructions, one user message and the sales tools'
    schemas in OpenAI format. Built once by the parent (it needs livekit, which the children of the
    router / openai / httpx paths then need not import) and handed to each child as a JSON file."""
    from livekit.agents import llm

    from agent.sales_agent import build_instructions

    schemas = llm.ToolContext(_sales_tools()).parse_function_tools("openai", strict=False)
    messages = [
        {"role": "system", "content": build_instructions("Acme")},
        {"role": "user", "content": USER_TEXT},
    ]
    return {"messages": messages, "tools": schemas}


def _sales_tools() -> list[Any]:
    from agent.call_context import CallContext
    from agent.tools.sales_tools import SalesTools

    return list(SalesTools(CallContext(TENANT, "s", "c"), crm=None).function_tools())  # type: ignore[arg-type]


# Under valgrind a call runs ~50x slower: the production 2 s first-token deadline would cut every
# attempt and measure the fallback line instead of the reply.
SLOW_DEADLINES = {"first_token_deadline_s": 30.0, "stream_timeout_s": 300.0}


def _llm_settings(*urls: str) -> Any:
    from agent.llm import LLMSettings

    return LLMSettings.for_local(list(urls), **SLOW_DEADLINES)


class FailureWatch(logging.Handler):
    """Counts the LLM layer's warnings (a failed attempt, the fallback line): a measured call that
    fell back measured the wrong thing, so the child fails instead of reporting it."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []
        logging.getLogger("agent.llm").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def _expect_chunks(count: int) -> int:
    if count != STREAMED_CHUNKS:
        raise RuntimeError(f"the stream had {count} chunks, expected {STREAMED_CHUNKS}")
    return count


async def build_llm_call(path: str, url: str, request: dict[str, Any]) -> Call:
    """The async function that fetches and consumes one streamed reply along ``path``."""
    messages, schemas = request["messages"], request["tools"]
    stream_options = {"include_usage": True}
    if path in ("router", "acompletion", "routerllm"):
        from agent.llm.chain import ProviderChain

        chain = ProviderChain(_llm_settings(url))
        await chain.warm()
        if path == "router":

            async def router_call() -> int:
                stream = await chain.router.acompletion(
                    model="primary", messages=messages, tools=schemas, stream=True, num_retries=0,
                    stream_options=stream_options,
                )  # fmt: skip
                return _expect_chunks(sum([1 async for _ in stream]))

            return router_call
        if path == "acompletion":
            import litellm

            params = dict(chain.router.registry().all()[0]["litellm_params"])  # what the Router passes on

            async def acompletion_call() -> int:
                stream = await litellm.acompletion(
                    messages=messages, tools=schemas, stream=True, stream_options=stream_options, **params
                )
                return _expect_chunks(sum([1 async for _ in stream]))

            return acompletion_call
        from livekit.agents import llm

        from agent.call_context import CallContext
        from agent.llm.router_llm import RouterLLM

        lk_tools = _sales_tools()
        router_llm = RouterLLM(
            chain, call=CallContext(tenant_id=TENANT, session_id=uuid.uuid4().hex, call_id="bench-call")
        )
        chat_ctx = llm.ChatContext.empty()
        for message in messages:
            chat_ctx.add_message(role=message["role"], content=message["content"])

        async def routerllm_call() -> int:
            count, text = 0, ""
            async with router_llm.chat(chat_ctx=chat_ctx, tools=lk_tools) as stream:
                async for chunk in stream:
                    count += 1
                    text += (chunk.delta.content or "") if chunk.delta else ""
            await router_llm.settle_streams()  # LiteLLM's end of stream (deferred in a call) is counted
            if text != REPLY:
                raise RuntimeError(f"RouterLLM answered {text!r}, not the provider's reply")
            return count

        return routerllm_call
    if path == "openai":
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=url, api_key="local-no-key", max_retries=0)

        async def openai_call() -> int:
            stream = await client.chat.completions.create(
                model="primary-model", messages=messages, tools=schemas, stream=True,  # type: ignore[arg-type]
                stream_options=stream_options,  # type: ignore[arg-type]
            )  # fmt: skip
            return _expect_chunks(sum([1 async for _ in stream]))

        return openai_call
    if path == "httpx":
        import httpx

        client = httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer local-no-key"}, timeout=10)
        body = {"model": "primary-model", "messages": messages, "tools": schemas, "stream": True,
                "stream_options": stream_options}  # fmt: skip

        async def httpx_call() -> int:
            count = 0
            async with client.stream("POST", "/chat/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        json.loads(line[6:])
                        count += 1
            return _expect_chunks(count)

        return httpx_call
    raise ValueError(f"unknown path {path!r}")


@dataclass
class SimRuntime:
    runtime: Any
    tenant_ids: list[str]
    tmp: tempfile.TemporaryDirectory[str]


async def build_sim_call(llm_urls: list[str], crm_url: str) -> tuple[Call, SimRuntime]:
    """One scripted simulated call per invocation (as bench_throughput's worker runs them)."""
    from agent.app_settings import AppSettings
    from agent.runtime import start_runtime
    from agent.tenants import TenantRegistry
    from bench.bench_throughput import _one_call

    tmp = tempfile.TemporaryDirectory(prefix="bench-peers-outbox-")
    # Under valgrind the production CRM timeouts (2 s / 5 s) would send writes to the outbox and
    # measure the fallback path instead of the call; the LLM deadlines are stretched the same way.
    settings = AppSettings.from_env(
        llm={"chain": _llm_settings(*llm_urls).chain, **SLOW_DEADLINES},
        crm={
            "crm_url": crm_url,
            "calendar_url": None,
            "outbox_path": str(Path(tmp.name) / "o.db"),
            "connect_timeout_s": 120,
            "read_timeout_s": 300,
        },
    )
    tenants = TenantRegistry.from_file(settings.tenants.file)
    runtime = await start_runtime(settings, tenants=tenants)
    state = SimRuntime(runtime, tenants.ids(), tmp)
    counter = iter(range(1_000_000))

    async def sim_call() -> bool:
        index = next(counter)
        tenant = state.tenant_ids[index % len(state.tenant_ids)]
        ok = await _one_call(index, "peers", tenant, runtime, [], turn_timeout_s=1800)
        if not ok:
            raise RuntimeError(f"simulated call {index} failed")
        return ok

    return sim_call, state


# --- what a LiteLLM switch must not break ----------------------------------------------------------


async def check_behaviour(path: str, url: str, fault_url: str, request: dict[str, Any]) -> dict[str, bool]:
    """What the agent needs from the LLM path, checked with the variant's switches on: the reply
    streams (several chunks), the usage chunk arrives, a tool call arrives whole (name + arguments),
    and a provider's HTTP 500 surfaces as an exception our classifier maps to status 500."""
    from agent.llm.chain import ProviderChain
    from agent.llm.errors import classify

    tool_messages = [*request["messages"][:1], {"role": "user", "content": '/tool log_note {"note": "x"}'}]

    async def fetch(router: Any, messages: list[dict[str, Any]]) -> list[Any]:
        stream = await router.acompletion(
            model="primary", messages=messages, tools=request["tools"], stream=True, num_retries=0,
            stream_options={"include_usage": True},
        )  # fmt: skip
        return [chunk async for chunk in stream]

    chain = ProviderChain(_llm_settings(url))
    chunks = await fetch(chain.router, request["messages"])
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    usage = [c.usage for c in chunks if getattr(c, "usage", None)]
    tool_chunks = await fetch(chain.router, tool_messages)
    calls = [tc for c in tool_chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    name = "".join(tc.function.name or "" for tc in calls if tc.function)
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    error_ok = False
    if fault_url:
        try:
            await fetch(ProviderChain(_llm_settings(fault_url)).router, request["messages"])
        except Exception as exc:
            error_ok = classify(exc).status_code == 500
    return {
        "streams": len(chunks) >= 3 and text == REPLY,
        "usage": bool(usage) and int(getattr(usage[-1], "completion_tokens", 0) or 0) > 0,
        "tool_calls": name == "log_note" and json.loads(arguments or "{}") == {"note": "x"},
        "errors_mapped": error_ok,
    }


def _profile_package(file: str) -> str:
    """A package label for a cProfile entry's file (C builtins are ``~``; the stdlib has no
    site-packages in its path)."""
    import re

    from bench._common import REPO_ROOT, package_of

    if file in ("~", "") or file.startswith("<"):
        return "builtins (C calls)"
    if "site-packages" in file:
        return package_of(file)
    stdlib = re.search(r"/lib/python3\.\d+/(?P<rest>.+)$", file)
    if stdlib:
        head = stdlib["rest"].split("/", 1)[0]
        return f"stdlib {head.removesuffix('.py')}"
    try:
        return package_of(str(Path(file).relative_to(REPO_ROOT)))
    except ValueError:
        return package_of(file)


def summarize_profile(profiler: Any, calls: int, top: int = 25) -> dict[str, Any]:
    import pstats

    stats = pstats.Stats(profiler)
    package_of = _profile_package
    total = sum(entry[2] for entry in stats.stats.values()) or 1.0  # type: ignore[attr-defined]
    packages: Counter[str] = Counter()
    functions = []
    for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        packages[package_of(file)] += tottime
        functions.append(
            {
                "name": f"{name} ({package_of(file)}:{Path(file).name}:{line})",
                "calls_per_call": ncalls / calls,
                "self_share": tottime / total,
                "cum_ms_per_call": cumtime * 1000 / calls,
            }
        )
    functions.sort(key=lambda f: f["cum_ms_per_call"], reverse=True)
    return {
        "total_ms_per_call": total * 1000 / calls,
        "packages": [{"name": k, "share": v / total} for k, v in packages.most_common(top)],
        "functions": functions[: top * 4],
    }


# --- the measurement -------------------------------------------------------------------------------


async def _settle() -> None:
    """Let work a call left behind (LiteLLM's logging tasks and thread pool, span processors) finish
    before a block boundary, so a block holds its own calls' work and not the neighbour's."""
    for _ in range(5):
        await asyncio.sleep(0.05)


METRICS_EXPORT = "metrics_export"


async def measure(
    call: Call, warmup: int, blocks: list[tuple[str, int]], handle: Any = None
) -> dict[str, float]:
    """Warm up (not counted), then each block between callgrind markers; returns wall seconds per block.

    With a production ``handle`` exporting over OTLP, each block ends by flushing its spans and logs, so
    the export threads' work for the block's calls is inside the block (metrics are exported on their
    timer, as deployed: a cost per interval, not per call).
    """
    for _ in range(warmup):
        await call()
    await _settle()
    _flush_spans_and_logs(handle)
    markers = Markers()
    seconds: dict[str, float] = {}
    markers.start()
    for label, calls in blocks:
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        await _settle()
        _flush_spans_and_logs(handle)
        seconds[label] = time.perf_counter() - started
        markers.dump(label)
    if handle is not None and handle.otlp_enabled:
        started = time.perf_counter()
        handle.meter_provider.force_flush()  # one periodic metric export, counted on its own
        seconds[METRICS_EXPORT] = time.perf_counter() - started
        markers.dump(METRICS_EXPORT)
    markers.stop()
    return seconds


async def count_emitted(call: Call, sinks: Sinks, calls: int) -> dict[str, Any]:
    """Spans, attributes, events and metric measurements per call, from ``calls`` more calls."""
    sinks.clear()
    measurements = MeasurementCounter()
    for _ in range(calls):
        await call()
    await _settle()
    spans = sinks.spans()
    names: Counter[str] = Counter(span.name for span in spans)
    attribute_keys = sorted({key for span in spans for key in (span.attributes or {})})
    event_names = sorted({event.name for span in spans for event in span.events})
    n = max(1, calls)
    return {
        "spans": len(spans) / n,
        "span_attributes": sum(len(span.attributes or {}) for span in spans) / n,
        "events": sum(len(span.events) for span in spans) / n,
        "event_attributes": sum(len(e.attributes or {}) for span in spans for e in span.events) / n,
        "measurements": sum(measurements.by_instrument.values()) / n,
        "measurements_by_instrument": {k: v / n for k, v in sorted(measurements.by_instrument.items())},
        "metric_series": sinks.metric_series(),
        "span_names": {k: v / n for k, v in sorted(names.items())},
        "attribute_keys": attribute_keys,
        "event_names": event_names,
    }


async def child(args: argparse.Namespace) -> dict[str, Any]:
    if args.switch:
        import litellm

        for switch in args.switch:
            setattr(litellm, switch, True)
    sinks = Sinks()
    watch = FailureWatch()
    handle = install_telemetry(args.telemetry, sinks, args.otlp_url)
    if args.path == "sim" and handle is None:
        # The worker's logging as in production, our telemetry off (OTEL_SDK_DISABLED).
        from telemetry.settings import TelemetrySettings
        from telemetry.setup import setup_telemetry

        setup_telemetry(TelemetrySettings(sdk_disabled=True))
    sim_state: SimRuntime | None = None
    request: dict[str, Any] = {}
    if args.path == "sim":
        call, sim_state = await build_sim_call(args.llm_url, args.crm_url)
    else:
        request = json.loads(args.request.read_text()) if args.request else request_body()
        call = await build_llm_call(args.path, args.llm_url[0], request)
    try:
        chunks = await call()  # first call: lazy set-up, never counted
        if args.profile:
            import cProfile

            for _ in range(args.warmup):
                await call()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.n):
                await call()
            profiler.disable()
            return {"profile": summarize_profile(profiler, args.n)}
        seconds = await measure(call, args.warmup, [("k", args.k), ("n", args.n)], handle)
        if watch.records:
            raise RuntimeError(f"the LLM layer warned during the measured calls: {watch.records[:3]}")
        if sinks.span_exporters:
            emitted = await count_emitted(call, sinks, args.count_calls)
        elif args.otlp_url and handle is not None:
            emitted = await count_exported(call, handle, args.otlp_url, args.count_calls)
        else:
            emitted = {}
        behaviour = (
            await check_behaviour(args.path, args.llm_url[0], args.fault_url, request)
            if args.check and args.path == "router"
            else {}
        )
    finally:
        if sim_state is not None:
            await sim_state.runtime.aclose()
            sim_state.tmp.cleanup()
        if handle is not None and handle.enabled:
            handle.shutdown()
    return {
        "path": args.path,
        "telemetry": args.telemetry,
        "switches": list(args.switch),
        "chunks_per_call": chunks if isinstance(chunks, int) else None,
        "k": args.k,
        "n": args.n,
        "wall_s": seconds,
        "emitted": emitted,
        "behaviour": behaviour,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=PATHS, required=True)
    parser.add_argument("--telemetry", choices=TELEMETRY, default="none")
    parser.add_argument("--switch", action="append", default=[], choices=SWITCHES)
    parser.add_argument("--llm-url", action="append", required=True, help="provider base URL with /v1")
    parser.add_argument("--crm-url", default="")
    parser.add_argument("--otlp-url", default="", help="the loopback OTLP sink (telemetry production-otlp)")
    parser.add_argument("--request", type=Path, default=None, help="request_body() as JSON (else built here)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--count-calls", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="check usage / tool calls / error mapping")
    parser.add_argument("--fault-url", default="", help="a provider answering 500 (for --check)")
    parser.add_argument("--profile", action="store_true", help="cProfile n calls instead (run natively)")
    parser.add_argument("--result-out", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write_result(args.result_out, asyncio.run(child(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- the parent's side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One row: a label, the child's path/telemetry/switches, and the row its extra cost is taken from."""

    label: str
    path: str
    telemetry: str = "none"
    switches: tuple[str, ...] = ()
    baseline: str | None = None  # label of the row this one adds to (None: it is a baseline)
    env: tuple[tuple[str, str], ...] = ()  # extra environment of the child (e.g. an OTEL_* switch)

    def missing_package(self) -> str | None:
        """The PyPI package this variant needs and this environment lacks, or None."""
        import importlib.util

        module, package = PEER_PACKAGES.get(self.telemetry, (None, None))
        if module is None:
            return None
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        return None if found else package


@dataclass
class Measured:
    variant: Variant
    per_call: float  # instructions per call, block "n"
    per_call_k: float  # the same from block "k" (within-run spread)
    seconds_per_call: float  # wall clock under valgrind (for planning runs only)
    emitted: dict[str, Any]
    behaviour: dict[str, bool] = field(default_factory=dict)  # check_behaviour's results
    dump: Path | None = None  # block "n" dump (for callgrind_annotate)
    calls: int = 1  # calls in block "n" (the dump's divisor)

    @property
    def spread(self) -> float:
        return abs(self.per_call_k - self.per_call) / self.per_call if self.per_call else 0.0


@contextlib.contextmanager
def reply_provider(fault: str = "ok") -> Iterator[str]:
    """The local provider (its own process, so its instructions are not counted) answering every
    request with REPLY (or with ``fault``); yields its base URL with /v1."""
    from local_services.harness import spawn

    with spawn("llm-provider", "--reply", REPLY, "--fault", fault, env=child_env()) as provider:
        yield f"{provider.url}/v1"


# Starts what one child alone talks to and writes to: yields (CRM url, OTLP sink url).
ChildServices = Callable[[], contextlib.AbstractContextManager[tuple[str, str]]]


def run_variants(
    variants: list[Variant],
    *,
    llm_urls: list[str],
    child_services: ChildServices | None = None,
    warmup: int,
    k: int,
    n: int,
    jobs: int,
    workdir: Path,
    fault_url: str = "",
    timeout_s: float = 3600,
) -> dict[str, Measured]:
    """Each variant in its own child under callgrind (``jobs`` at a time: instruction counts do not
    depend on what runs beside them, as long as the children share no state); returns the measured
    ones by label (skipped ones are absent).

    ``child_services`` starts a CRM and an OTLP sink for each child alone (simulated calls; the LLM
    paths need neither): children that run the same call scripts side by side against one CRM race for
    the same meeting slots, and the loser's call takes another path."""
    from concurrent.futures import ThreadPoolExecutor

    from bench._callgrind import build_helper, run_counted

    helper = build_helper(workdir)
    request_file = workdir / "request.json"
    request_file.write_text(json.dumps(request_body()))

    def one(index: int, variant: Variant) -> Measured:
        services = child_services() if child_services else contextlib.nullcontext(("", ""))
        with services as (crm_url, otlp_url):
            return measure_child(index, variant, crm_url, otlp_url)

    def measure_child(index: int, variant: Variant, crm_url: str, otlp_url: str) -> Measured:
        args = ["--path", variant.path, "--telemetry", variant.telemetry, "--crm-url", crm_url]
        args += ["--request", str(request_file), "--otlp-url", otlp_url]
        if fault_url:
            args += ["--check", "--fault-url", fault_url]
        args += ["--warmup", str(warmup), "--k", str(k), "--n", str(n)]
        for switch in variant.switches:
            args += ["--switch", switch]
        for url in llm_urls:
            args += ["--llm-url", url]
        # No OTEL_SDK_DISABLED here: it would silence the peers' private SDK providers too; the child
        # switches our own telemetry off by not installing it.
        result, parts = run_counted(
            "bench._llm_variants", args, env=child_env(**dict(variant.env)), helper=helper,
            workdir=workdir / f"v{index}",
            timeout_s=timeout_s,
        )  # fmt: skip
        by_label = {part.label: part for part in parts}
        if "k" not in by_label or "n" not in by_label:
            raise RuntimeError(f"{variant.label}: callgrind wrote no k/n dumps ({[p.label for p in parts]})")
        if METRICS_EXPORT in by_label:
            result["emitted"]["metrics_export_instructions"] = by_label[METRICS_EXPORT].instructions
        return Measured(
            variant,
            per_call=by_label["n"].instructions / n,
            per_call_k=by_label["k"].instructions / k,
            seconds_per_call=result["wall_s"]["n"] / n,
            emitted=result["emitted"],
            behaviour=result.get("behaviour", {}),
            dump=by_label["n"].path,
            calls=n,
        )

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {v.label: pool.submit(one, i, v) for i, v in enumerate(variants)}
        return {label: future.result() for label, future in futures.items()}


def profile_variant(variant: Variant, *, url: str, warmup: int, n: int, workdir: Path) -> dict[str, Any]:
    """cProfile of ``n`` calls of one variant, run natively (Python-level attribution; valgrind's
    counts attribute to the interpreter's C functions)."""
    from bench._callgrind import build_helper, run_counted

    workdir.mkdir(parents=True, exist_ok=True)
    request_file = workdir / "request.json"
    request_file.write_text(json.dumps(request_body()))
    args = ["--path", variant.path, "--telemetry", variant.telemetry, "--llm-url", url]
    args += ["--request", str(request_file), "--warmup", str(warmup), "--n", str(n), "--profile"]
    for switch in variant.switches:
        args += ["--switch", switch]
    result, _ = run_counted(
        "bench._llm_variants", args, env=child_env(), helper=build_helper(workdir), workdir=workdir,
        timeout_s=1800, valgrind=False,
    )  # fmt: skip
    return result["profile"]
