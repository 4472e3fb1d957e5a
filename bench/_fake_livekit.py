"""Just enough of a LiveKit server to time a worker's start up to its first accepted job (bench item 6).

There is no livekit-server on the development machines. A worker's side of the agent protocol is
small, though: it dials ``<LIVEKIT_URL>/agent`` over a websocket, sends ``WorkerMessage.register``
and waits for ``ServerMessage.register``; the server then offers a job with
``ServerMessage.availability`` and the worker answers ``WorkerMessage.availability`` (``available``:
accepted by the agent's ``request_fnc``). This stand-in does exactly that once and records when each
step happened (``time.monotonic()`` of this process). By default it stops there; with ``assign=True``
it also assigns the accepted job (``ServerMessage.assignment``), so the worker runs its entrypoint,
whose room connection then fails: there is no room here. Used by bench item 6 and by
``tests/integration/test_worker_start.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from livekit.protocol import agent, models


@dataclass
class FirstJob:
    """What the fake server saw; ``answered`` is set once the worker answered the job offer."""

    url: str = ""
    connected_at: float | None = None
    registered_at: float | None = None
    answered_at: float | None = None
    accepted: bool | None = None
    assigned_at: float | None = None
    answered: threading.Event = field(default_factory=threading.Event)


JOB_ID = "AJ_bench_first_job"


def _job(tenant: str) -> agent.Job:
    job = agent.Job(id=JOB_ID, type=agent.JobType.JT_ROOM, metadata=json.dumps({"tenant_id": tenant}))
    job.room.CopyFrom(models.Room(sid="RM_bench", name="bench-room"))
    return job


def _job_offer(tenant: str) -> bytes:
    message = agent.ServerMessage()
    message.availability.job.CopyFrom(_job(tenant))
    return message.SerializeToString()


def _assignment(tenant: str) -> bytes:
    message = agent.ServerMessage()
    message.assignment.job.CopyFrom(_job(tenant))
    message.assignment.token = "no-room-here"  # the worker dials LIVEKIT_URL's /rtc with it, and fails
    return message.SerializeToString()


@contextlib.asynccontextmanager
async def run_fake_livekit(tenant: str = "acme", assign: bool = False) -> AsyncIterator[FirstJob]:
    """Serve ``ws://127.0.0.1:<port>/agent`` for one worker; yields the record (``url`` to dial)."""
    record = FirstJob()

    async def agent_socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        record.connected_at = time.monotonic()
        async for message in ws:
            if message.type != WSMsgType.BINARY:
                continue
            worker_message = agent.WorkerMessage()
            worker_message.ParseFromString(message.data)
            if worker_message.HasField("register"):
                record.registered_at = time.monotonic()
                reply = agent.ServerMessage()
                reply.register.worker_id = "AW_bench"
                reply.register.server_info.version = "bench-fake"
                await ws.send_bytes(reply.SerializeToString())
                await ws.send_bytes(_job_offer(tenant))
            elif worker_message.HasField("availability") and record.answered_at is None:
                record.answered_at = time.monotonic()
                record.accepted = worker_message.availability.available
                record.answered.set()
                if assign and record.accepted:
                    record.assigned_at = time.monotonic()
                    await ws.send_bytes(_assignment(tenant))
        return ws

    app = web.Application()
    app.router.add_get("/agent", agent_socket)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))  # a free port, bound before anyone dials it
    await web.SockSite(runner, sock).start()
    record.url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield record
    finally:
        await asyncio.wait_for(runner.cleanup(), 10)
