"""The LiveKit worker's admission, load and options (no LiveKit server needed)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.agents import JobExecutorType, JobRequest
from livekit.protocol import agent as agent_proto
from livekit.protocol import models

from agent import worker
from agent.errors import InvalidInput


@pytest.mark.parametrize(
    ("metadata", "tenant"),
    [
        ('{"tenant_id": "acme"}', "acme"),
        ('{"tenant": "globex", "campaign": "q4"}', "globex"),
        ("acme", "acme"),
        ('"acme"', "acme"),
        ("", None),
        ('{"campaign": "q4"}', None),
        ("[1, 2]", None),
    ],
)
def test_tenant_from_metadata(metadata: str, tenant: str | None) -> None:
    assert worker.tenant_from_metadata(metadata) == tenant


def _job(job_metadata: str = "", room_metadata: str = "") -> agent_proto.Job:
    return agent_proto.Job(
        id="AJ_test",
        metadata=job_metadata,
        room=models.Room(sid="RM_1", name="call-1", metadata=room_metadata),
    )


def test_tenant_for_job_prefers_job_then_room_then_default() -> None:
    assert worker.tenant_for_job(_job('{"tenant_id": "acme"}', '{"tenant_id": "globex"}')) == "acme"
    assert worker.tenant_for_job(_job("", '{"tenant_id": "globex"}')) == "globex"
    assert worker.tenant_for_job(_job(), default_tenant="acme") == "acme"
    with pytest.raises(InvalidInput, match="no tenant"):
        worker.tenant_for_job(_job())
    with pytest.raises(InvalidInput, match="unknown tenant 'initech'"):
        worker.tenant_for_job(_job('{"tenant_id": "initech"}'))
    with pytest.raises(InvalidInput, match="malformed tenant id"):
        worker.tenant_for_job(_job('{"tenant_id": "../etc"}'))


class _Answers:
    def __init__(self) -> None:
        self.accepted: list[Any] = []
        self.rejected: list[bool] = []

    async def on_accept(self, args: Any) -> None:
        self.accepted.append(args)

    async def on_reject(self, terminate: bool) -> None:
        self.rejected.append(terminate)


async def test_request_for_unknown_tenant_is_rejected_with_a_clear_log(caplog) -> None:
    answers = _Answers()
    request = JobRequest(
        job=_job('{"tenant_id": "initech"}'), on_reject=answers.on_reject, on_accept=answers.on_accept
    )
    with caplog.at_level(logging.WARNING, logger="agent.worker"):
        await worker.request_fnc(request)
    assert answers.rejected and not answers.accepted
    assert "rejecting job AJ_test for room 'call-1': unknown tenant 'initech'" in caplog.text


async def test_request_for_known_tenant_is_accepted() -> None:
    answers = _Answers()
    request = JobRequest(
        job=_job("", '{"tenant_id": "globex"}'), on_reject=answers.on_reject, on_accept=answers.on_accept
    )
    await worker.request_fnc(request)
    assert not answers.rejected
    [args] = answers.accepted
    assert args.attributes == {"tenant.id": "globex"}


def test_load_counts_running_jobs_against_capacity(monkeypatch) -> None:
    monkeypatch.setattr(worker, "_state", None)
    max_sessions = worker.worker_settings().sessions.max_sessions
    server = SimpleNamespace(active_jobs=[object()] * 10)
    assert worker.worker_load(server) == pytest.approx(10 / max_sessions)  # type: ignore[arg-type]
    server = SimpleNamespace(active_jobs=[object()] * (max_sessions + 5))
    assert worker.worker_load(server) == 1.0  # type: ignore[arg-type]


def test_worker_options_wire_our_hooks(monkeypatch) -> None:
    options = worker.worker_options()
    assert options.entrypoint_fnc is worker.entrypoint
    assert options.request_fnc is worker.request_fnc
    assert options.load_fnc is worker.worker_load
    assert options.job_executor_type is JobExecutorType.THREAD
    # No forkserver with job threads: LiteLLM loads after registering (agent/worker_warmup.py).
    assert not options.preload_modules
    settings = worker.worker_settings().with_area("worker", job_executor="process")
    monkeypatch.setattr(worker, "_config", worker.WorkerConfig(settings, worker.tenant_registry()))
    options = worker.worker_options()
    assert options.job_executor_type is JobExecutorType.PROCESS
    assert "litellm" in (options.preload_modules or [])  # the forkserver loads it once for every process


async def test_worker_speech_chains_use_the_real_providers_whose_keys_are_set(monkeypatch, caplog) -> None:
    """The default chains (deepgram -> openai STT, cartesia -> openai TTS) with the keys read once into
    the settings (not from the environment later); a missing key leaves a provider out with a log line,
    and every call gets its own plugin clients and CallVAD."""
    from livekit.plugins import silero

    from agent.call_context import CallContext
    from agent.speech import SpeechServices, STTSettings, TTSSettings
    from agent.speech.call_vad import CallVAD

    keys = {"OPENAI_API_KEY": "test-openai", "CARTESIA_API_KEY": "test-cartesia"}
    stt_settings, tts_settings = STTSettings.load(environ=keys), TTSSettings.load(environ=keys)
    for var in ("DEEPGRAM_API_KEY", *keys):
        monkeypatch.delenv(var, raising=False)  # the plugins get the keys from the settings
    with caplog.at_level(logging.WARNING, logger="agent.speech.chain"):
        speech = SpeechServices(stt_settings, tts_settings, silero.VAD.load())
    assert [p.name for p in speech.stt_chain.providers] == ["openai"]
    assert [p.name for p in speech.tts_chain.providers] == ["cartesia", "openai"]
    assert any(
        "deepgram left out of the chain: no API key (set DEEPGRAM_API_KEY)" in r.message
        for r in caplog.records
    )
    kwargs = speech.for_call(CallContext("acme", "s1", "c1"))
    assert isinstance(kwargs["vad"], CallVAD)
    [stt_plugin] = kwargs["stt"]._plugins.values()
    cartesia, openai_tts = kwargs["tts"]._plugins.values()
    assert type(stt_plugin).__module__ == "livekit.plugins.openai.stt"
    assert stt_plugin._client.api_key == "test-openai"
    assert type(cartesia).__module__ == "livekit.plugins.cartesia.tts"
    assert cartesia._opts.api_key == "test-cartesia"
    assert type(openai_tts).__module__ == "livekit.plugins.openai.tts"
    assert "test-" not in caplog.text  # keys are never logged
    await kwargs["stt"].aclose()
    await kwargs["tts"].aclose()


async def test_worker_services_serve_health_and_track_sessions(monkeypatch, tmp_path) -> None:
    import aiohttp

    from agent.app_settings import AppSettings
    from agent.llm import ProviderConfig
    from agent.tenants import TenantRegistry
    from local_services.crm_service import run_crm_service
    from local_services.llm_provider import run_llm_provider
    from telemetry.config_errors import bind_listener

    async with run_llm_provider("primary") as primary, run_crm_service(tmp_path / "crm.sqlite3") as crm_url:
        settings = AppSettings.from_env(
            llm={"chain": [ProviderConfig(name="primary", kind="local", model="m", api_base=primary.url)]},
            crm={"crm_url": crm_url, "outbox_path": str(tmp_path / "outbox.sqlite3")},
        )
        listener = bind_listener("127.0.0.1", 0, "SALES_AGENT_HEALTH_PORT")  # as run_worker binds it
        port = listener.getsockname()[1]
        monkeypatch.setattr(worker, "_config", None)
        worker.configure(settings, TenantRegistry.from_file(settings.tenants.file), listener)
        monkeypatch.setattr(worker, "_state", None)
        worker.start_warmup()  # as registering does
        await worker._start_worker_services()
        state = worker._state
        assert state is not None and state.runtime is not None
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/ready") as resp:
                body = await resp.json()
            assert resp.status == 200 and body["ready"] is True
            assert set(body["checks"]) >= {"warmup", "llm.primary", "llm.chain", "crm", "calendar", "outbox"}

            async def on_close(_outcome: str) -> None:
                return None

            state.sessions.open("job-1", "acme", on_close)
            load = worker.worker_load(SimpleNamespace(active_jobs=[]))  # type: ignore[arg-type]
            assert load == pytest.approx(1 / settings.sessions.max_sessions)
        finally:
            await state.runtime.aclose()
            await state.sessions.stop()


def test_livekit_is_told_not_to_preload_models_the_agent_does_not_use() -> None:
    environ: dict[str, str] = {}
    worker.prepare_livekit_environment(environ)
    assert environ == {"LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE": "0"}
    environ = {"LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE": "1"}  # an operator's choice stands
    worker.prepare_livekit_environment(environ)
    assert environ == {"LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE": "1"}


def test_a_call_reads_the_caller_at_the_rate_silero_scores() -> None:
    # livekit's room input defaults to 24 kHz; Silero would then resample every frame on the event loop.
    audio = worker.room_options().get_audio_input_options()
    assert audio is not None
    assert (audio.sample_rate, audio.num_channels, audio.frame_size_ms) == (16000, 1, 50)
