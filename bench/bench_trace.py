"""Item 12: the spans of one simulated call as Tempo receives them, and the tree a person reads there.

Issue 13 goal 1 (the readable part). ``sales-agent simulate --calls 1`` runs as its own process with
OTLP/HTTP to a loopback sink served here (``local_services.otlp_sink``), once per trace detail
(``SALES_AGENT_TRACE_DETAIL=debug``: every span; ``turn``: the default span budget). The call's spans
are what the sink decoded from the wire, rebuilt into a tree by parent span id exactly as a tracing
backend does: a span whose parent id is not in the trace is an orphan (Tempo shows it detached).

    python -m bench.bench_trace [--quick] [--json-out PATH]      # --quick: the same (one call is small)
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections import Counter
from typing import Any

from bench._common import REPO_ROOT, Table, bench_arg_parser, child_env, emit, verdict

DETAILS = ("debug", "turn")
SIMULATE_TIMEOUT_S = 300.0
TREE_WIDTH = 150


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return (
        getattr(any_value, kind)
        if kind in ("string_value", "bool_value", "int_value", "double_value")
        else ""
    )


def rebuild_spans(requests: list[Any]) -> list[Any]:
    """OTLP ``ExportTraceServiceRequest`` messages -> SDK ``ReadableSpan`` objects (for trace_view)."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

    kinds = {
        1: SpanKind.INTERNAL,
        2: SpanKind.SERVER,
        3: SpanKind.CLIENT,
        4: SpanKind.PRODUCER,
        5: SpanKind.CONSUMER,
    }
    codes = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
    spans = []
    for request in requests:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    trace_id = int.from_bytes(span.trace_id, "big")
                    parent = None
                    if span.parent_span_id:
                        parent = SpanContext(
                            trace_id, int.from_bytes(span.parent_span_id, "big"), is_remote=False
                        )
                    spans.append(
                        ReadableSpan(
                            name=span.name,
                            context=SpanContext(
                                trace_id, int.from_bytes(span.span_id, "big"), is_remote=False
                            ),
                            parent=parent,
                            attributes={kv.key: _value(kv.value) for kv in span.attributes},
                            events=[Event(e.name, {}, e.time_unix_nano) for e in span.events],
                            kind=kinds.get(span.kind, SpanKind.INTERNAL),
                            status=Status(codes.get(span.status.code, StatusCode.UNSET)),
                            start_time=span.start_time_unix_nano,
                            end_time=span.end_time_unix_nano,
                        )
                    )
    return spans


def call_trace(spans: list[Any], root_name: str = "sales_call") -> list[Any]:
    """The spans of the trace whose root is the call's span (other traces: outbox drains, probes)."""
    roots = [s for s in spans if s.name == root_name]
    if not roots:
        raise RuntimeError(f"no {root_name} span among {len(spans)} exported spans")
    trace_id = roots[0].context.trace_id
    return [s for s in spans if s.context.trace_id == trace_id]


def orphans(spans: list[Any]) -> list[str]:
    ids = {s.context.span_id for s in spans}
    return [s.name for s in spans if s.parent is not None and s.parent.span_id not in ids]


async def _one_call(detail: str) -> list[Any]:
    from local_services.otlp_sink import run_otlp_sink

    async with run_otlp_sink(keep=10_000) as sink:
        env = child_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.url,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            SALES_AGENT_TRACE_DETAIL=detail,
            LIVEKIT_TELEMETRY_ALLOW_PII=None,
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "simulate",
            "--calls",
            "1",
            "--concurrency",
            "1",
            cwd=REPO_ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), SIMULATE_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(
                f"simulate exited {proc.returncode}:\n{output.decode(errors='replace')[-2000:]}"
            )
        # simulate flushes its telemetry before it exits: every span has arrived.
        return rebuild_spans(list(sink.received.traces))


def render_text(spans: list[Any]) -> str:
    from rich.console import Console

    from agent.simulate.trace_view import render_trace

    out = io.StringIO()
    Console(file=out, width=TREE_WIDTH, color_system=None, highlight=False).print(render_trace(spans))
    return out.getvalue()


def run(_quick: bool) -> list[Table]:
    from telemetry.span_budget import DROPPED_BY_DEFAULT

    traces = {detail: call_trace(asyncio.run(_one_call(detail))) for detail in DETAILS}
    counts = {detail: Counter(s.name for s in spans) for detail, spans in traces.items()}
    turns = counts["turn"]["agent_turn"]
    table = Table(
        "12a. Spans of one simulated call, as the OTLP sink decoded them (8 turns)",
        ["span", "trace detail debug", "trace detail turn (default)", "why left out"],
    )
    names = sorted(set(counts["debug"]) | set(counts["turn"]), key=lambda n: (-counts["debug"][n], n))
    for name in names:
        table.add(name, counts["debug"][name], counts["turn"][name], DROPPED_BY_DEFAULT.get(name, ""))
    totals = {detail: sum(c.values()) for detail, c in counts.items()}
    lost = {detail: orphans(spans) for detail, spans in traces.items()}
    table.add("total", totals["debug"], totals["turn"], "")
    table.add("orphans (parent id not in the trace)", len(lost["debug"]), len(lost["turn"]), "")
    leaked = sorted(set(counts["turn"]) & set(DROPPED_BY_DEFAULT))
    ok = not lost["turn"] and not leaked and totals["turn"] < totals["debug"]
    table.verdicts.append(
        verdict(
            "span budget: LiveKit's internals left out, no orphan spans (decoded OTLP, one call)",
            ok,
            f"{totals['debug']} -> {totals['turn']} spans per call ({totals['turn'] / max(1, turns):.1f} per "
            f"turn), {len(lost['turn'])} orphans"
            + (f", still exported: {', '.join(leaked)}" if leaked else ""),
        )
    )
    table.notes.append(
        "The 'turn' column is what ships: a turn keeps `agent_turn`, per LLM step our `chat <model>` "
        "attempt span(s), and per tool our tool span -> `crm.*`/`calendar.*` -> HTTP client -> CRM server "
        "span; a call adds `session_start` and `session_close` (telemetry/README.md, span budget)."
    )
    tree = Table(
        "12b. The trace of one simulated call as a person sees it (trace detail turn: names, nesting, "
        "durations)",
        [],
    )
    tree.preformatted = render_text(traces["turn"])
    tree.notes.append(
        "Rebuilt by parent span id from the spans the sink decoded (`python -m bench.bench_trace`); "
        "rendered by `agent/simulate/trace_view.py`, the same view as `sales-agent simulate --show-trace`."
    )
    return [table, tree]


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    emit(run(args.quick), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
