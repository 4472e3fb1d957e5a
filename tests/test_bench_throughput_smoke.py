"""bench.bench_throughput runs end to end with tiny sizes (figures only; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_throughput_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_throughput",
            "--quick",
            "--concurrency",
            "2",
            "--json-out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table, profile = json.loads(out.read_text())
    assert [row[0] for row in table["rows"]] == [2, 2, 2]
    labels = [row[1] for row in table["rows"]]
    assert labels == ["off (OTEL_SDK_DISABLED)", "on (OTLP)", "on again (A/A control)"]
    assert any(note.startswith("A/A control") for note in table["notes"])
    assert all(row[2] > 0 for row in table["rows"]), "calls completed in both configurations"
    assert not any("calls failed" in note for note in table["notes"])
    assert profile["rows"], "the profile by package is reported"
