"""The failover benchmark runs end to end with tiny sizes (figures only; no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_failover_quick_prints_table() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_failover.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scenarios = ["healthy primary", "primary refused", "primary 500", "primary hang", "primary in cooldown"]
    for scenario in [*scenarios, "Router.acompletion", "direct httpx"]:
        assert scenario in result.stdout
