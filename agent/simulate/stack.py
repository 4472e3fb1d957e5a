"""The dependencies a simulated run talks to: local LLM providers and the local CRM + calendar.

Started in this process on free loopback ports when no URLs are given, otherwise the given URLs are
used as they are (compose). Faults are switched through each service's ``POST /admin/fault``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.vocabulary.fault_modes import CRM_FAULT_MODES, LLM_FAULT_MODES
from agent.vocabulary.local_providers import DEFAULT_LOCAL_PROVIDERS, local_provider_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LlmEndpoint:
    name: str
    api_base: str  # .../v1, for the LiteLLM Router

    @property
    def admin_url(self) -> str:
        return self.api_base.removesuffix("/").removesuffix("/v1")


@dataclass(frozen=True)
class Stack:
    llm: tuple[LlmEndpoint, ...]
    crm_url: str
    started_locally: bool

    def fault_targets(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """``target -> (admin base URL, allowed modes)``: llm-<provider name>, crm, calendar."""
        targets = {f"llm-{ep.name}": (ep.admin_url, LLM_FAULT_MODES) for ep in self.llm}
        targets["crm"] = (self.crm_url, CRM_FAULT_MODES)
        targets["calendar"] = (self.crm_url, CRM_FAULT_MODES)  # the local service serves both
        return targets


@dataclass(frozen=True)
class FaultSpec:
    target: str
    mode: str


def parse_faults(spec: str) -> list[FaultSpec]:
    """``"llm-primary=500,crm=down"`` -> specs; the targets are checked against the stack later."""
    faults: list[FaultSpec] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, sep, mode = item.partition("=")
        if not sep or not target.strip() or not mode.strip():
            raise ValueError(f"bad fault {item!r}: expected TARGET=MODE, e.g. llm-primary=500 or crm=down")
        faults.append(FaultSpec(target.strip(), mode.strip()))
    return faults


def check_faults(stack: Stack, faults: Sequence[FaultSpec]) -> None:
    targets = stack.fault_targets()
    for fault in faults:
        if fault.target not in targets:
            raise ValueError(f"unknown fault target {fault.target!r}; known: {', '.join(sorted(targets))}")
        allowed = targets[fault.target][1]
        if fault.mode not in allowed:
            raise ValueError(
                f"fault mode {fault.mode!r} for {fault.target}: expected one of {', '.join(allowed)}"
            )


async def apply_faults(stack: Stack, faults: Sequence[FaultSpec], *, reset: bool = False) -> None:
    """Switch each target's fault (or back to ``ok`` with ``reset``) via its admin endpoint."""
    import httpx  # here, not at the top: parse_faults runs before simulate's first line

    targets = stack.fault_targets()
    async with httpx.AsyncClient(timeout=5.0) as client:
        for fault in faults:
            base, _modes = targets[fault.target]
            mode = "ok" if reset else fault.mode
            response = await client.post(f"{base}/admin/fault", json={"mode": mode})
            response.raise_for_status()
            log.info("fault %s=%s applied", fault.target, mode)


def normalise_api_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


@contextlib.asynccontextmanager
async def open_stack(
    llm_urls: Sequence[str] = (), crm_url: str | None = None, *, start_llm: bool = True
) -> AsyncIterator[Stack]:
    """Yield the stack, starting whatever was not given a URL in this event loop.

    ``start_llm=False``: the LLM chain is configured elsewhere (``--llm-config``...); no local provider
    is started and there is no ``llm-*`` fault target.
    """
    async with contextlib.AsyncExitStack() as exits:
        endpoints: tuple[LlmEndpoint, ...] = ()
        if llm_urls:
            names = local_provider_names(len(llm_urls))
            endpoints = tuple(
                LlmEndpoint(n, normalise_api_base(u)) for n, u in zip(names, llm_urls, strict=True)
            )
        elif start_llm:
            from local_services.llm_provider import run_llm_provider

            started = [
                await exits.enter_async_context(run_llm_provider(name=n)) for n in DEFAULT_LOCAL_PROVIDERS
            ]
            endpoints = tuple(LlmEndpoint(p.name, p.url) for p in started)
        if crm_url is None:
            from local_services.crm_service import run_crm_service

            workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="sales-agent-sim-")))
            crm_url = await exits.enter_async_context(run_crm_service(workdir / "crm.sqlite3"))
        yield Stack(endpoints, crm_url.rstrip("/"), started_locally=not llm_urls)
