"""bench.run_all drives the items and writes one Markdown document (tiny sizes, one cheap item)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_all_quick_subset_writes_markdown(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--quick", "--only", "6", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "### Machine" in text and "| nproc |" in text
    assert "### 6a. Start-up" in text
    assert "### Goals" in text


def test_run_all_rejects_unknown_items() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--only", "9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown item" in proc.stderr
