"""bench.bench_llm_path runs end to end under callgrind with tiny sizes (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench._callgrind import unavailable_reason

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@pytest.mark.timeout(2400)
def test_llm_path_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    cmd = [sys.executable, "-m", "bench.bench_llm_path", "--quick", "--json-out", str(out)]
    cmd += ["--variants", "openai,router", "--jobs", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=2300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = {t["title"].split(":")[0]: t for t in json.loads(out.read_text())}
    path = tables["8. The LLM path"]
    rows = {row[0]: row for row in path["rows"]}
    router = rows["Router.acompletion (as ProviderChain builds it)"]
    direct = rows["direct: openai SDK AsyncOpenAI stream"]
    assert router[1] > 1.0 and direct[1] > 1.0  # millions of instructions per call
    assert router[6:10] == ["ok", "ok", "ok", "ok"]  # streams, usage, tool calls, errors mapped
    assert path["verdicts"], "the goal line is reported"
    assert any(t.startswith("8b.") for t in tables) and any(t.startswith("8c.") for t in tables)
