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
)

# What "ready" means offline: everything the worker does before it dials the LiveKit server.
READY_SCRIPT = r"""
import os, sys, time
t0 = float(sys.argv[1])
import agent.worker  # noqa: F401  (imports: the LiveKit worker entrypoint)
from telemetry.settings import TelemetrySettings
from telemetry.setup import setup_telemetry
setup_telemetry(TelemetrySettings())
t_tel = time.time()
built = "no"
try:
    from agent.llm import LLMSettings, build_llm
    llm = build_llm(LLMSettings.load())
    built = "yes"
except Exception as exc:  # no usable provider configured in this environment
    built = f"no ({type(exc).__name__})"
print(f"READY {time.time() - t0:.4f} {t_tel - t0:.4f} {built}", flush=True)
os._exit(0)
"""


def _module_exists(statement: str) -> bool:
    if not statement.startswith("import "):
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
    """Spawn-to-READY seconds of READY_SCRIPT (the worker's imports + telemetry + LLM)."""
    if not _module_exists("import agent.worker"):
        return {"error": "agent.worker does not exist yet"}
    env = child_env(
        SALES_AGENT_LLM_CHAIN='[{"name": "local", "kind": "local", "api_base": "http://127.0.0.1:9/v1", '
        '"model": "local-sales"}]'
    )
    walls, telemetry_at, built = [], [], ""
    for _ in range(repeats):
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-c", READY_SCRIPT, repr(started)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("READY ")), None)
        if line is None:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": last[:200]}
        parts = line.split(maxsplit=3)
        walls.append(float(parts[1]))
        telemetry_at.append(float(parts[2]))
        built = parts[3]
    return {"ready_s": median(walls), "telemetry_s": median(telemetry_at), "llm_built": built}


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
        "litellm_chain": _chain_to(entries, "litellm"),
        "ok": proc.returncode == 0,
    }


def _chain_to(entries: list[tuple[int, str, int, int]], target: str) -> list[str]:
    """The import chain (outermost first) that first imported ``target``.

    importtime prints a module after its children, deeper ones indented: walk forward from the
    target's line and take the first later entry at each shallower depth (its importer).
    """
    for idx, (depth, module, _s, cum) in enumerate(entries):
        if module == target:
            chain = [f"{module} ({cum / 1e6:.2f} s)"]
            want = depth - 1
            for later_depth, later_module, _s2, later_cum in entries[idx + 1 :]:
                if want < 0:
                    break
                if later_depth == want:
                    chain.append(f"{later_module} ({later_cum / 1e6:.2f} s)")
                    want -= 1
            return list(reversed(chain))
    return []


def run(quick: bool) -> list[Table]:
    repeats = 1 if quick else 5
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
        "6b. Worker ready (offline: imports + setup_telemetry + Router-backed LLM built)", ["step", "value"]
    )
    if "error" in ready:
        t2.add("ready", f"not measured: {ready['error']}")
    else:
        t2.add("imports + setup_telemetry done (s since spawn)", ready["telemetry_s"])
        t2.add("worker ready (s since spawn)", ready["ready_s"])
        t2.add("LLM built", ready["llm_built"])
    target = "import agent.worker" if _module_exists("import agent.worker") else "import agent.cli"
    if not _module_exists(target):
        target = "import agent.error_handling"
    prof = importtime_profile(target)
    t3 = Table(
        f"6c. python -X importtime -c '{target}': import self time by top-level package",
        ["package", "seconds", "share"],
    )
    for package, seconds in prof["by_package"][:12]:
        t3.add(package, seconds, f"{seconds / (prof['total_s'] or 1):.0%}")
    if prof["litellm_chain"]:
        t3.notes.append("LiteLLM is imported via: " + " → ".join(prof["litellm_chain"]))
    else:
        t3.notes.append(f"LiteLLM is not imported by `{target}` (deferred until first use).")
    t3.notes.append("importtime adds its own overhead; compare shares, not absolute seconds, with 6a.")
    return [t1, t2, t3]


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    emit(run(args.quick), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
