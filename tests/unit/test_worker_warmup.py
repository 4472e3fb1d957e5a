"""The LiveKit worker's warm-up (``agent/worker_warmup.py``): jobs accepted while LiteLLM and the call
modules load wait for them, ``/ready`` says so, a failed warm-up makes the worker take no jobs.

The warm-up's modules are replaced by a module whose import blocks until the test opens a gate, so
"still loading" is a state the test holds, not a race it hopes to win. The real worker process,
registering before it imports LiteLLM, is ``tests/integration/test_worker_start.py``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from livekit.agents import JobRequest
from livekit.protocol import agent as agent_proto
from livekit.protocol import models
from waiting import until

import agent.runtime
from agent import worker, worker_warmup
from agent.background_imports import BackgroundImports
from agent.health import HealthRegistry
from telemetry.config_errors import bind_listener


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The warm-up imports one module whose import waits for the returned event (60 s at most)."""
    name = f"warmup_gated_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}_gate.py").write_text("import threading\nGATE = threading.Event()\n")
    (tmp_path / f"{name}.py").write_text(
        f"from {name}_gate import GATE\nif not GATE.wait(60):\n    raise TimeoutError('gate never opened')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    opened: threading.Event = importlib.import_module(f"{name}_gate").GATE
    monkeypatch.setattr(worker_warmup, "_warmup", BackgroundImports([name]))
    monkeypatch.setattr(worker, "_state", None)
    try:
        yield opened
    finally:
        opened.set()  # the loader thread ends with the test


class _Stop(Exception):
    """Raised by the stand-in ``start_runtime``: the job got as far as building its call's services."""


def _job(tenant: str = "acme") -> agent_proto.Job:
    return agent_proto.Job(
        id="AJ_warmup", metadata=f'{{"tenant_id": "{tenant}"}}', room=models.Room(sid="RM_1", name="call-1")
    )


async def _answer(job: agent_proto.Job) -> str:
    answers: list[str] = []

    async def on_accept(_args: Any) -> None:
        answers.append("accepted")

    async def on_reject(_terminate: bool) -> None:
        answers.append("rejected")

    await worker.request_fnc(JobRequest(job=job, on_reject=on_reject, on_accept=on_accept))
    [answer] = answers
    return answer


def _ctx(job: agent_proto.Job, shutdowns: list[str]) -> Any:
    return SimpleNamespace(
        job=job, proc=SimpleNamespace(userdata={}), shutdown=lambda reason="": shutdowns.append(reason)
    )


async def test_a_job_accepted_during_the_warmup_waits_for_it_then_starts_its_call(
    gate, monkeypatch, otel, caplog
) -> None:
    built: list[dict[str, Any]] = []

    async def fake_start_runtime(_settings: Any, **kwargs: Any) -> Any:
        built.append(kwargs)
        raise _Stop

    monkeypatch.setattr(agent.runtime, "start_runtime", fake_start_runtime)
    monkeypatch.setattr(worker, "speech_services", lambda: None)
    loader = worker.start_warmup()
    assert loader.state == "loading"
    assert worker.worker_load(SimpleNamespace(active_jobs=[])) < 1.0  # type: ignore[arg-type]
    assert await _answer(_job()) == "accepted"  # offered while loading: taken, not refused

    shutdowns: list[str] = []
    with caplog.at_level(logging.INFO, logger="agent.worker_warmup"):
        task = asyncio.create_task(worker.entrypoint(_ctx(_job(), shutdowns)))
        await until(lambda: "arrived" in caplog.text)
        assert not built and not task.done()  # waiting: nothing of the call is built yet
        gate.set()
        with pytest.raises(_Stop):
            await asyncio.wait_for(task, 30)
    assert len(built) == 1 and not shutdowns  # then its call's services were built, once
    assert "job AJ_warmup waited" in caplog.text
    [span] = otel.spans(worker_warmup.WARMUP_WAIT_SPAN)
    assert span.attributes is not None and span.attributes["tenant.id"] == "acme"
    assert span.status.is_ok


async def test_a_job_after_the_warmup_does_not_wait(gate, monkeypatch, otel, caplog) -> None:
    async def fake_start_runtime(_settings: Any, **_kwargs: Any) -> Any:
        raise _Stop

    monkeypatch.setattr(agent.runtime, "start_runtime", fake_start_runtime)
    monkeypatch.setattr(worker, "speech_services", lambda: None)
    gate.set()
    await asyncio.wait_for(worker.start_warmup().wait(), 30)
    with caplog.at_level(logging.INFO, logger="agent.worker_warmup"), pytest.raises(_Stop):
        await worker.entrypoint(_ctx(_job(), []))
    assert "arrived" not in caplog.text
    assert not otel.spans(worker_warmup.WARMUP_WAIT_SPAN)


async def test_a_job_waits_no_longer_than_the_warmup_timeout(gate, monkeypatch, otel, caplog) -> None:
    settings = worker.worker_settings().with_area("worker", warmup_timeout_s=0.05)
    monkeypatch.setattr(worker, "_config", worker.WorkerConfig(settings, worker.tenant_registry()))
    worker.start_warmup()
    shutdowns: list[str] = []
    with caplog.at_level(logging.INFO, logger="agent.worker_warmup"):
        await asyncio.wait_for(worker.entrypoint(_ctx(_job(), shutdowns)), 30)
    assert shutdowns == ["warm-up not done"]
    assert "still loading after 0.05 s (SALES_AGENT_WARMUP_TIMEOUT_S)" in caplog.text
    [span] = otel.spans(worker_warmup.WARMUP_WAIT_SPAN)
    assert not span.status.is_ok
    assert worker_warmup.warmup().state == "loading"  # the job gave up; the warm-up goes on


async def test_a_failed_warmup_leaves_the_worker_unavailable_and_says_why(monkeypatch, caplog) -> None:
    monkeypatch.setattr(worker_warmup, "_warmup", BackgroundImports(["no_such_module_for_the_warmup"]))
    with caplog.at_level(logging.INFO):
        loader = worker.start_warmup()
        with pytest.raises(ModuleNotFoundError):
            await asyncio.wait_for(loader.wait(), 30)
        assert "warm-up failed after" in caplog.text and "no_such_module_for_the_warmup" in caplog.text
        assert worker.worker_load(SimpleNamespace(active_jobs=[])) == 1.0  # type: ignore[arg-type]
        assert await _answer(_job()) == "rejected"
        assert "rejecting job AJ_warmup for room 'call-1': the worker's warm-up failed" in caplog.text
        shutdowns: list[str] = []
        await asyncio.wait_for(worker.entrypoint(_ctx(_job(), shutdowns)), 30)
    assert shutdowns == ["warm-up not done"]
    healthy, details = await worker_warmup.warmup_check()()
    assert not healthy and details["state"] == "failed"
    assert details["error"].startswith("ModuleNotFoundError")


async def test_ready_fails_its_warmup_check_until_the_warmup_is_done(gate, monkeypatch) -> None:
    async def fake_start_runtime(_settings: Any, **_kwargs: Any) -> Any:
        return SimpleNamespace(health=HealthRegistry(), health_server=None)

    monkeypatch.setattr(agent.runtime, "start_runtime", fake_start_runtime)
    listener = bind_listener("127.0.0.1", 0, "SALES_AGENT_HEALTH_PORT")  # as run_worker binds it
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    config = worker.worker_config()
    monkeypatch.setattr(worker, "_config", worker.WorkerConfig(config.settings, config.tenants, listener))
    worker.start_warmup()
    task = asyncio.create_task(worker._start_worker_services())
    try:
        await until(lambda: worker._state is not None and worker._state.health_server is not None)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/health") as resp:
                assert resp.status == 200  # alive while it loads
            async with http.get(f"{url}/ready") as resp:
                body = await resp.json()
            assert resp.status == 503 and body["ready"] is False
            assert body["checks"]["warmup"]["details"]["state"] == "loading"
            assert body["checks"]["worker_services"]["details"]["state"] == "starting"
            gate.set()
            await asyncio.wait_for(task, 30)
            async with http.get(f"{url}/ready") as resp:
                body = await resp.json()
            assert resp.status == 200 and body["ready"] is True
            assert body["checks"]["warmup"]["details"]["state"] == "loaded"
    finally:
        task.cancel()
        state = worker._state
        if state is not None:
            if state.health_server is not None:
                await state.health_server.stop()
            await state.sessions.stop()
