"""bench.bench_exit runs end to end on one scenario (figures only; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_exit_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_exit",
            "--quick",
            "--scenario",
            "no OTLP endpoint",
            "--json-out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [table] = json.loads(out.read_text())
    [row] = table["rows"]
    assert row[0] == "no OTLP endpoint" and row[1] > 0
