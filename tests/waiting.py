"""Waiting in tests for what another task or thread reports, bounded in count and so in time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], object], timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.01)):  # bounded in count, and so in time
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {timeout_s:g} s")
