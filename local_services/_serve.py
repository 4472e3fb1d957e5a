"""Run a local service until SIGINT/SIGTERM: the one process loop every ``main`` here shares."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

T = TypeVar("T")


def serve_until_signal(
    start: Callable[[], AbstractAsyncContextManager[T]], on_ready: Callable[[T], None]
) -> None:
    """Enter ``start()``, call ``on_ready`` with what it yields, and leave it on SIGINT or SIGTERM."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with start() as running:
            on_ready(running)
            await stop.wait()

    asyncio.run(serve())
