"""Item 6 (issue 13 goal 4): start-up against the goal, and what dominates it.

The goal, measured from the moment the command is spawned, as a user sees it:

- ``sales-agent simulate --calls 1`` (through ``uv run`` when uv is on PATH, as the README says to
  run it): its first line within 1 s, its first call started within 5 s (the line ``simulate: ready:
  the first call starts now``), each stage's line timed as it arrives on the pipe;
- ``sales-agent start`` (the LiveKit worker, production defaults, thread executor): its first job
  accepted within 3 s. There is no livekit-server here, so a fake one (``bench/_fake_livekit.py``)
  speaks the agent protocol: it registers the worker, offers one job and times the worker's answer;
  the worker's log line says when its warm-up (LiteLLM and the call modules, loaded after it
  registered) is done, from which on a call starts without waiting.

Then the diagnosis: wall clock of fresh interpreters importing each layer (median of several runs),
the worker's ready path stage by stage (spawn to each stage, as ``run_worker`` does it before it
registers), and ``python -X importtime`` of that path grouped by top-level package. Every table
says the load average it ran under (the CPU is shared) and whether LiteLLM's bytecode was compiled
(without it every import compiles ~10k sources: about twice as slow).

    python -m bench.bench_startup [--quick]
    python -m bench.bench_startup --baseline PATH [--repeats N]   # beside another checkout
"""

from __future__ import annotations

import importlib.util
import os
import re
import resource
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT, Table, bench_arg_parser, child_env, emit, median, verdict

GOAL_FIRST_LINE_S = 1.0
GOAL_FIRST_CALL_S = 5.0
GOAL_WORKER_FIRST_JOB_S = 3.0

# (label, statement) in layering order; modules that don't exist (yet) are reported as such.
IMPORT_CASES = (
    ("interpreter only", "pass"),
    ("telemetry.config_errors (every command's run_main)", "import telemetry.config_errors"),
    ("agent.simulate.command (what simulate imports before its first line)", "import agent.simulate.command"),
    ("opentelemetry sdk + telemetry.setup", "import telemetry.setup"),
    ("livekit.agents", "import livekit.agents"),
    ("litellm", "import litellm"),
    ("agent.error_handling", "import agent.error_handling"),
    ("agent.crm", "import agent.crm"),
    ("agent.llm", "import agent.llm"),
    ("agent.cli (the console script)", "import agent.cli"),
    ("agent.worker (the job entrypoint)", "import agent.worker"),
    (
        "CRM service process: import + setup_telemetry() as it starts (no livekit wiring)",
        "import sys, local_services.crm_service; from telemetry import TelemetrySettings, setup_telemetry; "
        "setup_telemetry(TelemetrySettings(), wire_livekit=False); "
        "assert not {m.split('.')[0] for m in sys.modules} & {'litellm', 'livekit'}",
    ),
)

# What "ready" means offline: everything the worker process does before livekit's CLI registers it with
# the LiveKit server (telemetry, speech plugins, its services' modules, LiveKit's own job-thread warm-up,
# options, the per-job-thread ``prewarm``: livekit registers once its idle job threads are warm), then
# what it does after registering, in the background: the warm-up (LiteLLM and the call modules).
AFTER_REGISTERING = "+ after registering: warm-up (LiteLLM and the call modules)"
READY_SCRIPT = r"""
import asyncio, json, os, sys, time
t0 = float(sys.argv[1])
stages = {}
def mark(name):
    stages[name] = time.time() - t0
import agent.worker as worker
mark("import agent.worker")
from agent.app_settings import AppSettings
from agent.tenants import TenantRegistry
from telemetry.setup import setup_telemetry
settings = worker.for_worker(AppSettings.from_env())
worker.configure(settings, TenantRegistry.from_file(settings.tenants.file))
mark("settings + tenants")
setup_telemetry(settings.telemetry)
mark("setup_telemetry")
worker.import_speech_plugins(settings)
mark("speech plugins imported")
worker.prepare_main_thread()
worker.prepare_livekit_environment()
mark("the worker services' modules (health, sessions)")
import livekit.agents.ipc._preload
mark("LiveKit's job-thread warm-up (ipc._preload: av, rtc library, openai SDK resources)")
worker.worker_options()
mark("WorkerOptions")
from agent.speech.silero_batch import BatchedSileroVAD
BatchedSileroVAD.load()
mark("prewarm: silero VAD loaded (per job thread): ready to register")
asyncio.run(worker.start_warmup().wait())
mark("AFTER")
print("READY " + json.dumps(stages), flush=True)
os._exit(0)
""".replace('"AFTER"', repr(AFTER_REGISTERING))


def _module_exists(statement: str) -> bool:
    if not statement.startswith("import ") or ";" in statement:
        return True
    name = statement.split()[1]
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _time_import(statement: str, repeats: int) -> tuple[float | None, str]:
    """Median wall seconds of ``python -c statement`` (spawn to exit), or None + the error."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", statement],
            cwd=REPO_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return None, last[:160]
        times.append(elapsed)
    return median(times), ""


def _time_ready(repeats: int) -> dict[str, Any]:
    """Spawn-to-stage seconds of READY_SCRIPT (medians over ``repeats``)."""
    import json

    if not _module_exists("import agent.worker"):
        return {"error": "agent.worker does not exist yet"}
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-c", READY_SCRIPT, repr(started)],
            cwd=REPO_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("READY ")), None)
        if line is None:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": last[:200]}
        runs.append(json.loads(line.removeprefix("READY ")))
    return {"stages": {name: median([r[name] for r in runs]) for name in runs[0]}}


# The imports of 6b before registering, as one statement for -X importtime (imports done inside
# functions are recorded too): what stays on the path to the first job.
READY_IMPORTS = (
    "import agent.worker as w; from agent.app_settings import AppSettings; "
    "from telemetry.setup import setup_telemetry; s = AppSettings.from_env(); "
    "setup_telemetry(s.telemetry); w.import_speech_plugins(s); w.prepare_main_thread(); "
    "w.prepare_livekit_environment(); "
    "import livekit.agents.ipc._preload; "
    "from agent.speech.silero_batch import BatchedSileroVAD; BatchedSileroVAD.load()"
)

_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def importtime_profile(statement: str) -> dict[str, Any]:
    """``-X importtime`` of ``statement``: self seconds per top-level package and LiteLLM's import chain."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    entries = []  # (depth, module, self_us, cumulative_us) in output order (children before parent)
    for line in proc.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            self_us, cum_us, indent, module = match.groups()
            entries.append((len(indent) // 2, module, int(self_us), int(cum_us)))
    # Self time summed per top-level package: who really spends the time (cumulative figures would
    # charge all of livekit/litellm/... to whichever of our modules happened to import them first).
    by_package: dict[str, float] = {}
    for _depth, module, self_us, _cum_us in entries:
        top = module.split(".")[0]
        by_package[top] = by_package.get(top, 0.0) + self_us / 1e6
    total = sum(by_package.values())
    return {
        "total_s": total,
        "by_package": sorted(by_package.items(), key=lambda kv: kv[1], reverse=True),
        "litellm_importers": importers_of(entries, "litellm"),
        "ok": proc.returncode == 0,
    }


def importers_of(entries: list[tuple[int, str, int, int]], package: str) -> list[str]:
    """Top-level imports that pulled ``package`` in (``package`` itself when imported directly).

    importtime prints a module after its children, deeper ones indented, so a top-level (depth 0)
    entry's subtree is the run of entries since the previous depth-0 one.
    """
    found: list[str] = []
    subtree: list[str] = []
    for depth, module, _self_us, _cum_us in entries:
        if depth > 0:
            subtree.append(module)
            continue
        inside = module == package or module.startswith(package + ".")
        if inside or any(m == package or m.startswith(package + ".") for m in subtree):
            label = package if inside else module
            if label not in found:
                found.append(label)
        subtree = []
    return found


def conditions() -> str:
    """Load average and bytecode state: the two things that move these figures most on this machine."""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    spec = importlib.util.find_spec("litellm")
    compiled = bool(spec and spec.origin and Path(importlib.util.cache_from_source(spec.origin)).exists())
    no_write = os.environ.get("PYTHONDONTWRITEBYTECODE", "") not in ("", "0")
    return (
        f"load average {load} (1/5/15 min) on {os.cpu_count()} CPUs shared with other work; LiteLLM "
        f"bytecode {'compiled' if compiled else 'NOT compiled'}"
        f"{', PYTHONDONTWRITEBYTECODE set' if no_write else ''}"
    )


def launcher() -> tuple[list[str], str]:
    """How a user starts ``sales-agent``: ``uv run`` when uv is here, else the venv's console script."""
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "run", "--frozen", "sales-agent"], "uv run sales-agent"
    script = Path(sys.executable).with_name("sales-agent")
    if script.exists():
        return [str(script)], "sales-agent"
    return [sys.executable, "-m", "agent"], "python -m agent"


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# simulate's lines that mark a stage (``agent/simulate/startup.py`` and ``command.py`` print them).
SIMULATE_STAGES = (
    ("first line", ""),
    ("local services up", "simulate: local services up"),
    ("LiteLLM and LiveKit loaded", "simulate: LiteLLM and LiveKit loaded"),
    ("first call starts", "simulate: ready: the first call starts now"),
    ("summary printed", "simulate: summary"),
)


def time_simulate(command: Sequence[str], timeout_s: float = 300, tree: Path = REPO_ROOT) -> dict[str, float]:
    """Seconds from spawn to each stage line of one ``simulate --calls 1`` run, its exit and CPU time."""
    env = child_env(PYTHONPATH=str(tree))
    env.pop("SALES_AGENT_LOG_LEVEL", None)  # as a user runs it
    cpu_before = _children_cpu_s()
    started = time.monotonic()
    proc = subprocess.Popen(
        [*command, "simulate", "--calls", "1"],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    seen: dict[str, float] = {}
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() - started < timeout_s:
            if not selector.select(timeout=0.5):
                continue
            line = proc.stdout.readline()
            if not line:
                break
            now = time.monotonic() - started
            for stage, marker in SIMULATE_STAGES:
                if stage not in seen and marker in line and (marker or line.strip()):
                    seen[stage] = now
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    seen["exit"] = time.monotonic() - started
    seen["CPU s (user + system)"] = _children_cpu_s() - cpu_before
    if proc.returncode != 0:
        raise RuntimeError(f"simulate exited {proc.returncode}")
    return seen


def worker_env(livekit_url: str, tmp: Path) -> dict[str, str]:
    """Production defaults (deepgram STT, cartesia TTS, silero VAD, thread executor) with dummy keys."""
    chain = '[{"name": "local", "kind": "local", "model": "m", "api_base": "http://127.0.0.1:9/v1"}]'
    return child_env(
        LIVEKIT_URL=livekit_url,
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="bench-secret-bench-secret-bench-secret",
        SALES_AGENT_LLM_CHAIN=chain,
        DEEPGRAM_API_KEY="bench",
        CARTESIA_API_KEY="bench",
        CRM_OUTBOX_PATH=str(tmp / "outbox.sqlite3"),
        SALES_AGENT_LOG_LEVEL=None,
    )


WARMUP_DONE_LINE = "warm-up done: LiteLLM and the call modules loaded"
WARMUP_DONE = "warm-up done: a call starts without waiting"


def time_worker_first_job(
    command: Sequence[str], timeout_s: float = 300, tree: Path = REPO_ROOT
) -> dict[str, Any]:
    """Seconds from spawning ``start`` to: websocket dialled, registered, first job answered, and (a
    tree whose worker loads LiteLLM after registering) its warm-up done, from its log line."""
    from bench._fake_livekit import run_fake_livekit
    from local_services.harness import in_thread

    warms_up = (tree / "agent" / "worker_warmup.py").exists()
    with in_thread(run_fake_livekit) as record, tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        log_path = Path(tmp) / "worker.log"
        env = worker_env(record.url, Path(tmp))
        if tree != REPO_ROOT:
            env["PYTHONPATH"] = str(tree)
        warmed_at: float | None = None
        with log_path.open("w") as log:
            started = time.monotonic()
            proc = subprocess.Popen(
                [*command, "start"],
                cwd=tree,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            try:
                answered = record.answered.wait(timeout_s)
                deadline = time.monotonic() + timeout_s
                while answered and warms_up and time.monotonic() < deadline and proc.poll() is None:
                    if WARMUP_DONE_LINE in log_path.read_text(errors="replace"):
                        warmed_at = time.monotonic()  # within one 20 ms poll of the line
                        break
                    time.sleep(0.02)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        if not answered:
            tail = log_path.read_text(errors="replace")[-600:]
            return {"error": f"no job answer within {timeout_s:.0f} s; worker output: {tail}"}

        def since(at: float | None) -> float | None:
            return None if at is None else at - started

        return {
            "dialled the LiveKit URL": since(record.connected_at),
            "registered": since(record.registered_at),
            "first job answered": since(record.answered_at),
            # Without a warm-up everything is loaded before registering: calls start at once.
            WARMUP_DONE: since(warmed_at) if warms_up else since(record.registered_at),
            "accepted": record.accepted,
        }


WORKER_STAGES = ("dialled the LiveKit URL", "registered", "first job answered", WARMUP_DONE)


def goal_tables(repeats: int) -> list[Table]:
    command, label = launcher()
    sim = Table(
        f"6. Start-up against the goal: `{label} simulate --calls 1`, s from spawn (median of {repeats})",
        ["stage", "s since spawn"],
    )
    sim.notes.append(f"before: {conditions()}")
    runs = [time_simulate(command) for _ in range(repeats)]
    for name in [stage for stage, _ in SIMULATE_STAGES] + ["exit", "CPU s (user + system)"]:
        values = [r[name] for r in runs if name in r]
        sim.add(name, median(values) if values else "not seen")
    figures = {row[0]: row[1] for row in sim.rows}
    first_line, first_call = figures["first line"], figures["first call starts"]
    sim.verdicts.append(
        verdict(
            "simulate's first line within 1 s",
            isinstance(first_line, float) and first_line <= GOAL_FIRST_LINE_S,
            f"{first_line if isinstance(first_line, str) else f'{first_line:.2f} s'}",
        )
    )
    sim.verdicts.append(
        verdict(
            "simulate's first call starts within 5 s",
            isinstance(first_call, float) and first_call <= GOAL_FIRST_CALL_S,
            f"{first_call if isinstance(first_call, str) else f'{first_call:.2f} s'}"
            + (f" ({figures['CPU s (user + system)']:.1f} s of CPU for the whole run)"),
        )
    )
    sim.notes.append(f"after: {conditions()}")

    worker = Table(
        f"6. Start-up against the goal: `{label} start` (LiveKit worker) to its first accepted job, "
        f"against a fake LiveKit server (median of {repeats})",
        ["stage", "s since spawn"],
    )
    worker.notes.append(f"before: {conditions()}")
    jobs = [time_worker_first_job(command) for _ in range(repeats)]
    errors = [j["error"] for j in jobs if "error" in j]
    if errors:
        worker.add("first job answered", "not measured")
        worker.notes.append(errors[0])
        worker.verdicts.append(verdict("worker accepts its first job within 3 s", False, "not measured"))
    else:
        for name in WORKER_STAGES:
            values = [j[name] for j in jobs if j[name] is not None]
            worker.add(name, median(values) if values else "not seen")
        answered = median([j["first job answered"] for j in jobs])
        accepted = all(j["accepted"] for j in jobs)
        worker.verdicts.append(
            verdict(
                "worker accepts its first job within 3 s",
                accepted and answered <= GOAL_WORKER_FIRST_JOB_S,
                f"{answered:.2f} s" + ("" if accepted else " (the job was REJECTED)"),
            )
        )
    worker.notes.append(f"after: {conditions()}")
    return [sim, worker]


def baseline_tables(baseline: Path, repeats: int) -> list[Table]:
    """``simulate --calls 1`` and ``start`` (to its first job) of this tree and of ``baseline`` (another
    checkout), runs alternating.

    Both are started as ``python -m agent`` with the same interpreter and packages (so the same bytecode
    state); a tree that prints no stage lines (before this change) shows only its first line and summary.
    """
    trees = {"this tree": REPO_ROOT, "baseline": baseline}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    jobs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    load_before = conditions()
    command = [sys.executable, "-m", "agent"]
    for _ in range(repeats):
        for name, tree in trees.items():
            runs[name].append(time_simulate(command, tree=tree))
            jobs[name].append(time_worker_first_job(command, tree=tree))
    stages = [stage for stage, _ in SIMULATE_STAGES] + ["exit", "CPU s (user + system)"]
    table = Table(
        f"6. `python -m agent simulate --calls 1`, this tree vs baseline {baseline}, s from spawn "
        f"(median of {repeats}, alternating)",
        ["tree", *stages],
    )
    worker = Table(
        f"6. `python -m agent start` to its first accepted job (fake LiveKit server), this tree vs baseline "
        f"{baseline}, s from spawn (median of {repeats}, alternating with the simulate runs)",
        ["tree", *WORKER_STAGES],
    )
    for name, results in runs.items():
        cells = []
        for stage in stages:
            values = [r[stage] for r in results if stage in r]
            cells.append(median(values) if values else "-")
        table.add(name, *cells)
        errors = [j["error"] for j in jobs[name] if "error" in j]
        if errors:
            worker.add(name, *["not measured"] * len(WORKER_STAGES))
            worker.notes.append(f"{name}: {errors[0]}")
            continue
        cells = []
        for stage in WORKER_STAGES:
            values = [j[stage] for j in jobs[name] if j.get(stage) is not None]
            cells.append(median(values) if values else "-")
        worker.add(name, *cells)
    notes = [f"before: {load_before}", f"after: {conditions()}"]
    table.notes += notes
    worker.notes += [
        "baseline: no warm-up, everything is loaded before registering (its 'warm-up done' = registered)",
        *notes,
    ]
    return [table, worker]


def _explain_worker(worker: Table, stages: Table) -> None:
    """What stays before registration (from 6b, the same path in one process), on the goal line itself."""
    if not worker.verdicts or not stages.rows:
        return
    timed = [(row[0], row[2]) for row in stages.rows if isinstance(row[2], float)]
    before = [(name, took) for name, took in timed if not name.startswith("+ after registering")]
    after = [took for name, took in timed if name.startswith("+ after registering")]
    if not before:
        return
    biggest = sorted(before, key=lambda item: item[1], reverse=True)[:3]
    figures = {row[0]: row[1] for row in worker.rows}
    warmed = figures.get(WARMUP_DONE)
    worker.verdicts[0] += (
        "; before registering (6b, one process): "
        + ", ".join(f"{name} {took:.1f} s" for name, took in biggest)
        + (f"; LiteLLM and the call modules load after registering ({after[0]:.1f} s in 6b)" if after else "")
        + (f", warm-up done at {warmed:.1f} s" if isinstance(warmed, float) else "")
    )
    worker.notes.append(
        "`setup_telemetry` is where livekit.agents is first imported (its tracer wiring): livekit.agents "
        "is the worker itself. LiveKit registers once its idle job threads have run `prewarm` "
        "(`ProcPool.start` waits for them), so their warm-up is on this path too. A job accepted before "
        "the warm-up is done waits for it in its entrypoint (`agent/worker_warmup.py`)."
    )


def run(quick: bool) -> list[Table]:
    repeats = 1 if quick else 3
    goals = goal_tables(repeats)
    t1 = Table(
        "6a. Start-up: fresh interpreter importing each layer (wall clock, spawn to exit)",
        ["what", "seconds (median)", "note"],
    )
    for label, statement in IMPORT_CASES:
        if quick and label not in (
            "interpreter only",
            "agent.simulate.command (what simulate imports before its first line)",
            "agent.cli (the console script)",
        ):
            continue
        if not _module_exists(statement):
            t1.add(label, "-", "module not present")
            continue
        seconds, error = _time_import(statement, repeats)
        t1.add(label, seconds if seconds is not None else "-", error)
    ready = _time_ready(repeats)
    t2 = Table(
        "6b. Worker ready: seconds since process spawn at each stage of agent.worker.run_worker (median)",
        ["stage", "s since spawn", "stage took s"],
    )
    if "error" in ready:
        t2.add("ready", f"not measured: {ready['error']}", "")
    else:
        previous = 0.0
        for stage, at in ready["stages"].items():
            t2.add(stage, at, at - previous)
            previous = at
    if _module_exists("import agent.worker"):
        target, label = READY_IMPORTS, "what the worker imports before registering (6b's stages before it)"
    else:
        target = label = "import agent.error_handling"
    prof = importtime_profile(target)
    t3 = Table(
        f"6c. python -X importtime, {label}: import self time by top-level package",
        ["package", "seconds", "share"],
    )
    for package, seconds in prof["by_package"][:12]:
        t3.add(package, seconds, f"{seconds / (prof['total_s'] or 1):.0%}")
    litellm_s = dict(prof["by_package"]).get("litellm", 0.0)
    if prof["litellm_importers"]:
        t3.notes.append(
            f"LiteLLM ({litellm_s:.2f} s self time here) is pulled in by: "
            + ", ".join(f"`{m}`" for m in prof["litellm_importers"])
            + " (`litellm` = a direct `import litellm`)."
        )
    else:
        t3.notes.append(f"LiteLLM is not imported by `{target}`.")
    t3.notes.append("importtime adds its own overhead; compare shares, not absolute seconds, with 6a.")
    t2.notes.append(conditions())
    _explain_worker(goals[1], t2)
    return [*goals, t1, t2, t3]


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="only: simulate and the worker beside another checkout (`git archive main`), alternating",
    )
    parser.add_argument("--repeats", type=int, default=None, help="runs each (default 3, --quick 1)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    if args.baseline is not None:
        emit(baseline_tables(args.baseline.resolve(), repeats), args.json_out)
        return 0
    emit(run(args.quick), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
