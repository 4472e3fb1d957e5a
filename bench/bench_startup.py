"""Item 6: start-up time, from process start to worker ready, and what dominates it.

Wall-clock of fresh interpreters importing each layer (``python -c "import X"``; the median of several
runs), the time to "ready" (imports + ``setup_telemetry`` + the worker's LLM built, as the worker does
before it registers with LiveKit) measured by the parent from spawn to a READY line, and
``python -X importtime`` of the worker module grouped by top-level package, with the import chain that
pulls LiteLLM in.

    python -m bench.bench_startup [--quick]
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from typing import Any

from bench._common import REPO_ROOT, Table, bench_arg_parser, child_env, emit, median

# (label, statement) in layering order; modules that don't exist (yet) are reported as such.
IMPORT_CASES = (
    ("interpreter only", "pass"),
    ("opentelemetry sdk + telemetry.setup", "import telemetry.setup"),
    ("livekit.agents", "import livekit.agents"),
    ("litellm", "import litellm"),
    ("agent.error_handling", "import agent.error_handling"),
    ("agent.crm", "import agent.crm"),
    ("agent.llm", "import agent.llm"),
    ("agent.cli (the console script)", "import agent.cli"),
    ("agent.worker (the job entrypoint)", "import agent.worker"),
    (
        "CRM service process: import + setup_telemetry()",
        "import local_services.crm_service; from telemetry import TelemetrySettings, setup_telemetry; "
        "setup_telemetry(TelemetrySettings())",
    ),
    (
        "same, livekit wiring skipped (livekit stubbed: what deferring it would save)",
        "import sys, types; lk = types.ModuleType('livekit.agents'); "
        "lkt = types.ModuleType('livekit.agents.telemetry'); "
        "lkt.set_tracer_provider = lambda *a, **k: None; lk.telemetry = lkt; "
        "sys.modules.update({'livekit.agents': lk, 'livekit.agents.telemetry': lkt}); "
        "import local_services.crm_service; from telemetry import TelemetrySettings, setup_telemetry; "
        "setup_telemetry(TelemetrySettings()); "
        "assert 'openai' not in sys.modules",
    ),
)

# What "ready" means offline: everything ``agent.worker.run_worker`` does before livekit's CLI dials
# the LiveKit server (telemetry, speech plugins, the preloaded modules incl. litellm, tenants, options),
# then the per-job-process ``prewarm`` work that remains (VAD model) as a separate stage.
READY_SCRIPT = r"""
import json, os, sys, time
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
worker.preload()
mark("preload_modules imported (litellm, agent.*)")
worker.worker_options()
mark("WorkerOptions: ready to dial LiveKit")
from livekit.plugins import silero
silero.VAD.load()
mark("+ prewarm: silero VAD loaded (per job process)")
print("READY " + json.dumps(stages), flush=True)
os._exit(0)
"""


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


# 6b's imports as one statement, for -X importtime (imports done inside functions are recorded too).
READY_IMPORTS = (
    "import agent.worker as w; from agent.app_settings import AppSettings; "
    "from telemetry.setup import setup_telemetry; s = AppSettings.from_env(); "
    "setup_telemetry(s.telemetry); w.import_speech_plugins(s); w.preload()"
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


def run(quick: bool) -> list[Table]:
    repeats = 1 if quick else 3
    t1 = Table(
        "6a. Start-up: fresh interpreter importing each layer (wall clock, spawn to exit)",
        ["what", "seconds (median)", "note"],
    )
    for label, statement in IMPORT_CASES:
        if quick and label not in (
            "interpreter only",
            "agent.error_handling",
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
        target, label = READY_IMPORTS, "the worker's ready path (6b without the VAD)"
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
    return [t1, t2, t3]


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    emit(run(args.quick), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
