"""Issue 13 goal 2: our LLM instrumentation against the peers, on the same call, in CPU instructions.

The same streamed reply (the local provider in its own process, 14 chunks, the agent's instructions
and tool schemas in the request) is fetched bare and under each instrumentation, and one scripted
simulated call is run bare, with our telemetry and with each peer. Every row is its own child under
callgrind (``bench._callgrind``): instructions per call with start-up and warm-up excluded, all threads
included, exporters in memory (span export = a list append, inside the figure; metric collection after
the measured blocks, outside it). Spans, attributes, events and metric measurements per call are
counted in the same child after the measured blocks.

Rows (``--variants`` takes the keys):
  bare            ``Router.acompletion(stream=True)`` as the ProviderChain builds it, no telemetry
  litellm-otel    + LiteLLM's built-in OpenTelemetry callback, its defaults (traces only)
  litellm-otel-m  + the same callback with its metrics on
  openllmetry     + opentelemetry-instrumentation-litellm (OpenLLMetry)
  openinference   + openinference-instrumentation-litellm (OpenInference)
  ours-off        ``RouterLLM.chat()`` (the agent's LLM path: LiveKit stream + our adapter), no SDK
  ours            + our attempt span, metrics and fallback events (LiveKit's own spans off)
  ours-lk         + LiveKit's llm_request / llm_request_run spans as well
  ours-prod       + everything ``setup_telemetry`` installs in the worker (redaction, views, wiring)
  bare-again      ``bare`` again: an A/A control, the method's noise
  sim-*           one simulated call (LLM turns + tools + CRM): off, ours (production), ours without
                  LiveKit's spans, and each peer alone (our telemetry off)

The peers are a dependency group (``uv sync --group bench-peers``); a peer that is not installed is
listed as skipped, never failed.

    python -m bench.bench_peers [--quick] [--variants bare,ours-off,ours] [--jobs 2] [--json-out F]
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench._callgrind import unavailable_reason
from bench._common import Table, bench_arg_parser, child_env, emit, verdict
from bench._llm_variants import Measured, Variant, reply_provider, run_variants
from local_services.harness import spawn

LLM_ROWS: dict[str, Variant] = {
    "bare": Variant("(a) bare: Router.acompletion", "router"),
    "litellm-otel": Variant("(c) LiteLLM otel callback (traces)", "router", "litellm-otel", baseline="bare"),
    "litellm-otel-m": Variant(
        "(c') LiteLLM otel callback + metrics", "router", "litellm-otel-metrics", baseline="bare"
    ),
    "openllmetry": Variant("(d) OpenLLMetry", "router", "openllmetry", baseline="bare"),
    "openinference": Variant("(e) OpenInference", "router", "openinference", baseline="bare"),
    "ours-off": Variant("(b0) RouterLLM, telemetry off", "routerllm"),
    "ours": Variant("(b) ours: RouterLLM spans + metrics", "routerllm", "ours", baseline="ours-off"),
    "ours-lk": Variant(
        "(b') ours + LiveKit's llm_request spans", "routerllm", "ours+livekit", baseline="ours-off"
    ),
    "ours-prod": Variant(
        "(b'') ours, production setup_telemetry", "routerllm", "production", baseline="ours-off"
    ),
    "bare-again": Variant("(a) bare again (A/A control)", "router", baseline=None),
}


def _shipped(what: str, **env: str) -> Variant:
    """A simulated call with telemetry as shipped (OTLP/HTTP to the loopback sink), ``env`` set."""
    switches = ", ".join(f"{k}={v}" for k, v in env.items())
    label = f"(b') as shipped, {what} ({switches})" if env else what
    return Variant(label, "sim", "production-otlp", baseline="sim-off", env=tuple(env.items()))


SIM_ROWS: dict[str, Variant] = {
    "sim-off": Variant("(a) simulated call, telemetry off", "sim"),
    "sim-ours": Variant("(b) ours: production telemetry", "sim", "production", baseline="sim-off"),
    "sim-ours-otlp": _shipped("(b') ours as shipped: OTLP/HTTP export to a loopback sink"),
    # What the shipped cost is made of: no spans recorded (metrics and logs only), and spans recorded
    # but not exported.
    "sim-ours-nospans": _shipped("no spans recorded", OTEL_TRACES_SAMPLER="always_off"),
    "sim-ours-noexport": _shipped("spans recorded but not exported", OTEL_TRACES_EXPORTER="none"),
    "sim-litellm-otel": Variant("(c) LiteLLM otel callback", "sim", "litellm-otel", baseline="sim-off"),
    "sim-openllmetry": Variant("(d) OpenLLMetry", "sim", "openllmetry", baseline="sim-off"),
    "sim-openinference": Variant("(e) OpenInference", "sim", "openinference", baseline="sim-off"),
}
PEER_KEYS = ("litellm-otel", "litellm-otel-m", "openllmetry", "openinference")
QUICK_KEYS = ("bare", "litellm-otel", "openllmetry", "openinference", "ours-off", "ours")
# Sizes: (warm-up calls, block k, block n). An LLM call is ~70 M instructions (~4 s under callgrind),
# a simulated call ~10x that.
FULL_LLM, QUICK_LLM = (2, 3, 8), (1, 1, 2)
FULL_SIM = (1, 1, 3)  # the first call (lazy set-up) is never counted either; n=3: one call alone
# moved by up to ~3 % between runs (a full garbage collection lands in one block or the next)

COLUMNS = [
    "variant",
    "M instr/call",
    "vs bare",
    "added M instr/call",
    "k vs n",
    "spans",
    "attributes",
    "events",
    "metric measurements",
    "tenant",
    "cost",
]


def _recorded(emitted: dict[str, object], needle: str) -> str:
    keys = [*emitted.get("attribute_keys", []), *emitted.get("measurements_by_instrument", {})]  # type: ignore[misc]
    return "yes" if any(needle in str(key) for key in keys) else "no"


def _rows(table: Table, rows: dict[str, Variant], measured: dict[str, Measured], bare_key: str) -> None:
    bare = measured.get(bare_key)
    for key, variant in rows.items():
        if key not in measured:
            missing = variant.missing_package()
            if missing:
                table.add(variant.label, f"skipped: {missing} not installed", *[""] * (len(COLUMNS) - 2))
            continue
        m = measured[key]
        base = measured.get(variant.baseline or "")
        added = f"{(m.per_call - base.per_call) / 1e6:+.2f}" if base else ""
        e = m.emitted
        table.add(
            variant.label,
            m.per_call / 1e6,
            f"{m.per_call / bare.per_call:.3f}x" if bare else "",
            added,
            f"{m.spread:.1%}",
            e.get("spans", 0),
            e.get("span_attributes", 0) + e.get("event_attributes", 0),
            e.get("events", 0),
            e.get("measurements", 0),
            _recorded(e, "tenant") if e else "no",
            _recorded(e, "cost") if e else "no",
        )


def _added(measured: dict[str, Measured], rows: dict[str, Variant], key: str) -> float | None:
    m, variant = measured.get(key), rows[key]
    base = measured.get(variant.baseline or "")
    return None if m is None or base is None else m.per_call - base.per_call


def verdicts(measured: dict[str, Measured]) -> list[str]:
    ours = _added(measured, LLM_ROWS, "ours")
    peers = {k: _added(measured, LLM_ROWS, k) for k in PEER_KEYS}
    peers = {k: v for k, v in peers.items() if v is not None}
    if ours is None or not peers:
        return []
    cheapest = min(peers, key=lambda k: peers[k])
    ok = ours <= peers[cheapest]
    detail = (
        f"ours adds {ours / 1e6:+.2f} M instructions per streamed LLM call, the cheapest peer "
        f"({LLM_ROWS[cheapest].label.split(') ', 1)[-1]}) {peers[cheapest] / 1e6:+.2f} M"
    )
    return [verdict("ours adds <= the cheapest peer (instructions per LLM call)", ok, detail)]


@contextlib.contextmanager
def own_crm_and_sink() -> Iterator[tuple[str, str]]:
    """A CRM on a fresh database and an OTLP sink for one simulated-call child alone.

    The children run two at a time with the same call scripts. Sharing one CRM, the slower child (the
    one with telemetry) lost the race for a meeting slot to the faster one, its call took the "slot no
    longer available" path with extra turns, and its instructions per call came out up to ~10 M higher
    than the same code's; sharing one sink mixed the two children's span counts (bench/RESULTS.md,
    "Item 8b's children no longer share a CRM")."""
    from bench.bench_throughput import crm_stand_in

    with crm_stand_in() as crm_url, spawn("otlp-sink", env=child_env()) as sink:
        yield crm_url, sink.url


def run(
    quick: bool, keys: list[str] | None = None, jobs: int = 2, with_sim: bool | None = None
) -> list[Table]:
    reason = unavailable_reason()
    if reason:
        table = Table("8. Against the peers, in instructions: NOT RUN", [])
        table.notes.append(f"callgrind is unavailable: {reason}")
        return [table]
    chosen = keys or list(QUICK_KEYS if quick else LLM_ROWS)
    with_sim = (not quick and keys is None) if with_sim is None else with_sim
    llm_variants = [k for k in chosen if k in LLM_ROWS and LLM_ROWS[k].missing_package() is None]
    sim_variants = [k for k in (chosen if keys else SIM_ROWS) if k in SIM_ROWS] if with_sim else []
    sim_variants = [k for k in sim_variants if SIM_ROWS[k].missing_package() is None]
    warmup, k, n = QUICK_LLM if quick else FULL_LLM
    measured: dict[str, Measured] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        with reply_provider() as url:
            results = run_variants(
                [LLM_ROWS[key] for key in llm_variants],
                llm_urls=[url], warmup=warmup, k=k, n=n, jobs=jobs, workdir=Path(tmp) / "llm",
            )  # fmt: skip
            measured.update({key: results[LLM_ROWS[key].label] for key in llm_variants})
        if sim_variants:
            from bench.bench_throughput import llm_stand_ins

            sw, sk, sn = FULL_SIM
            with llm_stand_ins() as llm_urls:
                results = run_variants(
                    [SIM_ROWS[key] for key in sim_variants],
                    llm_urls=[f"{u}/v1" for u in llm_urls], child_services=own_crm_and_sink,
                    warmup=sw, k=sk, n=sn, jobs=jobs, workdir=Path(tmp) / "sim",
                )  # fmt: skip
                measured.update({key: results[SIM_ROWS[key].label] for key in sim_variants})

    llm_table = Table(
        "8. Against the peers: one streamed LLM call (14 chunks), instructions per call (callgrind)", COLUMNS
    )
    _rows(llm_table, {k: v for k, v in LLM_ROWS.items() if k in chosen}, measured, "bare")
    llm_table.verdicts.extend(verdicts(measured))
    llm_table.notes += [
        f"Sizes: {warmup} warm-up calls (not counted), then blocks of k={k} and n={n} calls between "
        "callgrind markers; M instr/call = block n / n (all threads). k vs n = how far block k's "
        "per-call figure lies from block n's (within-run spread).",
        "vs bare: per-call instructions / the bare Router call. added: over the row's own uninstrumented "
        "path (peers over (a); ours over (b0), since our spans live in the RouterLLM adapter).",
        "spans / attributes (span + event attributes) / events / metric measurements (counter adds and "
        "histogram records) per call, counted in the same child after the measured blocks. tenant / cost: "
        "an attribute or instrument naming them. Fallback events appear only on a call that falls back.",
    ]
    tables = [llm_table]
    if sim_variants:
        sim_table = Table(
            "8b. Against the peers: one simulated call, instructions per call (callgrind)", COLUMNS
        )
        _rows(sim_table, SIM_ROWS, measured, "sim-off")
        shipped = measured.get("sim-ours-otlp")
        export = shipped.emitted.get("metrics_export_instructions") if shipped else None
        if export:
            sim_table.notes.append(
                f"(b') exports its metrics on a timer (OTEL_METRIC_EXPORT_INTERVAL, 15 s), not per call: one "
                f"export (every instrument's points, system metrics, OTLP encoding) counted on its own: "
                f"{export / 1e6:.1f} M instructions; its spans and logs are exported inside each block."
            )
        sim_table.notes.append(
            f"Sizes: {FULL_SIM[0]} warm-up call, blocks of k={FULL_SIM[1]} and n={FULL_SIM[2]} scripted "
            "calls (several LLM turns, tool calls, CRM writes each). Peers run with our telemetry off."
        )
        tables.append(sim_table)
    if "bare" in measured and "bare-again" in measured:
        a, b = measured["bare"].per_call, measured["bare-again"].per_call
        llm_table.notes.append(f"A/A control: bare vs bare again differ by {abs(a - b) / a:.2%}.")
    slowest = max((m.seconds_per_call for m in measured.values()), default=0.0)
    llm_table.notes.append(f"Wall clock under callgrind: up to {slowest:.1f} s per call (planning only).")
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help="comma-separated row keys (default: all / quick set)")
    parser.add_argument("--jobs", type=int, default=2, help="children under callgrind at a time")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.variants.split(",") if k.strip()] or None
    unknown = [k for k in keys or [] if k not in LLM_ROWS and k not in SIM_ROWS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join([*LLM_ROWS, *SIM_ROWS])}")
    tables = run(args.quick, keys, args.jobs, with_sim=any(k in SIM_ROWS for k in keys) if keys else None)
    emit(tables, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
