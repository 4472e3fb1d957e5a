"""Shared plumbing for the benchmarks: result tables, the CLI shape, subprocesses, machine facts, profiles.

Every benchmark script is ``python -m bench.bench_<item> [--quick] [--json-out PATH]``: it prints its
tables as Markdown (so a run can be pasted into RESULTS.md as is) and, with ``--json-out``, writes them
as JSON for ``bench.run_all``. Measurements that need their own OpenTelemetry providers or a clean
interpreter run in a child process (``run_child``): the global providers are set-once per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from agent.percentiles import percentile as estimate_percentile

REPO_ROOT = Path(__file__).resolve().parent.parent

# The packages whose versions decide the numbers (recorded with every run).
KEY_PACKAGES = (
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "livekit-agents",
    "litellm",
    "httpx",
    "aiohttp",
    "stamina",
    "pydantic",
    "psutil",
)


@dataclass
class Table:
    """One result table; ``verdicts`` are the goal lines (``PASS``/``MISS`` + by how much)."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    preformatted: str = ""  # verbatim text (another script's own table output)

    def add(self, *row: Any) -> None:
        self.rows.append(list(row))

    def to_markdown(self) -> str:
        out = [f"### {self.title}", ""]
        if self.columns and self.rows:
            cells = [[_cell(c) for c in row] for row in self.rows]
            out.append("| " + " | ".join(self.columns) + " |")
            out.append("|" + "|".join("---" for _ in self.columns) + "|")
            out.extend("| " + " | ".join(row) + " |" for row in cells)
            out.append("")
        if self.preformatted:
            out += ["```", self.preformatted.rstrip(), "```", ""]
        for verdict in self.verdicts:
            out.append(f"- **{verdict}**")
        for note in self.notes:
            out.append(f"- {note}")
        return "\n".join(out).rstrip() + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def verdict(name: str, ok: bool, detail: str) -> str:
    return f"{'PASS' if ok else 'MISS'} {name}: {detail}"


def tables_to_json(tables: Sequence[Table]) -> list[dict[str, Any]]:
    return [asdict(t) for t in tables]


def tables_from_json(data: Iterable[dict[str, Any]]) -> list[Table]:
    return [Table(**d) for d in data]


def bench_arg_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test / development)")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the tables as JSON here")
    return parser


def emit(tables: Sequence[Table], json_out: Path | None) -> None:
    for table in tables:
        print(table.to_markdown())
    if json_out is not None:
        json_out.write_text(json.dumps(tables_to_json(tables), indent=1, default=str))


# --- child processes ------------------------------------------------------------------------------


def child_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a measurement child: offline LiteLLM, repo on the path, no stray OTLP config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("SALES_AGENT_LOG_LEVEL", "WARNING")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_child(
    module: str, args: Sequence[str] = (), *, env: dict[str, str] | None = None, timeout_s: float = 600
) -> dict[str, Any]:
    """Run ``python -m module args --result-out F`` and return the JSON it wrote to F.

    The child's output goes to a file (an error path under test may log thousands of lines); a failing
    child raises with its exit code and the tail of that output.
    """
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "result.json"
        log_path = Path(tmp) / "output.log"
        cmd = [sys.executable, "-m", module, *args, "--result-out", str(out)]
        with log_path.open("w") as log_file:
            proc = subprocess.run(
                cmd,
                env=env or child_env(),
                cwd=REPO_ROOT,
                timeout=timeout_s,
                stdout=log_file,
                stderr=log_file,
            )
        if proc.returncode != 0 or not out.exists():
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
        return json.loads(out.read_text())


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(result, default=str))


# --- numbers --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """``agent.percentiles.percentile`` (the project's one estimator); 0.0 for no values."""
    value = estimate_percentile(values, q)
    return 0.0 if value is None else value


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def uss_mb() -> float:
    """Unique set size: the memory only this process holds (what a forked child really costs)."""
    import psutil

    return psutil.Process().memory_full_info().uss / 2**20


# --- machine --------------------------------------------------------------------------------------


def machine_description() -> dict[str, str]:
    import psutil

    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in KEY_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    load1, load5, load15 = os.getloadavg()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "git commit": commit or "unknown",
        "nproc": str(os.cpu_count()),
        "CPU": cpu_model,
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "load average (1/5/15 min)": f"{load1:.2f} / {load5:.2f} / {load15:.2f}",
        **{f"pkg {k}": v for k, v in versions.items()},
    }


def machine_table() -> Table:
    table = Table("Machine", ["property", "value"])
    for key, value in machine_description().items():
        table.add(key, value)
    return table


# --- profiles -------------------------------------------------------------------------------------


def profile_hotspots(
    run: Callable[[], Any], *, top: int = 10, interval_s: float = 0.0001
) -> dict[str, list[dict[str, Any]]]:
    """Run ``run()`` under pyinstrument; self time aggregated per package and per function.

    Aggregated self time answers "what dominates" better than the call tree for microsecond-scale
    operations repeated many times. Returns ``{"packages": [...], "functions": [...]}``, each entry
    ``{"name", "self_s", "share"}``, largest first.
    """
    from pyinstrument import Profiler

    profiler = Profiler(interval=interval_s, async_mode="disabled")
    profiler.start()
    try:
        run()
    finally:
        session = profiler.stop()
    return aggregate_session(session, top=top)


def aggregate_session(session: Any, *, top: int = 10) -> dict[str, list[dict[str, Any]]]:
    """A pyinstrument session's self time aggregated per package and per function (see profile_hotspots)."""
    root = session.root_frame()
    functions: dict[str, float] = {}
    packages: dict[str, float] = {}

    def walk(frame: Any) -> None:
        if not frame.is_synthetic and frame.total_self_time > 0:
            path = frame.file_path_short or "?"
            fn_key = f"{frame.function} ({path}:{frame.line_no})"
            functions[fn_key] = functions.get(fn_key, 0.0) + frame.total_self_time
            pkg = package_of(path)
            packages[pkg] = packages.get(pkg, 0.0) + frame.total_self_time
        for child in frame.children:
            walk(child)

    if root is not None:
        walk(root)
    grand = sum(functions.values()) or 1.0

    def ranked(totals: dict[str, float], limit: int) -> list[dict[str, Any]]:
        items = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:limit]
        return [{"name": k, "self_s": v, "share": v / grand} for k, v in items]

    return {"packages": ranked(packages, top), "functions": ranked(functions, top)}


def package_of(path: str) -> str:
    """A coarse package label: ``opentelemetry/sdk/metrics/x.py`` -> ``opentelemetry.sdk.metrics``."""
    if path.startswith("<"):
        return "builtins (C calls)"
    parts = [p for p in Path(path).parts[:-1] if p not in ("", ".", "..")]
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    if not parts:
        return Path(path).stem
    depth = 3 if parts[0] == "opentelemetry" else 2 if parts[0] in ("agent", "livekit", "telemetry") else 1
    return ".".join(parts[:depth])
