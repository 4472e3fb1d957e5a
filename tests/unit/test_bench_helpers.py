"""bench.bench_startup runs end to end with tiny sizes (figures only; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.bench_startup import importers_of

ROOT = Path(__file__).resolve().parents[1]


def test_startup_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_startup", "--quick", "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    imports, ready, profile = json.loads(out.read_text())
    assert imports["rows"][0][0] == "interpreter only"
    assert ready["rows"], "the ready step is reported (measured or why not)"
    assert profile["rows"], "importtime profile has packages"


def test_importers_follow_importtime_nesting() -> None:
    # importtime lists children before their importer, one indent level deeper.
    entries = [
        (1, "yaml", 5, 5),
        (0, "agent.tenants", 1, 6),
        (2, "litellm", 10, 4_000_000),
        (1, "agent.llm.chain", 5, 4_100_000),
        (0, "agent.llm", 1, 4_200_000),
        (0, "litellm.router", 3, 300),
    ]
    assert importers_of(entries, "litellm") == ["agent.llm", "litellm"]
    assert importers_of(entries, "numpy") == []
