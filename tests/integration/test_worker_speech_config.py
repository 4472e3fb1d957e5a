"""``sales-agent start`` with an unusable speech chain stops before it connects to LiveKit."""

from __future__ import annotations


def test_worker_without_any_stt_key_stops_before_connecting_with_one_line(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("SALES_AGENT_")
    }
    env.update(LIVEKIT_URL="ws://127.0.0.1:9", LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret",
               LITELLM_LOCAL_MODEL_COST_MAP="True", CARTESIA_API_KEY="test-key")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "agent", "start"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("sales-agent: No usable STT provider")
