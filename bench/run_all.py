"""Run every benchmark of issue 8 in one go and print one table per item (plus a goal summary).

    uv run python -m bench.run_all                 # full sizes (~10 min on 2 cores)
    uv run python -m bench.run_all --quick         # tiny sizes (smoke / development, ~4 min)
    uv run python -m bench.run_all --only 1,5      # a subset (item numbers)
    uv run python -m bench.run_all --out bench/results-latest.md   # also write the Markdown

Items: 1 instrumentation cost, 2 failover TTFT (bench/bench_failover.py), 3 throughput, 4 memory,
5 export under load, 6 start-up, 7 voice. Each item runs its measurements in child processes of its own, so
ratios inside an item are measured side by side under the same conditions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench._common import REPO_ROOT, Table, child_env, machine_table, tables_to_json, verdict

ITEMS: dict[int, tuple[str, str]] = {
    1: ("Cost of instrumentation", "bench.bench_instrumentation"),
    2: ("Failover time-to-first-token", "bench/bench_failover.py"),
    3: ("Throughput, telemetry on vs off", "bench.bench_throughput"),
    4: ("Memory", "bench.bench_memory"),
    5: ("Export under load", "bench.bench_export"),
    6: ("Start-up", "bench.bench_startup"),
    7: ("Voice: the caller's wait, speech failover, barge-in", "bench.bench_voice"),
}


def _failover(quick: bool) -> list[Table]:
    """bench/bench_failover.py is the LLM engineer's script: run it as is and keep its own table."""
    cmd = [sys.executable, str(REPO_ROOT / "bench" / "bench_failover.py"), *(["--quick"] if quick else [])]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=1800)
    table = Table("2. Failover time-to-first-token (bench/bench_failover.py)", [])
    table.preformatted = proc.stdout.strip()
    if proc.returncode != 0:
        table.notes.append(f"bench_failover.py exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    table.verdicts.extend(failover_verdicts(proc.stdout))
    table.notes.append(
        "Goals (issue 3): refused / 500 add <= 50 ms over healthy, hang ~ the first-token deadline, "
        "cooldown <= 5 ms over healthy. Verdicts are read from the script's p50 column."
    )
    return [table]


_SCENARIO_ROW = re.compile(r"^(?P<name>[a-z][a-z0-9 ,()._-]*?)\s{2,}(?P<nums>[-+\d.\s]+)$")


def failover_verdicts(text: str) -> list[str]:
    """Goal lines from bench_failover.py's table (p50 and '+p50 vs healthy' columns); none if unparsable."""
    deadline = re.search(r"deadline (\d+) ms", text)
    p50: dict[str, float] = {}
    for line in text.splitlines():
        match = _SCENARIO_ROW.match(line.strip())
        if match:
            numbers = match["nums"].split()
            with contextlib.suppress(ValueError, IndexError):
                p50[match["name"].strip()] = float(numbers[0])
    healthy = p50.get("healthy primary")
    if healthy is None:
        return []
    out = []
    for name, limit in (("primary refused", 50.0), ("primary 500", 50.0), ("primary in cooldown", 5.0)):
        if name in p50:
            extra = p50[name] - healthy
            out.append(
                verdict(f"TTFT {name} <= healthy + {limit:.0f} ms", extra <= limit, f"{extra:+.1f} ms")
            )
    if deadline and "primary hang (deadline)" in p50:
        limit_ms = float(deadline[1])
        extra = p50["primary hang (deadline)"] - limit_ms - healthy
        out.append(
            verdict(
                "TTFT primary hanging ~ deadline (<= deadline + healthy + 50 ms)",
                extra <= 50.0,
                f"{p50['primary hang (deadline)']:.0f} ms, deadline {limit_ms:.0f} ms ({extra:+.1f} ms)",
            )
        )
    return out


def _runner(item: int) -> Callable[[bool], list[Table]]:
    if item == 2:
        return _failover
    import importlib

    return importlib.import_module(ITEMS[item][1]).run


def run_items(items: list[int], quick: bool) -> list[Table]:
    tables: list[Table] = []
    for item in items:
        title, module = ITEMS[item]
        started = time.perf_counter()
        print(f"--- item {item}: {title} ({module}) ...", file=sys.stderr, flush=True)
        try:
            produced = _runner(item)(quick)
        except Exception as exc:  # one broken item must not hide the others' figures
            failed = Table(f"{item}. {title}: FAILED", [])
            failed.notes.append(f"{type(exc).__name__}: {exc}"[:2000])
            traceback.print_exc()
            produced = [failed]
        elapsed = time.perf_counter() - started
        produced[-1].notes.append(f"(item {item} took {elapsed:.0f} s)")
        tables.extend(produced)
    return tables


def summary_table(tables: list[Table]) -> Table:
    summary = Table("Goals", ["result", "goal: measured"])
    for table in tables:
        for line in table.verdicts:
            status, _, rest = line.partition(" ")
            summary.add(status, rest)
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
    output = [before, *tables, summary_table(tables)]
    text = "\n".join(t.to_markdown() for t in output)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(tables_to_json(output), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
