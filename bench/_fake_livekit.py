"""Just enough of a LiveKit server to time a worker's start up to its first accepted job (bench item 6).

There is no livekit-server on the development machines. A worker's side of the agent protocol is
small, though: it dials ``<LIVEKIT_URL>/agent`` over a websocket, sends ``WorkerMessage.register``
and waits for ``ServerMessage.register``; the server then offers a job with
``ServerMessage.availability`` and the worker answers ``WorkerMessage.availability`` (``available``:
accepted by the agent's ``request_fnc``). This stand-in does exactly that once and records when each
step happened (``time.monotonic()`` of this process), then stops there: it never assigns the job, so
no room is joined. Bench-only: the product's tests do not need it.
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
    answered: threading.Event = field(default_factory=threading.Event)


def _job_offer(tenant: str) -> bytes:
    message = agent.ServerMessage()
    job = message.availability.job
    job.id = "AJ_bench_first_job"
    job.type = agent.JobType.JT_ROOM
    job.room.CopyFrom(models.Room(sid="RM_bench", name="bench-room"))
    job.metadata = json.dumps({"tenant_id": tenant})
    return message.SerializeToString()


@contextlib.asynccontextmanager
async def run_fake_livekit(tenant: str = "acme") -> AsyncIterator[FirstJob]:
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
