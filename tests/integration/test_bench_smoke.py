"""bench.run_all drives the items and writes one Markdown document (tiny sizes, one cheap item)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.run_all import failover_verdicts

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


def test_failover_verdicts_read_the_failover_table() -> None:
    text = """TTFT through RouterLLM (first-token deadline 300 ms), milliseconds
scenario                                         p50       p95      mean  +p50 vs healthy  total p50
healthy primary                                13.16     13.62     13.16            +0.00      33.74
primary refused                                34.70     38.53     34.70           +21.54      52.01
primary 500                                    94.86     95.08     94.86           +81.70      97.14
primary hang (deadline)                       330.21    334.95    330.21          +317.04     344.94
primary in cooldown                            11.17     11.41     11.17            -1.99      20.58
"""
    verdicts = failover_verdicts(text)
    assert [v.split()[0] for v in verdicts] == ["PASS", "MISS", "PASS", "PASS"]
    assert failover_verdicts("no table here") == []
