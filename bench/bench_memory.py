"""Item 4: memory. Sessions through SessionManager, what one live call holds, and memory per worker.

- **sessions**: RSS at baseline (imports + telemetry + manager), after 10,000 sessions created and expired
  through ``SessionManager`` (waves of 1,000 opened, then expired by a sweep on a fake clock), and per
  active session (10,000 held open at once).
- **calls**: what one live call holds: K ``SalesCall`` s started (LiveKit text-mode ``AgentSession`` +
  ``SalesAgent`` + tools + session registration + root span) and held, then closed.
- **worker**: RSS/USS of a fresh process after each import layer (telemetry, livekit.agents, litellm,
  the agent, the Router built) - what every spawned job process pays - and, under LiveKit's default
  Linux model (forkserver with ``preload_modules`` and ``gc.freeze``), the unique memory of a job
  process forked from a preloaded parent.

    python -m bench.bench_memory [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench._common import (
    Table,
    bench_arg_parser,
    child_env,
    emit,
    rss_mb,
    run_child,
    uss_mb,
    verdict,
    write_result,
)

GOAL_GROWTH_MB = 20.0
DUMMY_URL = "http://127.0.0.1:9"  # discard port: never contacted (no turn runs in the calls child)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settle() -> float:
    gc.collect()
    return rss_mb()


# --- child: sessions ------------------------------------------------------------------------------


async def _sessions(total: int, wave: int, hold: int) -> dict[str, Any]:
    from agent.session_settings import SessionSettings
    from agent.sessions import SessionManager
    from agent.tenants import TenantRegistry, TenantSettings
    from telemetry.settings import TelemetrySettings
    from telemetry.setup import setup_telemetry

    setup_telemetry(TelemetrySettings())
    tenants = TenantRegistry.from_file(TenantSettings().file)
    tenant_ids = [t for t in tenants.ids() if (tenants.get(t).sessions.max_sessions or 10**9) >= hold]
    tenant_ids = tenant_ids or tenants.ids()
    settings = SessionSettings(max_sessions=max(hold, wave) + 10)
    clock = FakeClock()
    manager = SessionManager(settings, tenants, clock=clock)
    closed = 0

    async def on_close(_outcome: str) -> None:
        nonlocal closed
        closed += 1

    # First use of every path (metrics instruments, per-tenant attribute sets) belongs to the baseline.
    manager.open("warm", tenant_ids[0], on_close)
    await manager.close("warm", "completed")
    baseline = _settle()

    created = 0
    while created < total:
        for _ in range(min(wave, total - created)):
            manager.open(f"s-{created:06d}", tenant_ids[created % len(tenant_ids)], on_close)
            created += 1
        clock.now += settings.expiry_minutes * 60 + 1  # everything open is now past its hard expiry
        await manager.sweep()
    after_churn = _settle()
    left_open = len(manager)

    before_hold = _settle()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    for i in range(hold):
        manager.open(f"h-{i:06d}", tenant_ids[i % len(tenant_ids)], on_close)
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = _settle()
    traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    clock.now += settings.expiry_minutes * 60 + 1
    await manager.sweep()
    return {
        "baseline_mb": baseline,
        "after_churn_mb": after_churn,
        "created": created,
        "closed_callbacks": closed,
        "left_open": left_open,
        "held": hold,
        "rss_held_delta_mb": held - before_hold,
        "traced_bytes_per_session": traced / max(1, hold),
    }


# --- child: live calls ----------------------------------------------------------------------------


async def _calls(k: int) -> dict[str, Any]:
    import tempfile

    from agent.app_settings import AppSettings
    from agent.call_context import CallContext
    from agent.llm import ProviderConfig
    from agent.runtime import start_runtime
    from agent.sales_call import SalesCall
    from agent.tenants import TenantRegistry
    from telemetry.setup import setup_telemetry

    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        settings = AppSettings.from_env(
            llm={
                "chain": [ProviderConfig(name="local", kind="local", model="m", api_base=f"{DUMMY_URL}/v1")]
            },
            crm={"crm_url": DUMMY_URL, "calendar_url": None, "outbox_path": f"{tmp}/o.db"},
            sessions={"max_sessions": k + 10},
        )
        setup_telemetry(settings.telemetry)
        tenants = TenantRegistry.from_file(settings.tenants.file)
        tenant_id = "acme" if "acme" in tenants.ids() else tenants.ids()[0]
        runtime = await start_runtime(settings, tenants=tenants)
        try:

            def new_call(i: int) -> SalesCall:
                ctx = CallContext(tenant_id=tenant_id, session_id=f"mem-{i}", call_id=f"mem-call-{i}")
                return SalesCall(ctx, runtime.services, greet_on_enter=False)

            warm = new_call(-1)
            await warm.start()
            await warm.aclose()
            del warm
            base = _settle()
            tracemalloc.start()
            snap0 = tracemalloc.take_snapshot()
            calls = [new_call(i) for i in range(k)]
            for call in calls:
                await call.start()
            snap1 = tracemalloc.take_snapshot()
            tracemalloc.stop()
            held = _settle()
            traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
            for call in calls:
                await call.aclose()
            del calls
            await asyncio.sleep(0.1)
            released = _settle()
        finally:
            await runtime.aclose()
    return {
        "k": k,
        "base_mb": base,
        "held_mb": held,
        "released_mb": released,
        "traced_kb_per_call": traced / max(1, k) / 1024,
    }


# --- child: imports and forked job processes -------------------------------------------------------

IMPORT_STEPS = (
    ("interpreter", None),
    ("+ livekit.agents", "livekit.agents"),
    ("+ opentelemetry SDK, telemetry.setup()", "telemetry"),
    ("+ litellm", "litellm"),
    ("+ the agent (agent.sales_call, agent.runtime, agent.crm)", "agent"),
    ("+ agent.worker", "agent.worker"),
    ("+ Router built (build_llm)", "router"),
)


def _import_step(what: str | None) -> str:
    import importlib

    if what is None:
        return ""
    if what == "telemetry":
        from telemetry.settings import TelemetrySettings
        from telemetry.setup import setup_telemetry

        setup_telemetry(TelemetrySettings())
    elif what == "agent":
        for module in ("agent.sales_call", "agent.runtime", "agent.crm", "agent.llm"):
            importlib.import_module(module)
    elif what == "router":
        from agent.llm import LLMSettings, ProviderConfig, build_llm

        build_llm(
            LLMSettings(chain=[ProviderConfig(name="local", kind="local", model="m", api_base=DUMMY_URL)])
        )
    else:
        try:
            importlib.import_module(what)
        except ModuleNotFoundError as exc:
            if exc.name != what:
                raise
            return "module not present"
    return ""


def _imports() -> dict[str, Any]:
    steps = []
    for label, what in IMPORT_STEPS:
        started = time.perf_counter()
        note = _import_step(what)
        steps.append(
            {
                "step": label,
                "rss_mb": _settle(),
                "uss_mb": uss_mb(),
                "s": time.perf_counter() - started,
                "note": note,
            }
        )
    return {"steps": steps}


def _forked() -> dict[str, Any]:
    """A forkserver-like parent (everything imported, ``gc.freeze``) and one forked "job" child."""
    for _label, what in IMPORT_STEPS[:-1]:
        _import_step(what)
    gc.collect()
    gc.freeze()  # what livekit.agents.ipc._preload_freeze does in the forkserver
    parent_rss = rss_mb()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the job process: builds its per-job state, then reports its unique memory
        os.close(read_fd)
        try:
            uss_start = uss_mb()
            _import_step("router")
            gc.collect()
            uss_job = uss_mb()
            payload = f"{uss_start} {uss_job} {rss_mb()}".encode()
        except Exception as exc:  # report instead of dying silently
            payload = f"error {type(exc).__name__}: {exc}".encode()
        os.write(write_fd, payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read().decode()
    os.waitpid(pid, 0)
    if data.startswith("error"):
        raise RuntimeError(f"forked child failed: {data}")
    uss_start, uss_job, child_rss = (float(x) for x in data.split())
    return {
        "parent_rss_mb": parent_rss,
        "child_uss_start_mb": uss_start,
        "child_uss_job_mb": uss_job,
        "child_rss_mb": child_rss,
    }


# --- parent ---------------------------------------------------------------------------------------


def run(quick: bool) -> list[Table]:
    total, wave, hold, k = (500, 100, 200, 3) if quick else (10_000, 1_000, 10_000, 50)
    env = child_env()
    sessions = run_child(
        "bench.bench_memory",
        ["--child", "sessions", "--total", str(total), "--wave", str(wave), "--hold", str(hold)],
        env=env,
    )
    calls = run_child("bench.bench_memory", ["--child", "calls", "--k", str(k)], env=env)
    imports = run_child("bench.bench_memory", ["--child", "imports"], env=env)
    forked = run_child("bench.bench_memory", ["--child", "fork"], env=env)

    t1 = Table("4a. Sessions through SessionManager (fresh process, fake clock)", ["measure", "value"])
    growth = sessions["after_churn_mb"] - sessions["baseline_mb"]
    t1.add("RSS baseline (imports + setup_telemetry + manager), MB", sessions["baseline_mb"])
    t1.add(f"RSS after {sessions['created']:,} sessions created and expired, MB", sessions["after_churn_mb"])
    t1.add("growth, MB", growth)
    t1.add("sessions left open after the churn", sessions["left_open"])
    t1.add(
        f"per active session ({sessions['held']:,} held): RSS, KB",
        sessions["rss_held_delta_mb"] * 1024 / sessions["held"],
    )
    t1.add("per active session: traced Python allocations, bytes", sessions["traced_bytes_per_session"])
    t1.verdicts.append(
        verdict(
            f"<= baseline + {GOAL_GROWTH_MB:.0f} MB after {sessions['created']:,} sessions",
            growth <= GOAL_GROWTH_MB,
            f"+{growth:.1f} MB",
        )
    )

    t2 = Table(
        "4b. What one live call holds (SalesCall started: text-mode AgentSession + agent + tools)",
        ["measure", "value"],
    )
    per_call_rss = (calls["held_mb"] - calls["base_mb"]) / calls["k"]
    t2.add("calls held open", calls["k"])
    t2.add("RSS per call, MB", per_call_rss)
    t2.add("traced Python allocations per call, KB", calls["traced_kb_per_call"])
    t2.add(
        "RSS before / with calls / after closing them, MB",
        f"{calls['base_mb']:.0f} / {calls['held_mb']:.0f} / {calls['released_mb']:.0f}",
    )
    t2.notes.append(
        "Turns add the chat history and in-flight LLM streams on top; see item 3's peak RSS by concurrency."
    )

    t3 = Table(
        "4c. Memory per worker process (fresh interpreter, cumulative import layers)",
        ["layer", "RSS MB", "USS MB", "seconds", "note"],
    )
    for step in imports["steps"]:
        t3.add(step["step"], step["rss_mb"], step["uss_mb"], step["s"], step["note"])
    full_rss = imports["steps"][-1]["rss_mb"]
    t3.notes.append(
        f"After its first call starts, a process holds {calls['base_mb']:.0f} MB (4b): livekit's "
        "AgentSession loads its local end-of-turn model (livekit.agents.inference.eot, native memory) "
        "on the first session start, even in text mode."
    )
    t3.notes.append(
        "Spawned job process (LiveKit `multiprocessing_context='spawn'`, or any fresh worker): "
        f"~{full_rss:.0f} MB each before its first call."
    )
    t3.notes.append(
        "Forkserver (LiveKit's Linux default) with everything preloaded + gc.freeze: parent "
        f"{forked['parent_rss_mb']:.0f} MB RSS; a forked job process holds "
        f"{forked['child_uss_start_mb']:.1f} MB unique at fork and {forked['child_uss_job_mb']:.1f} MB "
        f"unique after building its Router (its RSS {forked['child_rss_mb']:.0f} MB is mostly shared pages)."
    )
    t3.notes.append(
        "Per worker = main process + forkserver + (idle + active job processes) x per-job unique memory; "
        "only modules in WorkerOptions(preload_modules=...) (plus plugins) are shared, "
        "the rest each job imports itself."
    )
    return [t1, t2, t3]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = bench_arg_parser(__doc__.splitlines()[0])
    hidden = argparse.SUPPRESS
    parser.add_argument(
        "--child", choices=("sessions", "calls", "imports", "fork"), default=None, help=hidden
    )
    parser.add_argument("--total", type=int, default=10_000, help=hidden)
    parser.add_argument("--wave", type=int, default=1_000, help=hidden)
    parser.add_argument("--hold", type=int, default=1_000, help=hidden)
    parser.add_argument("--k", type=int, default=20, help=hidden)
    parser.add_argument("--result-out", type=Path, default=None, help=hidden)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "sessions":
            result = asyncio.run(_sessions(args.total, args.wave, args.hold))
        elif args.child == "calls":
            result = asyncio.run(_calls(args.k))
        elif args.child == "imports":
            result = _imports()
        else:
            result = _forked()
        write_result(args.result_out, result)
        sys.stdout.flush()
        os._exit(0)
    emit(run(args.quick), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
