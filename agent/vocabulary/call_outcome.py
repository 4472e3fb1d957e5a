"""How a call ends: what the agent chooses, and what is recorded.

- ``EndCallChoice``: the LLM's choice in the ``end_call`` tool (``converted``: a meeting booked or a
  deal agreed; ``not_interested``; ``callback``: call them later).
- ``CallOutcome``: the ``call.outcome`` label of ``sales_agent.calls``: the agent's choice, else
  ``dropped`` (the caller hung up while the agent was answering: the caller's choice), ``failed`` (the
  caller left after the agent failed them, e.g. every LLM provider down) or ``error`` (the session
  itself failed). ``failed`` and ``error`` are ours: they count against the availability SLO.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

EndCallChoice = Literal["converted", "not_interested", "callback"]
CallOutcome = Literal[EndCallChoice, "dropped", "failed", "error"]

END_CALL_CHOICES: Final[tuple[str, ...]] = get_args(EndCallChoice)
CALL_OUTCOMES: Final[tuple[str, ...]] = get_args(CallOutcome)
# The outcomes that are ours (the availability SLO's bad calls: alert-rules/sales-agent-slo.rules.yml).
FAILED_OUTCOMES: Final[frozenset[str]] = frozenset({"failed", "error"})
