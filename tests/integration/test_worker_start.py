"""``sales-agent start`` registers with LiveKit and accepts a job before it has imported LiteLLM.

A ``sitecustomize`` on ``PYTHONPATH`` holds every import of ``litellm`` in the worker process until the
test opens a gate (a file), and notes which thread asked. A fake LiveKit server
(``bench/_fake_livekit.py``) registers the worker, offers it a job and assigns it once accepted. With
the gate closed the worker must register, accept the job and start it, the job waiting for the warm-up
(``agent/worker_warmup.py``); once the gate opens the warm-up finishes and the job goes on. A worker
that imports LiteLLM before registering never registers while the gate is closed, and this test fails.
Checked by order of events, never by time (how soon is bench item 6's business).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench._fake_livekit import JOB_ID, run_fake_livekit
from local_services.harness import in_thread, stop_process

REPO = Path(__file__).resolve().parents[2]

LITELLM_GATE = r'''
import os, sys, threading, time

GATE, NOTES = os.environ["TEST_LITELLM_GATE"], os.environ["TEST_LITELLM_NOTES"]


class LiteLLMGate:
    """Holds the first import of litellm until the GATE file exists (300 s at most)."""

    held = False

    def find_spec(self, name, path=None, target=None):
        if name == "litellm" and not self.held:
            self.held = True
            with open(NOTES, "a") as notes:
                notes.write(f"held {threading.current_thread().name}\n")
            deadline = time.monotonic() + 300
            while not os.path.exists(GATE) and time.monotonic() < deadline:
                time.sleep(0.05)
            with open(NOTES, "a") as notes:
                notes.write("released\n")
        return None


sys.meta_path.insert(0, LiteLLMGate())
'''


def _worker_env(tmp_path: Path, livekit_url: str, gate_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_", "CRM_"))}
    chain = [{"name": "local", "kind": "local", "model": "m", "api_base": "http://127.0.0.1:9/v1"}]
    env.update(
        LIVEKIT_URL=livekit_url,
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="test-secret-test-secret-test-secret",
        SALES_AGENT_LLM_CHAIN=json.dumps(chain),
        OPENAI_API_KEY="sk-test",  # the default STT and TTS chains' openai providers
        CRM_OUTBOX_PATH=str(tmp_path / "outbox.sqlite3"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONPATH=os.pathsep.join([str(gate_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        TEST_LITELLM_GATE=str(tmp_path / "gate-open"),
        TEST_LITELLM_NOTES=str(tmp_path / "litellm-notes.txt"),
    )
    return env


def _until(condition: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"{what} within {timeout_s:.0f} s; worker output:\n{tail}")
        time.sleep(0.1)


def test_the_worker_registers_and_takes_a_job_while_litellm_is_still_held_back(tmp_path: Path) -> None:
    gate_dir = tmp_path / "site"
    gate_dir.mkdir()
    (gate_dir / "sitecustomize.py").write_text(LITELLM_GATE)
    env = _worker_env(tmp_path, "", gate_dir)
    notes, gate = Path(env["TEST_LITELLM_NOTES"]), Path(env["TEST_LITELLM_GATE"])
    log_path = tmp_path / "worker.log"

    def logged(text: str) -> Callable[[], bool]:
        return lambda: text in log_path.read_text(errors="replace")

    with in_thread(lambda: run_fake_livekit(assign=True)) as record, log_path.open("w") as log:
        env["LIVEKIT_URL"] = record.url
        worker = subprocess.Popen(
            [sys.executable, "-m", "agent", "start"], cwd=REPO, env=env, stdout=log, stderr=log
        )
        try:
            # 1. Registered and accepted the job with litellm's import held back.
            _until(record.answered.is_set, 240, "the worker did not register and answer an offer", log_path)
            assert record.registered_at is not None and record.accepted is True
            assert not gate.exists()
            held = notes.read_text().splitlines() if notes.exists() else []
            # The warm-up thread asked for litellm after registering; nothing let it through.
            assert held in ([], ["held sales-agent-imports"]), held
            # 2. The job was assigned and started: it waits for the warm-up, still held back.
            _until(logged(f"job {JOB_ID} arrived"), 120, "the assigned job did not start waiting", log_path)
            assert "released" not in notes.read_text()
            # 3. Let litellm load: the warm-up finishes and the waiting job goes on to its call.
            gate.touch()
            _until(logged("warm-up done: LiteLLM and the call modules loaded"), 240, "no warm-up", log_path)
            _until(logged(f"job {JOB_ID} waited"), 60, "the job did not resume after the warm-up", log_path)
        finally:
            gate.touch()
            stop_process(worker, 30)
    output = log_path.read_text(errors="replace")
    assert "warm-up failed" not in output, output[-4000:]
    assert notes.read_text().splitlines() == ["held sales-agent-imports", "released"]
