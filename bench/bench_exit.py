"""How long ``sales-agent simulate`` takes to exit after printing its summary (issue 16, item 9).

Each run is ``sales-agent simulate --calls 1`` in a fresh process; the figure is the time from the last
line it prints (the calls table) to the process's exit: closing the runtime and the local services,
the telemetry flush/shutdown and the interpreter's own teardown. Four collector situations:

- no OTLP endpoint configured;
- a healthy collector (the ``otlp-sink`` stand-in answering 200);
- a collector that is down (the endpoint is a closed loopback port);
- a collector that accepts and never answers (``otlp-sink --fault hang``).

``--baseline PATH`` measures another checkout of the repository (e.g. ``git archive main``) with the
same interpreter in the same run, side by side, so before/after figures share the machine's load.

    python -m bench.bench_exit [--quick] [--repeats N] [--scenario NAME] [--baseline PATH] [--json-out PATH]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench._common import REPO_ROOT, Table, bench_arg_parser, child_env, emit, median, verdict
from local_services.harness import free_port, spawn

SCENARIOS = ("no OTLP endpoint", "collector healthy", "collector down (closed port)", "collector hanging")
# The shutdown timeout the figures are judged against (SALES_AGENT_SHUTDOWN_TIMEOUT_S's default).
SHUTDOWN_TIMEOUT_S = 5.0


@contextlib.contextmanager
def _collector(scenario: str) -> Iterator[str | None]:
    """The OTLP endpoint for a scenario (None: no endpoint)."""
    if scenario == "no OTLP endpoint":
        yield None
    elif scenario == "collector down (closed port)":
        yield f"http://127.0.0.1:{free_port()}"
    else:
        fault = "hang" if scenario == "collector hanging" else "ok"
        with spawn("otlp-sink", "--fault", fault, env=child_env()) as sink:
            yield sink.url


def exit_after_summary(repo: Path, endpoint: str | None, timeout_s: float = 600) -> dict[str, float]:
    """One ``simulate --calls 1`` run of ``repo``: seconds from its last printed line to its exit."""
    env = child_env(PYTHONUNBUFFERED="1", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    env["PYTHONPATH"] = str(repo)
    env = {k: v for k, v in env.items() if not k.startswith(("CRM_", "SALES_AGENT_"))}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--calls", "1", "--concurrency", "1"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    last_line_at = started
    for _line in proc.stdout:
        last_line_at = time.monotonic()
    code = proc.wait(timeout=timeout_s)
    ended = time.monotonic()
    if code != 0:
        raise RuntimeError(f"simulate in {repo} exited {code}")
    return {"exit_s": ended - last_line_at, "total_s": ended - started}


def measure(repos: dict[str, Path], repeats: int, scenarios: tuple[str, ...] = SCENARIOS) -> Table:
    table = Table(
        "Exit after simulate's summary (seconds from the last printed line to process exit)",
        ["collector", *(f"{label} (median of {repeats})" for label in repos), "runs"],
    )
    worst: dict[str, float] = {}
    for scenario in scenarios:
        figures: dict[str, list[float]] = {label: [] for label in repos}
        for _ in range(repeats):
            for label, repo in repos.items():  # interleaved: both see the same load
                with _collector(scenario) as endpoint:
                    figures[label].append(exit_after_summary(repo, endpoint)["exit_s"])
        medians = {label: median(values) for label, values in figures.items()}
        runs = "; ".join(
            f"{label}: {', '.join(f'{v:.2f}' for v in values)}" for label, values in figures.items()
        )
        table.add(scenario, *(medians[label] for label in repos), runs)
        current = "this tree"
        worst[scenario] = medians[current]
    table.verdicts.append(
        verdict(
            "bounded by one shutdown timeout",
            max(worst.values()) <= SHUTDOWN_TIMEOUT_S + 1.0,
            f"worst median {max(worst.values()):.2f} s (timeout {SHUTDOWN_TIMEOUT_S:g} s, +1 s for the "
            "interpreter)",
        )
    )
    fast = [worst[s] for s in SCENARIOS[:3] if s in worst]
    if fast:
        table.verdicts.append(
            verdict(
                "fast when the collector is healthy, down or not configured",
                max(fast) <= 1.0,
                f"{max(fast):.2f} s",
            )
        )
    table.notes.append(
        "Includes closing the runtime and the in-process LLM/CRM stand-ins, the telemetry shutdown and "
        "the interpreter's teardown; the hanging collector is bounded by SALES_AGENT_SHUTDOWN_TIMEOUT_S."
    )
    return table


def run(quick: bool) -> list[Table]:
    """``bench.run_all``'s entry: this tree only, 1 run per scenario with ``quick``, else 3."""
    return [measure({"this tree": REPO_ROOT}, 1 if quick else 3)]


def main(argv: list[str] | None = None) -> int:
    parser = bench_arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="runs per scenario (default 3, --quick 1)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="only these (repeatable)")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to measure beside")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    repos = {"this tree": REPO_ROOT}
    if args.baseline is not None:
        repos["baseline"] = args.baseline.resolve()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    emit([measure(repos, repeats, tuple(args.scenario or SCENARIOS))], args.json_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
