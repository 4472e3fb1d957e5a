"""``simulate --workers N``: N agent processes at once against one CRM, one Redis and one PostgreSQL.

This process opens the stack (the local LLM providers and CRM, unless URLs are given), switches the
``--faults`` on, and starts N ``sales-agent simulate`` processes against it, each with ``--calls``
calls per batch and its own ``service.instance.id`` (``<host>-simulate-<i>``), so the dashboards'
instance variable and the per-instance alerts tell them apart. What they share is what the
environment shares: ``CRM_OUTBOX_URL`` (one PostgreSQL outbox: any worker may deliver any entry) and
``SALES_AGENT_LLM_REDIS_URL`` (one worker's provider failures cool the provider down for all).
Without them each worker keeps its own SQLite outbox and its own cooldowns, as separate hosts would.

Each worker's output is printed as it comes, prefixed with its number; the exit status is the worst
of theirs. ``SALES_AGENT_HEALTH_PORT`` / ``SALES_AGENT_METRICS_PORT``, when set, become P+1 ... P+N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from agent.simulate.stack import FaultSpec, Stack, apply_faults, check_faults, open_stack

if TYPE_CHECKING:
    from agent.app_settings import AppSettings

STOP_TIMEOUT_S = 20.0


def instance_id(index: int) -> str:
    return f"{socket.gethostname()}-simulate-{index}"


def worker_argv(args: argparse.Namespace, stack: Stack) -> list[str]:
    """One worker's ``simulate`` arguments: the shared stack by URL, no faults (the parent owns them).
    A chain configured elsewhere (``--llm-config``, ``SALES_AGENT_LLM_CHAIN``) reaches it the same way."""
    argv = [
        "--calls", str(args.calls), "--concurrency", str(args.concurrency),
        "--turn-timeout", str(args.turn_timeout), "--drain-timeout", str(args.drain_timeout),
        "--crm-url", stack.crm_url,
    ]  # fmt: skip
    for endpoint in stack.llm:
        argv += ["--llm-url", endpoint.api_base]
    if args.llm_config:
        argv += ["--llm-config", str(args.llm_config)]
    if args.tenants:
        argv += ["--tenants", args.tenants]
    if args.forever:
        argv += ["--forever", "--interval", str(args.interval)]
    return argv


def worker_env(index: int, settings: AppSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment, with this worker's instance id and its own health/metrics ports."""
    env = dict(os.environ if base is None else base)
    attributes = [a for a in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",") if a.strip()]
    attributes = [a for a in attributes if not a.strip().startswith("service.instance.id=")]
    env["OTEL_RESOURCE_ATTRIBUTES"] = ",".join([*attributes, f"service.instance.id={instance_id(index)}"])
    for variable, port in (
        ("SALES_AGENT_HEALTH_PORT", settings.health.port),
        ("SALES_AGENT_METRICS_PORT", settings.telemetry.prometheus_port),
    ):
        env[variable] = str(port + index if port else 0)
    return env


async def _pump(index: int, process: asyncio.subprocess.Process, console: Console) -> int:
    assert process.stdout is not None
    async for raw in process.stdout:
        # Plain print: each worker's own console already laid its lines out; a prefix must not re-wrap them.
        print(f"w{index} {raw.decode(errors='replace').rstrip()}", flush=True)
    return await process.wait()


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)  # simulate's clean stop: the batch ends, telemetry flushes
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def run_workers(
    args: argparse.Namespace, faults: Sequence[FaultSpec], console: Console, settings: AppSettings
) -> int:
    configured_chain = settings.llm.chain_configured and not args.llm_url
    async with open_stack(args.llm_url, args.crm_url, start_llm=not configured_chain) as stack:
        check_faults(stack, faults)
        console.print(
            f"simulate: {args.workers} workers, LLM chain "
            f"{' -> '.join(ep.name for ep in stack.llm) or 'as configured'}, "
            f"CRM {stack.crm_url}"
        )
        if faults:
            await apply_faults(stack, faults)
            console.print(f"faults on: {', '.join(f'{f.target}={f.mode}' for f in faults)}")
        processes: list[asyncio.subprocess.Process] = []
        try:
            argv = [sys.executable, "-m", "agent", "simulate", *worker_argv(args, stack)]
            for index in range(1, args.workers + 1):
                process = await asyncio.create_subprocess_exec(
                    *argv, env=worker_env(index, settings), stdout=PIPE, stderr=STDOUT
                )
                processes.append(process)
            statuses = await asyncio.gather(*(_pump(i, p, console) for i, p in enumerate(processes, start=1)))
        finally:
            await asyncio.gather(*(_stop(p) for p in processes))
            if faults:
                with contextlib.suppress(Exception):  # leave the services as we found them
                    await apply_faults(stack, faults, reset=True)
    failed = [i for i, status in enumerate(statuses, start=1) if status != 0]
    console.print(
        f"simulate: {args.workers} workers done"
        + (f"; workers {', '.join(map(str, failed))} exited non-zero" if failed else "")
    )
    return max(statuses, default=0)
