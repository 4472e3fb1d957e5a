"""Half-open breakers get their trial calls even when nobody calls the dependency.

A breaker learns whether its dependency recovered only from the calls that pass through it. With no
traffic (a quiet night, a worker between calls) an open breaker turns half-open after its recovery
period and then waits there, reporting "half-open" for as long as nobody calls: the state gauge and
the ``DependencyCircuitOpen`` alert then describe nothing true. ``BreakerProber`` supplies the trial
calls: while its breaker is half-open, it sends the dependency's cheap health request through the
breaker, so a dead dependency re-opens the breaker and a recovered one closes it.

Closed breakers are never probed (real calls say enough), so a healthy dependency sees no extra traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from agent.errors import CircuitOpenError
from agent.resilience.breaker import BreakerState, CircuitBreaker

log = logging.getLogger(__name__)


class BreakerProber:
    """Checks ``breaker`` every ``interval_s`` and, when it is half-open, runs ``ping`` through it."""

    def __init__(
        self, breaker: CircuitBreaker, ping: Callable[[], Awaitable[object]], *, interval_s: float = 5.0
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.breaker = breaker
        self._ping = ping
        self.interval_s = interval_s
        self.probes = 0
        self._task: asyncio.Task[None] | None = None

    async def probe_once(self) -> None:
        """Trial calls while the breaker stays half-open (at most the breaker's trial budget)."""
        for _ in range(self.breaker.half_open_max_calls):
            if self.breaker.state is not BreakerState.HALF_OPEN:
                return
            self.probes += 1
            try:
                await self.breaker.call(self._ping)
            except CircuitOpenError:
                return  # real calls hold the trial slots: they decide
            except Exception as exc:  # the verdict is recorded by the breaker; nothing to raise
                log.info("probe of %s failed: %s", self.breaker.name, type(exc).__name__)
                return

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.probe_once()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"breaker-probe-{self.breaker.name}"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
