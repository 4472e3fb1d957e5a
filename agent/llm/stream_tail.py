"""LiteLLM's end-of-stream bookkeeping, moved out of the caller's wait.

When a streamed completion hands us the chunk that carries the finish reason, LiteLLM has already
read the provider's whole response (it holds the finish reason back until the provider's stream has
ended) and kept the provider's usage chunk in the stream's chunk list. What it still does before the
stream stops is its own bookkeeping: rebuild the complete response from every chunk, price it,
deep-copy it for a cache task (none is configured) and dispatch the success callbacks (the Router's
deployment accounting among them). The agent reads none of it, but it ran on the event loop in
series with what the caller waits for: the tool call the stream asked for (its outbox write waited
for the GIL behind it) and, for a short reply, the end of the text that lets TTS start the last
sentence. Measured at one voice call: 4-7 ms per stream; the tool step's p50 15 -> 13 ms and first
text to first audio 21-24 -> 18 ms (bench/RESULTS.md, "Issue 13, 2026-12-01 evening").

So once the answer is whole and its usage is known, ``RouterLLMStream`` ends its own stream and
leaves the rest of LiteLLM's iteration to ``finish_later``: a task that lets it run ``DELAY_S``
later, when the reply is playing, and logs (never raises) what goes wrong there. Nothing is skipped:
LiteLLM's callbacks still run, once per stream. A call runs its streams' bookkeeping still waiting
before its outcome is recorded (``settle``; LiteLLM dispatches its callbacks from there). A stream
whose usage has not arrived at its finish reason (a provider that sends none, or a LiteLLM that
keeps it elsewhere) is read to its end as before.

Written by hand: LiteLLM has no switch for this (its documented ones were measured: they change
nothing on the async streaming path; ``bench/RESULTS.md``, goal 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger(__name__)

# The reply's first audio comes ~20-50 ms after its stream ends (bench_density's stages, up to 35
# calls at once); half a second is well past it and shorter than any spoken reply.
DELAY_S = 0.5


def usage_read(stream: Any) -> Any | None:
    """The provider's usage object LiteLLM has already read into ``stream.chunks``, or None.

    ``CustomStreamWrapper.chunks`` is where LiteLLM keeps every chunk for its end-of-stream rebuild
    (the usage chunk as the provider sent it; LiteLLM passes it on only after that rebuild).
    """
    for chunk in reversed(getattr(stream, "chunks", None) or ()):
        usage = getattr(chunk, "usage", None)
        if usage is not None and getattr(usage, "completion_tokens", None) is not None:
            return usage
    return None


class StreamTails:
    """The streams of one call whose LiteLLM bookkeeping is still to run."""

    def __init__(self, delay_s: float = DELAY_S) -> None:
        self.delay_s = delay_s
        self._waiting: dict[asyncio.Task[None], asyncio.Event] = {}

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def finish_later(self, stream: AsyncIterator[Any], provider: str) -> None:
        hurry = asyncio.Event()
        task = asyncio.get_running_loop().create_task(
            self._finish(stream, provider, hurry), name=f"litellm-stream-tail-{provider}"
        )
        self._waiting[task] = hurry
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._waiting.pop(task, None)

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Run what is still waiting now and wait for it (at most ``timeout_s``): the call is ending."""
        if not self._waiting:
            return
        for hurry in self._waiting.values():
            hurry.set()
        _done, pending = await asyncio.wait(set(self._waiting), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("LiteLLM end of stream unfinished at call end (%d streams): cancelled", len(pending))

    async def _finish(self, stream: AsyncIterator[Any], provider: str, hurry: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.delay_s):
                await hurry.wait()
        try:
            async for _ in stream:  # LiteLLM's own end of stream: rebuild, cost, callbacks, close
                pass
        except Exception:  # the caller has the whole answer; this is LiteLLM's bookkeeping only
            log.warning("LiteLLM's end of stream failed for %s (answer complete)", provider, exc_info=True)
