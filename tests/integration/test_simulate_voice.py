"""``sales-agent simulate --mode voice`` as a subprocess: real audio, faults, the caller's wait."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _simulate(tmp_path: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_", "CRM_"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True")
    if "voice" in args:
        args = (*args, "--voice-cache", str(tmp_path / "clips"))
    return subprocess.run(
        [sys.executable, "-m", "agent", "simulate", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _row(out: str, name: str) -> str:
    match = re.search(rf"{re.escape(name)}\s+│\s+([^│]+?)\s+│", out)
    assert match, f"no {name!r} row in:\n{out[-3000:]}"
    return match.group(1)


def test_voice_calls_with_the_primary_stt_and_tts_down_complete_and_print_the_callers_wait(
    tmp_path: Path,
) -> None:
    done = _simulate(
        tmp_path,
        "--mode", "voice", "--calls", "3", "--concurrency", "3",
        "--faults", "stt-primary=500,tts-primary=garbage", "--fault-after", "0",
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "faults on: stt-primary=500, tts-primary=garbage" in out
    assert _row(out, "mode") == "voice"
    assert _row(out, "calls") == "3 (0 failed)"
    for outcome in ("converted=1", "callback=1", "not_interested=1"):
        assert outcome in _row(out, "outcomes")
    for name in ("caller wait p50", "caller wait p95"):
        assert re.fullmatch(r"\d+ ms", _row(out, name))
    for stage in ("endpointing", "stt", "llm", "tools", "tts"):
        assert re.fullmatch(r"\d+ ms / \d+ ms", _row(out, f"{stage} p50 / p95"))
    stt_fallbacks, tts_fallbacks = (int(n) for n in _row(out, "STT / TTS fallbacks").split(" / "))
    assert stt_fallbacks >= 3 and tts_fallbacks >= 3  # every utterance and sentence moved to the backup
    assert int(_row(out, "interruptions (barge-in)")) >= 1


def test_voice_arguments_are_checked(tmp_path: Path) -> None:
    text_mode = _simulate(tmp_path, "--stt-url", "http://127.0.0.1:9", timeout=60)
    assert (
        text_mode.returncode == 2
        and "--stt-url / --tts-url / --voice-cache need --mode voice" in text_mode.stderr
    )
    bad_target = _simulate(
        tmp_path, "--mode", "voice", "--calls", "1", "--faults", "stt-tertiary=500", timeout=120
    )
    assert bad_target.returncode == 2
    assert "unknown fault target 'stt-tertiary'" in bad_target.stderr and "tts-backup" in bad_target.stderr
    bad_mode = _simulate(
        tmp_path, "--mode", "voice", "--calls", "1", "--faults", "tts-primary=empty", timeout=120
    )
    assert bad_mode.returncode == 2 and "fault mode 'empty' for tts-primary" in bad_mode.stderr
