"""Start-up (issue 13 goal 4), checked by behaviour, never by time.

- Every local stand-in, started the way users start it (``sales-agent <name>``) and serving a request,
  never imports LiteLLM or LiveKit: a ``sitecustomize`` on ``PYTHONPATH`` puts an import guard in front
  of every other finder before the command's first line runs, and a forbidden import makes the process
  fail with the importing stack.
- ``simulate`` prints its first line before it imports LiteLLM or LiveKit, says when each start-up
  stage is done, and while its loader thread imports them the main thread imports none of the same
  modules (the rule in ``agent/simulate/startup.py``).

How long any of this takes is the benchmark's business (``bench/bench_startup.py``).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from local_services import STAND_INS

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("litellm", "livekit")

IMPORT_GUARD = f'''
import sys, traceback

FORBIDDEN = {FORBIDDEN!r}


class ImportGuard:
    """Refuses LiteLLM and LiveKit: the process fails and says who asked."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            stack = "".join(traceback.format_stack(limit=12))
            sys.stderr.write(f"FORBIDDEN IMPORT {{name}}\\n{{stack}}")
            sys.stderr.flush()
            raise ImportError(f"{{name}} must not be imported by a local service")
        return None


sys.meta_path.insert(0, ImportGuard())
print("IMPORT GUARD ON", file=sys.stderr, flush=True)
'''


def _env(guard_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_", "CRM_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    if guard_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(guard_dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _read_ready(process: subprocess.Popen[str], timeout_s: float, log_path: Path) -> int:
    """The port of the stand-in's ``READY <port>`` line (bounded wait; the process's failure otherwise)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.2):
                line = process.stdout.readline()
                if line.startswith("READY "):
                    return int(line.split()[1])
    process.kill()
    process.wait(timeout=30)
    stderr = log_path.read_text(errors="replace")
    raise AssertionError(f"no READY line (exit {process.returncode}):\n{stderr[-4000:]}")


def _chat(url: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        assert "[DONE]" in "".join(response.iter_text())


def _crm(url: str) -> None:
    tenant = {"X-Tenant-Id": "acme"}
    body = {"contact_key": "ann@acme.com", "name": "Ann"}
    put = httpx.put(f"{url}/v1/contacts", json=body, headers=tenant, timeout=10)
    assert put.status_code < 300, put.text
    assert httpx.get(f"{url}/v1/calendar/slots", headers=tenant, timeout=10).status_code == 200


def _webhook(url: str) -> None:
    assert httpx.post(f"{url}/pager", json={"alerts": []}, timeout=10).status_code < 300


def _otlp(url: str) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    body = ExportTraceServiceRequest().SerializeToString()
    headers = {"content-type": "application/x-protobuf"}
    assert httpx.post(f"{url}/v1/traces", content=body, headers=headers, timeout=10).status_code == 200


# A request each stand-in serves beyond /admin/stats: an import done lazily at the first request counts.
EXERCISE: dict[str, Callable[[str], None]] = {
    "llm-provider": _chat,
    "crm-service": _crm,
    "webhook-sink": _webhook,
    "otlp-sink": _otlp,
}
EXTRA_ARGS = {"crm-service": lambda tmp: ["--db", str(tmp / "crm.sqlite3")]}


def test_every_stand_in_is_exercised() -> None:
    assert set(EXERCISE) == set(STAND_INS)


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_a_local_service_never_imports_litellm_or_livekit(name: str, tmp_path: Path) -> None:
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(IMPORT_GUARD)
    args = EXTRA_ARGS[name](tmp_path) if name in EXTRA_ARGS else []
    argv = [sys.executable, "-m", "agent", name, *args, "--port", "0"]
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv, cwd=REPO, env=_env(guard_dir), stdout=subprocess.PIPE, stderr=log, text=True
        )
        try:
            port = _read_ready(process, 120, log_path)
            url = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{url}/admin/stats", timeout=10).status_code == 200
            EXERCISE[name](url)
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    stderr = log_path.read_text(errors="replace")
    assert "IMPORT GUARD ON" in stderr  # the guard was in place from the interpreter's start
    assert "FORBIDDEN IMPORT" not in stderr, stderr[-4000:]
    assert process.returncode == 0, stderr[-4000:]


# --- simulate: the first line comes before the heavy imports; the two threads never import the same module

SIMULATE_PROBE = r"""
import json, sys, threading

imports = {}  # module -> names of the threads that imported it
heavy_loaded_at_first_line = []
window = {"open": False, "main": set()}


class Recorder:  # first on sys.meta_path: sees every module not loaded yet, and which thread asks

    def find_spec(self, name, path=None, target=None):
        thread = threading.current_thread().name
        imports.setdefault(name, set()).add(thread)
        if window["open"] and thread == "MainThread":
            window["main"].add(name)
        return None


sys.meta_path.insert(0, Recorder())

import builtins
import agent.simulate.startup as startup

real_print = builtins.print


def first_print(*args, **kwargs):
    if not heavy_loaded_at_first_line and args and str(args[0]).startswith("simulate: starting"):
        heavy_loaded_at_first_line.append(sorted(m for m in ("litellm", "livekit") if m in sys.modules))
    real_print(*args, **kwargs)


builtins.print = first_print
real_start, real_wait = startup.BackgroundImports.start, startup.BackgroundImports.wait


def start(self):
    window["open"] = True
    return real_start(self)


async def wait(self):
    try:
        return await real_wait(self)
    finally:
        window["open"] = False


startup.BackgroundImports.start, startup.BackgroundImports.wait = start, wait

from agent.cli import main

status = main(["simulate", "--calls", "1"])
loader = {m for m, threads in imports.items() if "sales-agent-imports" in threads}
real_print("PROBE " + json.dumps({
    "status": status,
    "heavy_at_first_line": heavy_loaded_at_first_line[0] if heavy_loaded_at_first_line else None,
    "loader_imported": len(loader),
    "litellm_by_loader": "litellm" in loader,
    "livekit_by_loader": "livekit.agents" in loader,
    "main_while_loading_and_by_loader": sorted(window["main"] & loader),
}), flush=True)
"""


def test_simulate_prints_its_first_line_before_loading_litellm_and_livekit_in_the_background() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SIMULATE_PROBE],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    probe = json.loads(next(line for line in lines if line.startswith("PROBE ")).removeprefix("PROBE "))
    assert probe["status"] == 0, done.stdout[-3000:]
    assert probe["heavy_at_first_line"] == []  # nothing of LiteLLM or LiveKit before the first line
    assert probe["litellm_by_loader"] and probe["livekit_by_loader"]  # the loader thread loaded them
    assert probe["main_while_loading_and_by_loader"] == []
    # The stages the README shows, in order, the first one first.
    stages = [
        "simulate: starting 1 call; loading LiteLLM and LiveKit in the background",
        "simulate: local services up: LLM primary, LLM backup, CRM + calendar",
        "simulate: LiteLLM and LiveKit loaded",
        "simulate: LLM chain primary -> backup",
        "simulate: ready: the first call starts now",
        "simulate: summary",
    ]
    assert lines[0].startswith(stages[0]), lines[:3]
    positions = [next(i for i, line in enumerate(lines) if stage in line) for stage in stages]
    assert positions == sorted(positions), lines[:12]
