"""The services every call of one event loop shares: LLM chain, CRM facade, sessions, health.

Built once per event loop (``simulate``: the run; the LiveKit worker: each job process or job
thread, since livekit gives every job its own loop and httpx/aiohttp clients must stay on the loop
that created them). ``start`` opens them in dependency order, ``aclose`` closes them in reverse.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.heap import freeze_startup_heap
from agent.sales_call import CallServices
from agent.sessions import SessionManager
from agent.tenants import TenantRegistry

if TYPE_CHECKING:
    from agent.app_settings import AppSettings
    from agent.crm import ResilientCrm
    from agent.health import HealthRegistry, HealthServer, HealthSettings
    from agent.llm import RouterLLM
    from agent.resilience import ResilienceState
    from agent.resilience.probe import BreakerProber
    from agent.speech import SpeechServices
    from telemetry.setup import Telemetry

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    llm: RouterLLM
    crm: ResilientCrm
    tenants: TenantRegistry
    sessions: SessionManager
    health: HealthRegistry
    health_server: HealthServer | None = None
    owns_sessions: bool = True
    speech: SpeechServices | None = None  # voice calls: STT/TTS chains and the VAD model
    # sales_agent.event_loop.lag for this loop (dashboards' System panel, EventLoopLagHigh alert).
    loop_lag_monitor: asyncio.Task[None] | None = None
    # Trial calls for the CRM / calendar breakers when no call exercises them (agent/resilience/probe.py).
    breaker_probers: list[BreakerProber] = field(default_factory=list)
    _closed: bool = field(default=False, repr=False)

    @property
    def services(self) -> CallServices:
        return CallServices(
            llm=self.llm, crm=self.crm, tenants=self.tenants, sessions=self.sessions, speech=self.speech
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.loop_lag_monitor is not None:
            self.loop_lag_monitor.cancel()
        for prober in self.breaker_probers:
            await prober.stop()
        if self.health_server is not None:
            await self.health_server.stop()
        if self.owns_sessions:
            await self.sessions.stop(close_open=True)
        await self.crm.aclose()
        await self.llm.aclose()


def build_health_registry(
    llm: RouterLLM,
    crm: ResilientCrm,
    telemetry: Telemetry | None = None,
    settings: HealthSettings | None = None,
    speech: SpeechServices | None = None,
) -> HealthRegistry:
    """Checks for /health and /ready.

    Only the LLM chain is critical (no provider answering = no conversation); one provider down is
    reported but the chain falls back. CRM writes queue in the outbox and a calendar outage only
    fails bookings, so those, the outbox backlog, OTLP export and loop lag are reported, not gating.
    With voice (``speech``): each STT/TTS provider's cooldown state, reported, not gating (a chain
    whose every provider cools down still tries them all).
    """
    from agent.health import (
        HealthRegistry,
        callable_check,
        dependency_check,
        event_loop_lag_check,
        llm_provider_check,
        otlp_export_check,
        outbox_backlog_check,
    )

    registry = HealthRegistry(settings)
    provider_names = list(llm.provider_status())
    for name in provider_names:
        registry.register(f"llm.{name}", llm_provider_check(llm, name), critical=False)

    async def any_provider() -> tuple[bool, dict[str, Any]]:
        results = {name: (await llm.check_provider(name))[0] for name in provider_names}
        return any(results.values()), {"providers": results}

    # The call can go on while at least one provider of the chain answers.
    registry.register("llm.chain", callable_check(any_provider), critical=True)
    cooldowns = llm.chain.cooldowns
    if cooldowns.remote:  # Redis away: each worker cools providers down alone, calls go on (degraded)
        registry.register(
            "llm.cooldowns", callable_check(lambda: (cooldowns.available, cooldowns.status())), critical=False
        )
    registry.register("crm", dependency_check(crm, "crm"), critical=False)  # writes queue in the outbox
    registry.register("calendar", dependency_check(crm, "calendar"), critical=False)
    registry.register("outbox", outbox_backlog_check(crm), critical=False)
    registry.register("event_loop", event_loop_lag_check(), critical=False)
    if telemetry is not None:
        registry.register("otlp", otlp_export_check(telemetry), critical=False)
    if speech is not None:
        for kind, chain in (("stt", speech.stt_chain), ("tts", speech.tts_chain)):
            for provider in chain.providers:
                registry.register(
                    f"{kind}.{provider.name}",
                    callable_check(
                        lambda c=chain, n=provider.name: (c.status()[n], {"cooling_down": not c.status()[n]})
                    ),
                    critical=False,
                )
    return registry


async def start_runtime(
    settings: AppSettings,
    *,
    tenants: TenantRegistry,
    telemetry: Telemetry | None = None,
    health_socket: socket.socket | None = None,
    sessions: SessionManager | None = None,
    start_outbox_drainer: bool = True,
    speech: SpeechServices | None = None,
    resilience: ResilienceState | None = None,
) -> Runtime:
    """Build and start the shared services on the running loop, from the entry point's settings root.

    What differs per call site: ``tenants`` (loaded once by the entry point), ``telemetry`` (its
    handle), ``health_socket``: serve ``/health`` + ``/ready`` on this listening socket (bound by the
    entry point at start, see ``telemetry.config_errors.bind_listener``); ``sessions``: an existing
    (process-wide) manager to use instead of a new one, not stopped by ``aclose``;
    ``start_outbox_drainer=False``: writes still queue in the outbox, but someone else (the worker's
    own CRM facade) delivers them; ``resilience``: the breakers and cooldowns to use (the worker
    passes ``process_resilience()``: every job of the process shares them); without it this runtime
    keeps its own.
    """
    from agent.crm import build_crm
    from agent.health import HealthServer
    from agent.llm import build_llm
    from agent.resilience.probe import BreakerProber

    # First: an unusable outbox file is a ConfigError before anything starts.
    crm = build_crm(settings.crm, resilience=resilience)
    try:
        llm = build_llm(settings.llm, resilience=resilience)
        await llm.warm()  # LiteLLM's first-call setup, here rather than in the first turn's deadline
    except BaseException:
        await crm.aclose()
        raise
    if start_outbox_drainer:
        await crm.start()
    owns_sessions = sessions is None
    if sessions is None:
        sessions = SessionManager(settings.sessions, tenants)
        sessions.start()
    health = build_health_registry(llm, crm, telemetry, settings.health, speech)
    runtime = Runtime(
        llm=llm,
        crm=crm,
        tenants=tenants,
        sessions=sessions,
        health=health,
        owns_sessions=owns_sessions,
        speech=speech,
    )
    if telemetry is not None:
        runtime.loop_lag_monitor = telemetry.start_loop_lag_monitor()
    runtime.breaker_probers = [
        BreakerProber(crm.crm_caller.breaker, crm.crm.ping),
        BreakerProber(crm.calendar_caller.breaker, crm.calendar.ping),
    ]
    for prober in runtime.breaker_probers:
        prober.start()
    if health_socket is not None:
        server = HealthServer(health, sock=health_socket)
        try:
            await server.start()
        except BaseException:
            await runtime.aclose()
            raise
        runtime.health_server = server
        log.info("health endpoints on %s/health and %s/ready", server.url, server.url)
    if settings.worker.gc_freeze:
        freeze_startup_heap()  # once per process: everything above is imported and warmed up
    return runtime
