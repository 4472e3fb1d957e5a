"""Importing the settings root stays cheap: a fresh interpreter, so nothing else has imported litellm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_settings_never_imports_litellm_or_livekit() -> None:
    code = (
        "import sys, json; import agent.app_settings; "
        "print(json.dumps([m for m in ('litellm', 'livekit', 'livekit.agents') if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
