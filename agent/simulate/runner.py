"""Run scripted text calls through the real agent stack and collect what happened.

Each call is a ``SalesCall`` (the worker's own call code) whose ``AgentSession`` runs in LiveKit's
text mode: no audio, no LiveKit server. Each scripted line is one ``session.run(user_input=...)``;
tool results feed the next lines (the offered slots). Numbers come from the call's own turn recorder
(the caller's wait per turn; each LLM stream's time to first chunk, a fallback's extra wait
included), so they do not depend on which spans the trace keeps, or on telemetry being on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from livekit.agents.voice.run_result import FunctionCallOutputEvent

from agent.call_context import CallContext
from agent.runtime import Runtime
from agent.sales_call import SalesCall
from agent.simulate.scripts import ScriptState, render_turn, script_for
from agent.turn_recorder import RecordedTurn
from agent.vocabulary.call_outcome import FAILED_OUTCOMES

log = logging.getLogger(__name__)

ISO_SLOT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?(?:[+-]\d{2}:\d{2}|Z)?")


@dataclass
class CallResult:
    index: int
    script: str
    tenant_id: str
    call_id: str
    trace_id: str = ""
    outcome: str = "error"
    turns: int = 0
    tool_errors: int = 0
    lead_captured: bool = False
    meetings: int = 0
    ttfts_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None
    mode: str = "text"
    recorded_turns: list[RecordedTurn] = field(default_factory=list)  # the caller's wait per turn
    interruptions: int = 0
    barge_in_reactions_s: list[float] = field(default_factory=list)  # caller starts -> agent's audio cut
    # voice: the caller's own clock, last frame of each line -> the agent's next first audio frame
    heard_waits_s: list[float] = field(default_factory=list)
    end_reason: str | None = None  # the call ended because a speech chain failed

    @property
    def failed(self) -> bool:
        """It raised in the runner, or the agent ended it badly (outcome ``error`` / ``failed``, the
        calls the availability SLO counts as bad) without raising."""
        return bool(self.error) or self.outcome in FAILED_OUTCOMES


async def run_call(
    index: int,
    tenant_id: str,
    *,
    run_id: str,
    runtime: Runtime,
    turn_timeout_s: float = 30.0,
) -> CallResult:
    """One scripted call from start to recorded outcome; never raises (errors land in the result)."""
    script = script_for(index, run_id)
    call_ctx = CallContext(tenant_id=tenant_id, session_id=uuid.uuid4().hex, call_id=f"sim-{run_id}-{index}")
    result = CallResult(index=index, script=script.name, tenant_id=tenant_id, call_id=call_ctx.call_id)
    started = time.perf_counter()
    # Text calls have no audio to find the end of a turn in: "manual" keeps livekit from loading its
    # end-of-turn model on the first session (~250 MB of native memory per process, bench item 4).
    call = SalesCall(
        call_ctx, runtime.services, greet_on_enter=False, turn_handling={"turn_detection": "manual"}
    )
    state = ScriptState()
    try:
        await call.start()
        result.trace_id = call.trace_id
        for turn in script.turns:
            if call.ending:  # ended by end_call or the session manager
                break
            run = call.session.run(user_input=render_turn(turn, state, index))
            run_result = await asyncio.wait_for(run, turn_timeout_s)
            result.turns += 1
            for event in run_result.events:
                if isinstance(event, FunctionCallOutputEvent):
                    result.tool_errors += int(event.item.is_error)
                    if event.item.name == "check_availability" and not event.item.is_error:
                        state.slots = ISO_SLOT.findall(event.item.output)
                    if event.item.name == "book_meeting" and not event.item.is_error:
                        state.meeting_booked = True
    except Exception as exc:  # one broken call must not stop the run
        result.error = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("simulated call %s failed: %s", call_ctx.call_id, result.error)
    finally:
        await call.aclose()
    result.outcome = str(call.outcome or "error")
    result.lead_captured = call.tools.contact_key is not None
    result.meetings = call.tools.meetings_booked
    result.duration_s = time.perf_counter() - started
    result.recorded_turns = list(call.turns.recorded)
    result.ttfts_s = list(call.turns.llm_first_chunks_s)
    return result


CallRunner = Callable[[int, str], Awaitable[CallResult]]  # (index, tenant id) -> the call's result


async def run_batch(
    *,
    calls: int,
    concurrency: int,
    tenants: Sequence[str],
    run_one: CallRunner,
    on_call_done: Callable[[CallResult], None] | None = None,
    on_call_started: Callable[[int], None] | None = None,
) -> list[CallResult]:
    """``calls`` scripted calls (``run_one``: text or voice), at most ``concurrency`` at a time,
    tenants in rotation."""
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> CallResult:
        async with limit:
            if on_call_started is not None:
                on_call_started(index)
            result = await run_one(index, tenants[index % len(tenants)])
            if on_call_done is not None:
                on_call_done(result)
            return result

    results = await asyncio.gather(*(one(i) for i in range(calls)))
    return sorted(results, key=lambda r: r.index)
