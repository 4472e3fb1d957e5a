"""A wake-up call that reaches waiters on any event loop of the process.

The worker's jobs run in threads, each on its own loop, and share the outbox file with the worker's
drainer (on the worker loop). ``asyncio.Event`` belongs to one loop; this keeps a version number and
the waiters' futures, and wakes each on its own loop with ``call_soon_threadsafe``. Waiting from a
version cannot miss a wake-up that happened in between (the version moved on). One instance per
outbox and purpose (``for_location``). Other processes are not reached: their waiters poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path


class Wakeup:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def version(self) -> int:
        return self._version

    def notify(self) -> None:
        with self._lock:
            self._version += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there any more
                loop.call_soon_threadsafe(_wake, future)

    async def wait(self, since: int, timeout_s: float) -> bool:
        """Until the version moves past ``since`` or ``timeout_s`` passes; True if it moved."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._version != since:
                return True
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return self._version != since
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))
        return True


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_lock = threading.Lock()
_registry: dict[tuple[str, str], Wakeup] = {}


def for_location(location: str, purpose: str) -> Wakeup:
    """The process-wide wake-up for ``purpose`` on the outbox at ``location`` (a file, a database)."""
    key = (location if "://" in location else str(Path(location).resolve()), purpose)
    with _lock:
        return _registry.setdefault(key, Wakeup())
