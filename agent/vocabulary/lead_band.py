"""Lead bands: how warm a qualified lead is (``lead.band`` on ``sales_agent.leads.qualified``).

``hot`` is worth a meeting now, ``warm`` is worth nurturing, ``cold`` is not a buyer yet; the score
thresholds that pick a band are in ``agent/tools/scoring.py``.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

LeadBand = Literal["hot", "warm", "cold"]

LEAD_BANDS: Final[tuple[str, ...]] = get_args(LeadBand)
