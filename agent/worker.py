"""The LiveKit worker: job admission by tenant, one ``SalesCall`` per job, health and load.

Where things live (``SALES_AGENT_JOB_EXECUTOR``):

- ``thread`` (default): every job of a worker runs in a thread of the worker process, each with its
  own event loop. Imports (livekit ~120 MB, litellm ~200 MB) are paid once per worker, the
  ``SessionManager`` is process-wide (its sweep runs on the worker loop, ``SalesCall`` hops to the
  job's loop to say goodbye) and ``load_fnc`` reports open sessions / ``max_sessions``.
- ``process``: livekit's isolation default; each job process builds its own services and session
  manager, and the load is the number of running jobs / ``max_sessions``.

Either way each job builds its LLM chain and CRM clients on its own loop (httpx/aiohttp clients
must stay on the loop that created them), but their circuit breakers and LLM cooldowns come from
the process's ``process_resilience()``, so one job's failures protect the next call. The worker
process keeps one CRM facade whose outbox drainer delivers writes a finished job queued, and serves
``/health`` + ``/ready``.

Start-up: the worker registers with the LiveKit server before it imports LiteLLM and the call
modules; they load in the background after it registered, and a job that arrives before they are
loaded waits for them (``agent/worker_warmup.py``).

Configuration: ``run_worker`` builds the settings root once and checks everything it can before
livekit's CLI registers with the LiveKit server (LLM chain and keys, STT/TTS chains and keys, tenants,
the outbox file, the health and metrics ports): a broken configuration exits with status 2 and one
line instead of registering a worker that fails every call. A job process of the ``process`` executor
is a fresh interpreter: it builds its own root from the same environment at its first hook.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.app_settings import AppSettings, WorkerSettings
from agent.call_context import CallContext
from agent.errors import InvalidInput
from agent.resilience.state import process_resilience
from agent.tenants import TenantRegistry
from agent.worker_warmup import (
    WARMUP_MODULES,
    prepare_main_thread,
    start_warmup,
    wait_in_job,
    warmup,
    warmup_check,
    warmup_failed,
)
from telemetry import names
from telemetry.config_errors import ConfigError, bind_listener, env_name

if TYPE_CHECKING:
    from livekit.agents import AgentServer, JobContext, JobProcess, JobRequest, WorkerOptions
    from livekit.agents.voice.room_io import RoomOptions
    from livekit.protocol.agent import Job

    from agent.health import HealthServer
    from agent.runtime import Runtime
    from agent.sessions import SessionManager
    from agent.speech import SpeechServices

log = logging.getLogger(__name__)

TENANT_METADATA_KEYS = ("tenant_id", "tenant")


@dataclass(frozen=True)
class WorkerConfig:
    """What this process's hooks run with: the settings root and the tenants loaded from its file."""

    settings: AppSettings
    tenants: TenantRegistry
    health_socket: socket.socket | None = None  # bound by run_worker; served on the worker loop


_config: WorkerConfig | None = None


def configure(
    settings: AppSettings, tenants: TenantRegistry, health_socket: socket.socket | None = None
) -> None:
    """Install the root the livekit hooks use (``run_worker`` does, before registering; tests too)."""
    global _config, _speech
    _config = WorkerConfig(settings, tenants, health_socket)
    with _speech_lock:
        _speech = None  # built from this root at first use


def worker_config() -> WorkerConfig:
    """This process's configuration; a job process (``process`` executor) builds it at its first hook."""
    if _config is None:
        # A job process of its own: /metrics is the worker process's port, its metrics go over OTLP.
        settings = for_worker(AppSettings.from_env()).with_area("telemetry", prometheus_enabled=False)
        configure(settings, TenantRegistry.from_file(settings.tenants.file))
    assert _config is not None
    return _config


def worker_settings() -> AppSettings:
    return worker_config().settings


def tenant_registry() -> TenantRegistry:
    return worker_config().tenants


_speech: SpeechServices | None = None
_speech_lock = threading.Lock()  # job threads (thread executor) start calls concurrently


def speech_services() -> SpeechServices:
    """The process's STT and TTS chains (their provider health is shared by every call of the
    process); the VAD model comes per job process from ``prewarm``."""
    from agent.speech import SpeechServices

    global _speech
    settings = worker_settings()  # may configure this process first (outside the lock: it takes it)
    with _speech_lock:
        if _speech is None:
            _speech = SpeechServices(settings.stt, settings.tts)
        return _speech


def for_worker(settings: AppSettings) -> AppSettings:
    """The worker modes' copy: livekit's CLI prints every record with its own console handler, so ours
    would print each line a second time."""
    return settings.with_area("telemetry", log_stderr=False)


def tenant_from_metadata(metadata: str | None) -> str | None:
    """The tenant id in a job or room metadata string: JSON ``{"tenant_id": ...}`` or a bare id."""
    text = (metadata or "").strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare id; TenantRegistry.get validates its format
    if isinstance(data, dict):
        for key in TENANT_METADATA_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return None
    return data if isinstance(data, str) else None


def tenant_for_job(job: Job, default_tenant: str = "") -> str:
    """Job metadata first, then the room's, then the configured default; validated.

    Raises ``InvalidInput`` (unknown/malformed tenant, or none given and no default).
    """
    tenant = tenant_from_metadata(job.metadata) or tenant_from_metadata(job.room.metadata) or default_tenant
    if not tenant:
        raise InvalidInput(
            'the job carries no tenant: set job or room metadata to {"tenant_id": "<id>"}',
            field="tenant_id",
            error_type="missing_tenant",
        )
    tenant_registry().get(tenant)
    return tenant


# --- worker-process state (thread executor shares it with the jobs) ----------------------------
@dataclass
class WorkerState:
    sessions: SessionManager
    runtime: Runtime | None = None  # health + outbox drainer on the worker loop
    loop: asyncio.AbstractEventLoop | None = None
    health_server: HealthServer | None = None  # from the start; the runtime's checks once it exists


_state: WorkerState | None = None


def _session_manager() -> SessionManager:
    global _state
    if _state is None:
        from agent.sessions import SessionManager

        _state = WorkerState(sessions=SessionManager(worker_settings().sessions, tenant_registry()))
    return _state.sessions


async def _start_worker_services() -> None:
    """On the worker loop: the session sweep and ``/health`` + ``/ready`` at once (``/ready`` failing
    its ``warmup`` check meanwhile); the outbox drainer and the LLM chain's checks once the warm-up
    has loaded what they need."""
    from agent.health import HealthRegistry, HealthServer
    from telemetry.setup import setup_telemetry

    config = worker_config()
    sessions = _session_manager()
    assert _state is not None
    _state.loop = asyncio.get_running_loop()
    sessions.start()
    services_error: list[str] = []

    async def services_check() -> tuple[bool, dict[str, str]]:  # until the runtime's checks take over
        return False, {"state": f"failed: {services_error[0]}" if services_error else "starting"}

    if config.health_socket is not None:
        startup = HealthRegistry(config.settings.health)
        startup.register("warmup", warmup_check(), critical=True)
        startup.register("worker_services", services_check, critical=True)
        server = HealthServer(startup, sock=config.health_socket)
        await server.start()
        _state.health_server = server
        log.info("health endpoints on %s/health and %s/ready", server.url, server.url)
    try:
        await warmup().wait()
    except Exception:
        return  # logged by the warm-up; /ready says why and the worker takes no jobs
    from agent.runtime import start_runtime

    try:
        runtime = await start_runtime(
            config.settings,
            tenants=config.tenants,
            telemetry=setup_telemetry(config.settings.telemetry),
            resilience=process_resilience(),
        )
    except Exception as exc:
        services_error.append(type(exc).__name__)
        log.exception("worker services (outbox drainer, health checks) failed to start; calls still run")
        return
    runtime.health.register("warmup", warmup_check(), critical=True)
    if _state.health_server is not None:
        _state.health_server.use(runtime.health)
        runtime.health_server = _state.health_server  # stopped with the runtime
    _state.runtime = runtime


def _on_worker_started() -> None:
    asyncio.get_running_loop().create_task(_start_worker_services(), name="sales-agent-worker-services")


def _on_worker_registered(*_args: object) -> None:
    start_warmup()  # after registering: nothing of it stands between the worker and its first job


def worker_load(server: AgentServer) -> float:
    """0..1 for livekit's ``load_threshold``: open sessions (thread executor) or running jobs (process);
    1.0 (no job offers) when the warm-up failed: such a worker could not run a call."""
    if warmup_failed():
        return 1.0
    max_sessions = worker_settings().sessions.max_sessions
    by_jobs = len(server.active_jobs) / max_sessions
    by_sessions = _state.sessions.load() if _state is not None else 0.0
    return min(1.0, max(by_jobs, by_sessions))


# --- livekit hooks --------------------------------------------------------------------------------
def prewarm(proc: JobProcess) -> None:
    """Runs once per job process (or thread) before the worker registers: keep it light (telemetry,
    the VAD model). LiteLLM and the call modules load after registering (``agent/worker_warmup.py``)."""
    from livekit.agents import JobExecutorType

    from agent.speech.silero_batch import process_vad
    from telemetry.setup import setup_telemetry

    settings = worker_settings()
    setup_telemetry(settings.telemetry)
    # One Silero model per process (this runs once per job thread or process), every call's windows
    # scored together; each call wraps it in its own CallVAD.
    proc.userdata["vad"] = process_vad()
    if proc.executor_type is JobExecutorType.PROCESS:
        start_warmup()  # a process of its own (its forkserver has usually loaded them already)


async def request_fnc(request: JobRequest) -> None:
    """Accept only jobs whose tenant is known; anything else is rejected with a clear log line. A job
    that comes while the warm-up still loads is accepted: it waits for it in ``entrypoint``."""
    if warmup_failed():
        log.warning(
            "rejecting job %s for room %r: the worker's warm-up failed (see /ready)",
            request.id,
            request.room.name,
            extra={"job_id": request.id},
        )
        await request.reject()
        return
    try:
        tenant = tenant_for_job(request.job, worker_settings().worker.default_tenant)
    except InvalidInput as exc:
        log.warning(
            "rejecting job %s for room %r: %s",
            request.id,
            request.room.name,
            exc.message,
            extra={"job_id": request.id, names.ERROR_TYPE: exc.error_type},
        )
        await request.reject()
        return
    log.info("accepting job %s for tenant %s", request.id, tenant, extra={"tenant.id": tenant})
    await request.accept(attributes={"tenant.id": tenant})


async def entrypoint(ctx: JobContext) -> None:
    """One job = one call: services on this loop, the call inside its root span, cleanup on shutdown.

    A job accepted while the worker's warm-up still loads LiteLLM and the call modules waits for them
    here (bounded by ``SALES_AGENT_WARMUP_TIMEOUT_S``), before it imports any of them."""
    from telemetry.setup import setup_telemetry

    settings = worker_settings()
    telemetry = setup_telemetry(settings.telemetry)
    tenant = tenant_for_job(ctx.job, settings.worker.default_tenant)  # validated again: metadata may change
    call_ctx = CallContext(
        tenant_id=tenant, session_id=ctx.job.id, call_id=ctx.job.room.sid or ctx.job.room.name
    )
    if not await wait_in_job(ctx.job.id, call_ctx.span_attributes(), settings.worker.warmup_timeout_s):
        ctx.shutdown(reason="warm-up not done")
        return
    from agent.runtime import start_runtime
    from agent.sales_call import SalesCall
    from agent.sessions import CapacityExceeded

    # Thread executor: the worker-wide SessionManager (on the worker loop) sees every call of the process.
    shared = _state is not None and _state.loop is not None and _state.loop is not asyncio.get_running_loop()
    runtime = await start_runtime(
        settings,
        tenants=tenant_registry(),
        telemetry=telemetry,
        sessions=_state.sessions if shared and _state is not None else None,
        start_outbox_drainer=_state is None,  # the worker process drains when it runs one
        speech=speech_services(),
        resilience=process_resilience(),  # breakers and cooldowns shared by every job of the process
    )
    vad_model = ctx.proc.userdata.get("vad")
    if vad_model is None:  # prewarm did not run in this process (it always does under livekit's CLI)
        from agent.speech.silero_batch import process_vad

        vad_model = process_vad()
    call = SalesCall(call_ctx, runtime.services, mode="voice", vad_model=vad_model)

    async def end_call_then_services() -> None:  # livekit runs shutdown callbacks concurrently
        try:
            await call.aclose()
        finally:
            await runtime.aclose()

    ctx.add_shutdown_callback(end_call_then_services)
    await ctx.connect()
    try:
        await call.start(room=ctx.room, room_options=room_options())
    except CapacityExceeded as exc:
        log.warning("call refused: %s", exc.message, extra=call_ctx.span_attributes())
        ctx.shutdown(reason="capacity")
        return
    call.watch_silence_gaps()
    # The call is over when its session closes (end_call, hang-up, session manager): free the job.
    call.session.on("close", lambda _event: ctx.shutdown(reason="call ended"))
    log.info("call %s running (trace %s)", call_ctx.call_id, call.trace_id, extra=call_ctx.span_attributes())


def room_options() -> RoomOptions:
    """How a call's session reads its room: the caller's audio at the rate and framing the call uses
    (``agent/speech/room_audio.py``); everything else is livekit's default."""
    from livekit.agents.voice.room_io import RoomOptions

    from agent.speech.room_audio import room_audio_input

    return RoomOptions(audio_input=room_audio_input())


def worker_options() -> WorkerOptions:
    from livekit.agents import JobExecutorType, WorkerOptions

    worker = worker_settings().worker
    options = WorkerOptions(
        entrypoint_fnc=entrypoint,
        request_fnc=request_fnc,
        prewarm_fnc=prewarm,
        load_fnc=worker_load,
        load_threshold=worker.load_threshold,
        job_executor_type=JobExecutorType.THREAD
        if worker.job_executor == "thread"
        else JobExecutorType.PROCESS,
        agent_name=worker.agent_name,
        # Loading silero (and, in a job process, LiveKit itself) on 2 shared cores can take longer
        # than livekit's 10 s.
        initialize_process_timeout=30.0,
        # The forkserver (process executor only) loads these once for every job process; registering
        # waits for it. The thread executor has no forkserver: the warm-up loads them after registering.
        preload_modules=list(WARMUP_MODULES) if worker.job_executor == "process" else None,
    )
    return options


# livekit's own warm-up of a job thread or forkserver (livekit/agents/ipc/_preload.py) loads its local
# VAD and end-of-turn models unless this is falsy: ~250 MB and 0.2-0.4 s before the worker registers.
# This agent uses neither (Silero from livekit.plugins.silero; VAD endpointing, agent/sales_call.py).
LIVEKIT_PRELOAD_LOCAL_INFERENCE = "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE"


def prepare_livekit_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Before livekit's CLI starts the job threads (or the forkserver); an operator's own value wins."""
    environ.setdefault(LIVEKIT_PRELOAD_LOCAL_INFERENCE, "0")


def import_speech_plugins(settings: AppSettings) -> None:
    """livekit plugins register themselves on import and refuse to outside the main thread (job threads)."""
    import importlib

    kinds = {p.kind for p in (*settings.stt.chain, *settings.tts.chain)}
    modules = {"openai" if kind == "local" else kind for kind in kinds} | {"silero"}
    for module in sorted(modules):
        importlib.import_module(f"livekit.plugins.{module}")


def check_worker_config(settings: AppSettings, tenants: TenantRegistry) -> None:
    """What would otherwise fail each call after registration, as one ``ConfigError`` now."""
    from agent.crm.outbox import Outbox
    from agent.llm.chain import check_chain
    from agent.speech.chain import usable_providers

    check_chain(settings.llm)  # an LLMConfigError (a ConfigError): no provider has its key
    usable_providers(settings.stt.chain, "STT")  # NoUsableSpeechProvider (a ConfigError): no keys at all
    usable_providers(settings.tts.chain, "TTS")
    default = settings.worker.default_tenant
    if default and default not in tenants:
        raise ConfigError(
            f"{env_name(WorkerSettings, 'default_tenant')}={default}: unknown tenant; "
            f"expected one of {', '.join(tenants.ids())} ({settings.tenants.file})"
        )
    # OutboxUnusable: a directory, not SQLite, a foreign file; OutboxDatabaseUnusable: CRM_OUTBOX_URL's
    # database cannot be reached (named without its password).
    Outbox(settings.crm.outbox_location, timeout_s=settings.crm.outbox_timeout_s).close()


def run_worker(argv: Sequence[str]) -> None:
    """``sales-agent dev|start|console|connect ...``: livekit's CLI with our options.

    Everything that can be checked is checked before livekit's CLI connects: a ``ConfigError`` here is
    one line on stderr and exit status 2 (``agent.cli``), and nothing has registered with LiveKit.
    """
    from livekit.agents import AgentServer, cli

    from telemetry.setup import setup_telemetry

    mode = argv[0] if argv else ""
    settings = for_worker(AppSettings.from_env())
    tenants = TenantRegistry.from_file(settings.tenants.file)
    if mode == "console" and not settings.worker.default_tenant:
        # A console job has no dispatch metadata: talk as the first configured tenant.
        settings = settings.with_area("worker", default_tenant=tenants.ids()[0])
        log.info("console: using tenant %s (set SALES_AGENT_DEFAULT_TENANT to choose)", tenants.ids()[0])
    health_socket = None
    if mode != "download-files":
        check_worker_config(settings, tenants)
        if settings.health.port:
            health_socket = bind_listener(
                settings.health.host, settings.health.port, env_name(type(settings.health), "port")
            )
    configure(settings, tenants, health_socket)
    setup_telemetry(settings.telemetry)  # binds SALES_AGENT_METRICS_PORT: a taken port is a ConfigError
    import_speech_plugins(settings)
    prepare_main_thread()  # what the worker's services import while the warm-up loads
    prepare_livekit_environment()
    server = AgentServer.from_server_options(worker_options())
    server.on("worker_started", _on_worker_started)
    server.on("worker_registered", _on_worker_registered)
    sys.argv = ["sales-agent", *argv]  # livekit's CLI (typer) reads its command from sys.argv
    cli.run_app(server)
