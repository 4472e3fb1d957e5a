"""bench.bench_memory runs end to end with tiny sizes (figures only; no timing or size assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_memory_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_memory", "--quick", "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sessions, calls, worker = json.loads(out.read_text())
    assert sessions["verdicts"] and sessions["rows"]
    assert ["sessions left open after the churn", 0] in sessions["rows"]
    assert calls["rows"][0] == ["calls held open", 3]
    assert worker["rows"][0][0] == "interpreter"
