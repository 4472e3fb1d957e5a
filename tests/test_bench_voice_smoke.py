"""The voice benchmark runs with tiny sizes (its fast parts; the real-time parts run the same
``run_voice_call`` the voice tests exercise). Figures only, no timing assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_voice_quick_prints_the_failover_tables(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_voice", "--quick", "--parts", "tts,stt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in (
        "ChainTTS, primary 500",
        "max_retry_per_tts=2 (default)",
        "primary 500 -> backup (same audio)",
    ):
        assert row in result.stdout
    assert "TTS failover (primary 500) adds < 100 ms" in result.stdout


def test_bench_voice_rejects_unknown_parts() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_voice", "--parts", "density"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "unknown ['density']" in result.stderr
