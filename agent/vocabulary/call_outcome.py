"""How a call ends: what the agent chooses, and what is recorded.

- ``EndCallChoice``: the LLM's choice in the ``end_call`` tool (``converted``: a meeting booked or a
  deal agreed; ``not_interested``; ``callback``: call them later).
- ``CallOutcome``: the ``call.outcome`` label of ``sales_agent.calls``: the agent's choice, else
  ``dropped`` (the caller hung up before ``end_call``) or ``error`` (the call failed).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

EndCallChoice = Literal["converted", "not_interested", "callback"]
CallOutcome = Literal[EndCallChoice, "dropped", "error"]

END_CALL_CHOICES: Final[tuple[str, ...]] = get_args(EndCallChoice)
CALL_OUTCOMES: Final[tuple[str, ...]] = get_args(CallOutcome)
