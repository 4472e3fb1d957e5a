"""LiteLLM's end-of-stream bookkeeping: out of the caller's wait, and not run when nothing reads it.

How LiteLLM (1.110, through the Router) ends a streamed completion: once the provider's stream has
ended it hands over the chunk with the finish reason; the next one is a usage chunk it builds after
rebuilding the complete response from every chunk (the provider's own usage is held until then, so
the agent reads its usage there). What it still does after that, before the stream stops, is its
own bookkeeping: price the response, build its logging payload, dispatch the success callbacks and
let the Router record the attempt's outcome. The agent reads none of it, but it ran on the event
loop in series with what the caller waits for: the tool call the stream asked for (its outbox write
waited for the GIL behind it) and, for a short reply, the end of the text that lets TTS start the
last sentence. Measured at one voice call: 4-7 ms per stream; the tool step's p50 15 -> 13 ms and
first text to first audio 21-24 -> 18 ms (bench/RESULTS.md, "Issue 13, 2026-12-01 evening").

So once the answer is whole and its usage is known, ``RouterLLMStream`` ends its own stream and
leaves the rest of LiteLLM's iteration to ``finish_later``: a task that lets it run ``DELAY_S``
later, when the reply is playing, and logs (never raises) what goes wrong there. A call runs its
streams' bookkeeping still waiting before its outcome is recorded (``settle``). A stream whose usage
never arrives (a provider that sends none) is read to its end in line, as LiteLLM hands it over.

**When nothing would read it, it is not run.** LiteLLM's end of stream feeds its callbacks and its
cache, and the Router's outcome feeds the Router's own cooldowns and usage-based routing. With no
callback registered (globally or on the request) and no cache configured, which is how the agent
ships (``ProviderChain`` builds a Router with neither cooldowns, retries nor usage-based routing: the
chain keeps the cooldowns, our metrics price the tokens), the tail closes the stream instead of
reading its end: no pricing, no logging payload, no dispatch, no outcome recorded. The agent's
whole LLM path went from 77.8 to 60.9 M instructions per call (``RouterLLM.chat``, bench item 9),
work the event loop every call shares no longer does. Register a LiteLLM callback or cache and the
tail reads LiteLLM's end as before: its callbacks run once per stream.

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


def litellm_reads_end_of_stream(stream: Any) -> bool:
    """Would anything read LiteLLM's end of stream: a success callback (global, or on this request's
    logging object) or a response cache? Read when the tail runs, so one registered later counts."""
    import litellm  # already loaded: the stream came from it

    if litellm.cache is not None:
        return True
    if litellm.callbacks or litellm.success_callback or litellm._async_success_callback:
        return True
    logging_obj = getattr(stream, "logging_obj", None)
    return bool(
        getattr(logging_obj, "dynamic_success_callbacks", None)
        or getattr(logging_obj, "dynamic_async_success_callbacks", None)
    )


async def close_unread(stream: Any) -> None:
    """Close the stream without reading its end: LiteLLM's pricing, logging payload and dispatch
    never run, and the Router's wrapper, closed early, records no outcome for the attempt.

    By then the provider's response has been read whole (LiteLLM hands over the finish reason only
    once the provider's stream has ended), so closing releases a connection with nothing left on it.
    """
    await stream.aclose()


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
            if litellm_reads_end_of_stream(stream):
                async for _ in stream:  # LiteLLM's own end of stream: rebuild, cost, callbacks, close
                    pass
            else:
                await close_unread(stream)
        except Exception:  # the caller has the whole answer; this is LiteLLM's bookkeeping only
            log.warning("LiteLLM's end of stream failed for %s (answer complete)", provider, exc_info=True)
