"""Run every benchmark (issues 8, 11 and 13) in one go and print one table per item (plus a goal summary).

    uv run python -m bench.run_all                 # full sizes (hours on 2 cores: items 3, 8, 9, 13 are long)
    uv run python -m bench.run_all --quick         # tiny sizes (smoke / development, ~5 min)
    uv run python -m bench.run_all --only 1,5      # a subset (item numbers)
    uv run python -m bench.run_all --out bench/results-latest.md   # also write the Markdown

Items: 1 instrumentation cost, 2 failover TTFT, 3 throughput with telemetry on vs off (text calls, then
voice calls: ~30 + ~12 min of the full run), 4 memory, 5 export under load, 6 start-up, 7 exit after
simulate's summary, 8 our LLM instrumentation against the peers and 9 the LLM path (both in CPU
instructions under valgrind's callgrind), 10 outbox drain rate (SQLite vs PostgreSQL, 1 vs 3 workers),
11 voice, 12 the spans of one call and its trace tree, 13 voice density (concurrent voice calls per
agent process). The goal summary at the end lists
every goal of issues 8 and 13 (``GOALS``) with PASS/MISS and the figure, or says why it has none (not
measured yet, no numeric goal, item not run or failed). Every item is a script with the one contract of
``bench/_common.py`` (``python -m bench.bench_<item> [--quick] [--json-out PATH]``): this runs each as
its own process and reads nothing but the tables it writes as JSON. Each item runs its measurements in
child processes of its own, so ratios inside an item are measured side by side under the same
conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import REPO_ROOT, Table, child_env, machine_table, tables_from_json, tables_to_json

# item -> (title, module); every module follows the contract above.
ITEMS: dict[int, tuple[str, str]] = {
    1: ("Cost of instrumentation", "bench.bench_instrumentation"),
    2: ("Failover time-to-first-token", "bench.bench_failover"),
    3: ("Throughput, telemetry on vs off", "bench.bench_throughput"),
    4: ("Memory", "bench.bench_memory"),
    5: ("Export under load", "bench.bench_export"),
    6: ("Start-up", "bench.bench_startup"),
    7: ("Exit after simulate's summary", "bench.bench_exit"),
    8: ("Against the peers, in instructions", "bench.bench_peers"),
    9: ("The LLM path, in instructions", "bench.bench_llm_path"),
    10: ("Outbox drain rate, SQLite vs PostgreSQL, 1 vs 3 workers", "bench.bench_drain"),
    11: ("Voice: the caller's wait, speech failover, barge-in", "bench.bench_voice"),
    12: ("Spans of one call and its trace tree", "bench.bench_trace"),
    13: ("Voice density: concurrent voice calls per agent process", "bench.bench_density"),
}
ITEM_TIMEOUT_S = 1800
# Items under valgrind run ~50x slower per call and start each child at valgrind's speed.
# Item 3 runs 4 configurations x 4 levels x 2 repeats of text calls, each a fresh worker process (~30 min
# on a busy host), then 3 configurations x 2 repeats of voice calls at 3 levels (~12 min).
# Item 13 steps its levels for up to 25 min, then reruns the last one under the profiler.
ITEM_TIMEOUT_OVERRIDES_S = {3: 5400, 8: 3 * 3600, 9: 2 * 3600, 13: 3600}


def run_item(module: str, quick: bool, timeout_s: float = ITEM_TIMEOUT_S) -> list[Table]:
    """``python -m module [--quick] --json-out F``; its tables from F. Raises with its output's tail."""
    with tempfile.TemporaryDirectory(prefix="bench-item-") as tmp:
        out, log_path = Path(tmp) / "tables.json", Path(tmp) / "output.log"
        cmd = [sys.executable, "-m", module, *(["--quick"] if quick else []), "--json-out", str(out)]
        with log_path.open("w") as log_file:  # its Markdown and progress: only wanted when it fails
            proc = subprocess.run(
                cmd, cwd=REPO_ROOT, env=child_env(), stdout=log_file, stderr=log_file, timeout=timeout_s
            )
        if proc.returncode != 0 or not out.exists():
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd[1:])} exited {proc.returncode}:\n{tail}")
        return tables_from_json(json.loads(out.read_text()))


def run_items(items: list[int], quick: bool) -> list[Table]:
    tables: list[Table] = []
    for item in items:
        title, module = ITEMS[item]
        started = time.perf_counter()
        print(f"--- item {item}: {title} ({module}) ...", file=sys.stderr, flush=True)
        try:
            produced = run_item(module, quick, ITEM_TIMEOUT_OVERRIDES_S.get(item, ITEM_TIMEOUT_S))
        except (RuntimeError, subprocess.TimeoutExpired, ValueError, TypeError) as exc:
            # One broken item must not hide the others' figures.
            failed = Table(f"{item}. {title}: FAILED", [])
            failed.notes.append(f"{type(exc).__name__}: {exc}"[:2000])
            print(failed.notes[-1], file=sys.stderr)
            produced = [failed]
        elapsed = time.perf_counter() - started
        produced[-1].notes.append(f"(item {item} took {elapsed:.0f} s)")
        tables.extend(produced)
    return tables


@dataclass(frozen=True)
class Goal:
    """One goal of an issue and where its verdict comes from.

    ``item``: the bench item whose goal lines (``Table.verdicts``) decide it, ``None`` when nothing
    measures it yet (``pending`` says why); ``match``: the text those lines contain ("" = every goal line
    of the item, so an item that adds goal lines later plugs in without a change here).
    """

    issue: str
    title: str
    item: int | None
    match: str = ""
    pending: str = ""
    unmeasured: str = "not measured"  # the result printed when no goal line decides it


GOALS: tuple[Goal, ...] = (
    Goal("8.1", "cost of instrumentation", 1, "instrumented call"),
    Goal("8.2", "failover time-to-first-token", 2, "TTFT"),
    Goal("8.3", "throughput, telemetry on vs off", 3, "off (calls/s), text mode"),
    Goal("8.4", "memory after 10,000 sessions", 4),
    Goal("8.5", "export under load", 5),
    Goal(
        "8.6",
        "start-up: what dominates",
        None,
        pending="item 6 (6a-6c): figures and an import profile; the issue sets no number",
        unmeasured="no numeric goal",
    ),
    Goal("13.1", "span budget: readable trace, no orphans", 12, "span budget"),
    Goal("13.1", "telemetry on >= 0.95x off, text mode", 3, "off (calls/s), text mode"),
    Goal("13.1", "telemetry on >= 0.95x off, voice mode", 3, "off (calls/s), voice mode"),
    Goal("13.2", "against the peers, in instructions", 8, "cheapest peer"),
    Goal("13.3", "the LLM path, in instructions", 9, "Router path"),
    Goal("13.4", "start-up in seconds", 6),
    Goal("13.5", "voice density", 13, "concurrent voice calls"),
)


def summary_table(tables: list[Table], items: list[int] | None = None) -> Table:
    """Every goal of ``GOALS`` with its verdict(s), then goal lines no goal claims (other issues').

    ``tables``: what the run produced; ``items``: the items it ran (default: all of ``ITEMS``)."""
    ran = set(ITEMS if items is None else items)
    by_item: dict[int, list[Table]] = {}
    for table in tables:
        number = table.title.split(".", 1)[0].rstrip("abcdefgh")
        if number.isdigit():
            by_item.setdefault(int(number), []).append(table)
    summary = Table("Goals", ["goal", "result", "goal: measured"])
    claimed: set[str] = set()
    for goal in GOALS:
        label = f"issue {goal.issue}: {goal.title}"
        if goal.item is None:
            summary.add(label, goal.unmeasured, goal.pending)
            continue
        if goal.item not in ran:
            summary.add(label, "not run", f"item {goal.item} was not in this run (--only)")
            continue
        produced = by_item.get(goal.item, [])
        if any(t.title.endswith(": FAILED") for t in produced):
            summary.add(label, "FAILED", f"item {goal.item} failed (its table says why)")
            continue
        lines = [line for t in produced for line in t.verdicts if goal.match in line]
        if not lines:
            summary.add(
                label, goal.unmeasured, goal.pending or f"item {goal.item} printed no goal line for it"
            )
        for line in lines:
            claimed.add(line)
            status, _, rest = line.partition(" ")
            summary.add(label, status, rest)
    for table in tables:
        for line in table.verdicts:
            if line not in claimed:
                status, _, rest = line.partition(" ")
                summary.add(f"item {table.title.split('.', 1)[0]}", status, rest)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke / development)")
    parser.add_argument("--only", default="", help="comma-separated item numbers (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown to this file")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the tables as JSON")
    args = parser.parse_args(argv)
    try:
        items = [int(x) for x in args.only.split(",") if x.strip()] or sorted(ITEMS)
    except ValueError:
        parser.error("--only takes item numbers, e.g. --only 1,5")
    unknown = [i for i in items if i not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {unknown}; items are {sorted(ITEMS)}")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    before = machine_table()
    tables = run_items(items, args.quick)
    load_after = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    before.add("load average at the end (1/5/15 min)", load_after)
    before.add("mode", "--quick (tiny sizes)" if args.quick else "full")
    output = [before, *tables, summary_table(tables, items)]
    text = "\n".join(t.to_markdown() for t in output)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(tables_to_json(output), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
