"""One breaker per dependency and one set of LLM cooldowns per worker process, not per job.

LiveKit's thread executor runs each job on its own event loop in a thread of the worker process, and
each job builds its own runtime (CRM and LLM clients). The trial: with the CRM down every call waited
8.6-9.4 s, sent 4 requests, and the breaker never opened. Counted at the stand-ins here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent import worker
from agent.app_settings import AppSettings
from agent.crm import Contact, CrmSettings
from agent.llm import LLMSettings, ProviderConfig
from agent.resilience import BreakerState, ResilienceState, process_resilience
from agent.runtime import Runtime, start_runtime
from agent.tenants import TenantRegistry
from local_services.llm_provider import run_llm_provider

pytestmark = pytest.mark.usefixtures("fast_retries")

JOBS = 4
TENANTS = TenantRegistry.from_mapping({"tenants": {"acme": {"display_name": "Acme"}}})


def in_job_thread(job: Any) -> Any:
    """Run ``job()`` as LiveKit's thread executor runs a call: a thread with its own event loop."""
    return asyncio.to_thread(lambda: asyncio.run(job()))


async def test_jobs_on_their_own_loops_share_breakers_and_cooldowns(crm_service, tmp_path: Path) -> None:
    url, admin = crm_service
    shared = ResilienceState()  # what process_resilience() gives the worker, fresh for this test
    await admin.post("/admin/fault", json={"mode": "down"})
    async with run_llm_provider("primary", "500") as primary, run_llm_provider("backup") as backup:
        llm_settings = LLMSettings(
            chain=[
                ProviderConfig(name=p.name, kind="local", model=f"{p.name}-model", api_base=p.url)
                for p in (primary, backup)
            ],
            allowed_fails=0,  # one failure cools a provider down
            cooldown_s=60,
            first_token_deadline_s=2.0,
        )
        crm_settings = CrmSettings(
            crm_url=url,
            outbox_path=str(tmp_path / "outbox.sqlite3"),
            breaker_failure_threshold=5,
            retries=3,  # 4 requests per call while the breaker is closed
        )

        async def job(i: int) -> tuple[str, str, BreakerState]:
            runtime: Runtime = await start_runtime(
                AppSettings.from_env().model_copy(update={"llm": llm_settings, "crm": crm_settings}),
                tenants=TENANTS,
                start_outbox_drainer=False,
                resilience=shared,
            )
            try:
                ctx = _chat("Hi, who is this?")
                reply = await runtime.llm.chat(chat_ctx=ctx).collect()
                write = await runtime.crm.upsert_contact("acme", Contact(name="L", email=f"l{i}@acme.com"))
                return reply.text, write.status, runtime.crm.crm_caller.breaker.state
            finally:
                await runtime.aclose()

        try:
            results = [await in_job_thread(lambda i=i: job(i)) for i in range(JOBS)]
        finally:
            shared.close()
        primary_requests = primary.stats.chat_requests
    crm_requests = (await admin.get("/admin/stats")).json()["requests"]

    assert [status for _, status, _ in results] == ["queued"] * JOBS
    # 4 requests by the first call, 1 by the second (the 5th failure opens the breaker and stops
    # its retries); the calls after it fail fast without a request. Per-job breakers: 4 per call.
    assert crm_requests == 5
    assert [state for *_, state in results][1:] == [BreakerState.OPEN] * (JOBS - 1)
    # The primary failed once, in the first call; the others skip it while it cools down.
    assert primary_requests == 1
    assert backup.stats.chat_requests == JOBS
    assert all(text.startswith("Thanks for taking my call") for text, *_ in results)


def _chat(text: str) -> Any:
    from livekit.agents import llm

    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content=text)
    return ctx


class _Stop(Exception):
    pass


async def test_the_worker_gives_every_job_the_process_wide_state(monkeypatch, otel) -> None:
    # ``otel``: the test session's telemetry is installed before the worker's setup_telemetry runs.
    seen: list[dict[str, Any]] = []

    async def fake_start_runtime(_settings: Any, **kwargs: Any) -> Runtime:
        seen.append(kwargs)
        raise _Stop

    import agent.runtime

    monkeypatch.setattr(agent.runtime, "start_runtime", fake_start_runtime)
    monkeypatch.setattr(worker, "_state", None)
    # No speech keys here: the job's STT/TTS chains are not what this test is about.
    monkeypatch.setattr(worker, "speech_services", lambda: None)
    worker.start_warmup()  # as registering does
    await worker._start_worker_services()  # the worker's own services (health, drainer)
    job = SimpleNamespace(
        id="job-1", metadata='{"tenant_id": "acme"}', room=SimpleNamespace(metadata="", sid="RM", name="r")
    )
    with pytest.raises(_Stop):
        await worker.entrypoint(SimpleNamespace(job=job, proc=SimpleNamespace(userdata={})))  # type: ignore[arg-type]
    assert len(seen) == 2
    assert all(kwargs["resilience"] is process_resilience() for kwargs in seen)
    if worker._state is not None:
        await worker._state.sessions.stop()
