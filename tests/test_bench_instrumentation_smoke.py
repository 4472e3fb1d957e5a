"""bench.bench_instrumentation runs end to end with tiny sizes (figures only; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_instrumentation_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_instrumentation", "--quick", "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = json.loads(out.read_text())
    paths = [row[0] for row in tables[0]["rows"]]
    assert {"bare call", "bare OTel span", "full: wrapper + breaker + retry"} <= set(paths)
    assert all(isinstance(row[1], int) and row[1] > 0 for row in tables[0]["rows"])
    assert tables[0]["verdicts"], "the goal line is reported"
    assert "| bare OTel span |" in proc.stdout
