"""bench.bench_peers runs end to end under callgrind with tiny sizes (figures only; no timing assertions).

The peers outside LiteLLM (OpenLLMetry, OpenInference) are the ``bench-peers`` dependency group, which CI
does not install: the bench lists them as skipped. LiteLLM's own otel callback needs nothing extra.
"""

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
def test_peers_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "tables.json"
    cmd = [sys.executable, "-m", "bench.bench_peers", "--quick", "--json-out", str(out)]
    cmd += ["--variants", "bare,litellm-otel,ours-off,ours", "--jobs", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=2300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = {t["title"].split(":")[0]: t for t in json.loads(out.read_text())}
    peers = tables["7. Against the peers"]
    rows = {row[0]: row for row in peers["rows"]}
    assert {"(a) bare: Router.acompletion", "(b) ours: RouterLLM spans + metrics"} <= set(rows)
    for label, row in rows.items():
        assert isinstance(row[1], float) and row[1] > 1.0, (label, row)  # millions of instructions
    ours = rows["(b) ours: RouterLLM spans + metrics"]
    assert ours[5] == 1.0 and ours[9] == "yes"  # one attempt span, tenant recorded
    assert rows["(a) bare: Router.acompletion"][5] == 0  # bare emits nothing
    assert peers["verdicts"], "the goal line is reported"
