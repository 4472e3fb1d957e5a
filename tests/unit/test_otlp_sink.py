"""bench.bench_export and its OTLP sink (figures only; no timing assertions)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.otlp_sink import run_otlp_sink

ROOT = Path(__file__).resolve().parents[1]


async def test_sink_counts_spans_decoded_from_otlp_protobuf() -> None:
    async with run_otlp_sink() as sink:
        # A private provider (not the global one): the exporter under test talks to the sink over HTTP.
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{sink.url}/v1/traces")))
        tracer = provider.get_tracer("sink-test")

        def emit_spans() -> None:
            for i in range(5):
                with tracer.start_as_current_span(f"span-{i}"):
                    pass
            provider.shutdown()

        await asyncio.to_thread(emit_spans)
        assert sink.stats.spans == 5
        assert sink.stats.trace_requests == 5
        assert sink.stats.bad_requests == 0


def test_export_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_export", "--quick", "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sustained, faults = json.loads(out.read_text())
    assert sustained["rows"] and sustained["verdicts"]
    assert [row[0] for row in faults["rows"]] == ["ok", "down", "hang"]
