"""Issue 13 goal 3: the LLM path itself. The same streamed reply through the Router vs a direct stream.

Every row fetches the same 14-chunk reply from the same local provider (its own process) with no
telemetry, each in its own child under callgrind (``bench._callgrind``): instructions per call, all
threads. The rows are the direct streams (raw httpx SSE, the ``openai`` SDK), ``litellm.acompletion``
without the Router, the Router as ``ProviderChain`` builds it, the Router with each of LiteLLM's
documented module-level switches, with all the safe ones together, and the agent's whole LLM path
(``RouterLLM.chat()``). With each switch on, the child also checks what the agent needs from the path:
the reply streams, the usage chunk arrives, a tool call arrives whole, and a provider's 500 is mapped
to status 500 by our classifier. Then two profiles of the Router path: callgrind's instructions per
shared object (native code vs interpreted Python) and cProfile's Python stages (natively, not under
valgrind).

    python -m bench.bench_llm_path [--quick] [--variants router,openai] [--jobs 2] [--json-out F]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._callgrind import by_object, unavailable_reason
from bench._common import Table, bench_arg_parser, emit, verdict
from bench._llm_variants import SWITCHES, Measured, Variant, profile_variant, reply_provider, run_variants

GOAL_RATIO = 2.0  # the Router path <= 2x the direct stream
# The switches that keep everything the agent needs (see the table's "safe" column and RESULTS.md).
SAFE_SWITCHES = ("suppress_debug_info", "turn_off_message_logging", "disable_streaming_logging")

ROWS: dict[str, Variant] = {
    "httpx": Variant("direct: raw httpx SSE + json.loads", "httpx"),
    "openai": Variant("direct: openai SDK AsyncOpenAI stream", "openai"),
    "acompletion": Variant("litellm.acompletion (no Router)", "acompletion", baseline="router"),
    "router": Variant("Router.acompletion (as ProviderChain builds it)", "router"),
    **{
        switch: Variant(f"Router + litellm.{switch} = True", "router", switches=(switch,), baseline="router")
        for switch in SWITCHES
    },
    "safe": Variant(
        "Router + the safe switches together", "router", switches=SAFE_SWITCHES, baseline="router"
    ),
    "routerllm": Variant("RouterLLM.chat (the agent's whole LLM path)", "routerllm", baseline="router"),
}
QUICK_KEYS = ("httpx", "openai", "router", "safe")
FULL, QUICK = (2, 3, 8), (1, 1, 2)

COLUMNS = [
    "path",
    "M instr/call",
    "vs openai SDK",
    "vs httpx",
    "saved vs Router (M)",
    "k vs n",
    "streams",
    "usage",
    "tool calls",
    "errors mapped",
]


def _check(m: Measured, key: str) -> str:
    if not m.behaviour:
        return ""
    return "ok" if m.behaviour.get(key) else "BROKEN"


def build_table(measured: dict[str, Measured], chosen: list[str], sizes: tuple[int, int, int]) -> Table:
    table = Table(
        "9. The LLM path: one streamed reply (14 chunks), instructions per call (callgrind)", COLUMNS
    )
    openai, httpx, router = measured.get("openai"), measured.get("httpx"), measured.get("router")
    for key in chosen:
        m = measured.get(key)
        if m is None:
            continue
        saved = (
            f"{(router.per_call - m.per_call) / 1e6:+.2f}"
            if router and m.variant.baseline == "router"
            else ""
        )
        table.add(
            m.variant.label,
            m.per_call / 1e6,
            f"{m.per_call / openai.per_call:.2f}x" if openai else "",
            f"{m.per_call / httpx.per_call:.2f}x" if httpx else "",
            saved,
            f"{m.spread:.1%}",
            _check(m, "streams"),
            _check(m, "usage"),
            _check(m, "tool_calls"),
            _check(m, "errors_mapped"),
        )
    # The Router path: the bare Router call, with LiteLLM's safe switches, or as the agent runs it
    # (RouterLLM.chat: our adapter's own work included, LiteLLM's unread end of stream left out).
    best = min(
        (measured[k] for k in ("router", "safe", "routerllm") if k in measured),
        key=lambda m: m.per_call,
        default=None,
    )
    if best is not None and openai is not None:
        ratio = best.per_call / openai.per_call
        table.verdicts.append(
            verdict(
                f"Router path <= {GOAL_RATIO:.0f}x the direct openai SDK stream",
                ratio <= GOAL_RATIO,
                f"{ratio:.2f}x ({best.variant.label}: {best.per_call / 1e6:.1f} M vs "
                f"{openai.per_call / 1e6:.1f} M)",
            )
        )
    warmup, k, n = sizes
    table.notes += [
        f"Sizes: {warmup} warm-up calls, blocks k={k} and n={n}; M instr/call = block n / n, all threads "
        "(LiteLLM's logging thread pool included). k vs n: within-run spread.",
        "saved vs Router: instructions per call the row saves against the plain Router row (+ = cheaper).",
        "streams / usage / tool calls / errors mapped: checked in the same child with the switch on "
        "(text reply in >= 3 chunks; a usage chunk with completion tokens; a tool call's name and JSON "
        "arguments whole; a provider 500 classified as status 500).",
    ]
    return table


# The stages of one Router call worth naming (cProfile function, file), what each does, and whether the
# agent reads its result. Cumulative times nest (a stage may contain another).
STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("_run_steps", "core.py", "Router: route the attempt (Rust core + Python host steps)", "yes: cooldowns"),
    ("wrapper_async", "utils.py", "per-call set-up: Logging object, metadata, callbacks", "no"),
    ("async_streaming", "openai.py", "the request through the openai SDK (headers, SSE)", "yes"),
    ("chunk_creator", "streaming_handler.py", "per chunk: provider chunk -> ModelResponseStream", "yes"),
    ("_accumulate_streamed_delta", "streaming_handler.py", "per chunk: text so far, for rules", "no"),
    ("post_call_rules", "", "per chunk: post-call rules (none configured)", "no"),
    ("_async_build_complete_streaming_response", "streaming_handler.py",
     "end of stream: rebuild the whole response from the chunks", "usage only"),
    ("model_copy", "main.py", "end of stream: deep copy of that response for the cache task", "no"),
    ("dispatch_success_handlers", "litellm_logging.py", "success logging with no callback registered", "no"),
    ("response_cost_calculator", "litellm_logging.py", "cost lookup for the logging payload", "no"),
)  # fmt: skip


def object_table(measured: dict[str, Measured]) -> Table | None:
    """Self instructions per shared object: is LiteLLM's cost native code or Python bytecode?"""
    rows = [key for key in ("router", "openai", "httpx") if key in measured and measured[key].dump]
    if "router" not in rows:
        return None
    per_object = {key: by_object(measured[key].dump) for key in rows}  # type: ignore[arg-type]
    table = Table(
        "9b. Where the instructions run: self instructions per shared object, M per call (callgrind)",
        ["object", *(measured[key].variant.label.split(" (")[0] for key in rows)],
    )
    for name in list(per_object["router"])[:8]:
        table.add(name, *(per_object[key].get(name, 0) / measured[key].calls / 1e6 for key in rows))
    table.notes.append(
        "libpython = Python bytecode being interpreted (LiteLLM's, the SDKs', asyncio's); native "
        "extensions (pydantic-core, the Rust router core, JSON, aiohttp's parser) are the other rows."
    )
    return table


def stage_table(cprofile: dict[str, Any]) -> Table:
    table = Table(
        "9c. The Router call in Python stages (cProfile, natively): share of the call's time",
        ["stage", "function", "runs per call", "share of call (cumulative)", "agent reads it"],
    )
    total = cprofile["total_ms_per_call"] or 1.0
    for name, file, what, read in STAGES:
        matches = [
            f for f in cprofile["functions"] if f["name"].startswith(f"{name} (") and file in f["name"]
        ]
        if not matches:
            continue
        fn = max(matches, key=lambda f: f["cum_ms_per_call"])
        table.add(what, fn["name"], fn["calls_per_call"], f"{fn['cum_ms_per_call'] / total:.0%}", read)
    packages = ", ".join(f"{p['name']} {p['share']:.0%}" for p in cprofile["packages"][:8])
    table.notes += [
        f"Self time by package: {packages}.",
        "runs per call counts a coroutine once per resumption. Shares are of cProfile's total per call "
        f"({total:.0f} ms with cProfile's own overhead): compare shares, not milliseconds.",
    ]
    return table


def run(quick: bool, keys: list[str] | None = None, jobs: int = 2) -> list[Table]:
    reason = unavailable_reason()
    if reason:
        table = Table("9. The LLM path, in instructions: NOT RUN", [])
        table.notes.append(f"callgrind is unavailable: {reason}")
        return [table]
    chosen = keys or list(QUICK_KEYS if quick else ROWS)
    sizes = QUICK if quick else FULL
    warmup, k, n = sizes
    cprofile = None
    with tempfile.TemporaryDirectory(prefix="bench-llm-path-") as tmp:
        with reply_provider() as url, reply_provider("500") as fault_url:
            measured_by_label = run_variants(
                [ROWS[key] for key in chosen],
                llm_urls=[url], warmup=warmup, k=k, n=n, jobs=jobs, workdir=Path(tmp) / "cg",
                fault_url=fault_url,
            )  # fmt: skip
            if "router" in chosen:
                cprofile = profile_variant(
                    ROWS["router"], url=url, warmup=warmup, n=max(n, 10), workdir=Path(tmp) / "prof"
                )
        measured = {key: measured_by_label[ROWS[key].label] for key in chosen}
        tables = [build_table(measured, chosen, sizes)]
        objects = object_table(measured)  # reads the dumps: before the temporary directory goes
        tables += [objects] if objects else []
        tables += [stage_table(cprofile)] if cprofile else []
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help=f"comma-separated row keys: {', '.join(ROWS)}")
    parser.add_argument("--jobs", type=int, default=2, help="children under callgrind at a time")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.variants.split(",") if k.strip()] or None
    unknown = [k for k in keys or [] if k not in ROWS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(ROWS)}")
    emit(run(args.quick, keys, args.jobs), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
