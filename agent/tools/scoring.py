"""BANT lead scoring: budget, authority, need and timeline -> a score 0-100 and a band.

Each of the four answers is worth at most 25 points, so a lead that is strong on every axis scores
100 and one that is weak on every axis scores 0:

============  ===========================================================================
budget        annual budget in USD: >= 50,000 -> 25, >= 10,000 -> 15, > 0 -> 5, none -> 0
authority     decision_maker -> 25, influencer -> 12, none -> 0
need          high -> 25, medium -> 12, low -> 0
timeline      this_quarter -> 25, this_half -> 15, this_year -> 8, none -> 0
============  ===========================================================================

Bands: ``hot`` at 70 or more (worth a meeting now), ``warm`` at 40 or more (nurture, book if they
want), ``cold`` below 40. A pure function so the rules are testable and stay out of the tool code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from agent.vocabulary.lead_band import LeadBand

Authority = Literal["decision_maker", "influencer", "none"]
Need = Literal["high", "medium", "low"]
Timeline = Literal["this_quarter", "this_half", "this_year", "none"]

# (minimum annual budget in USD, points), checked from the top.
BUDGET_POINTS: Final = ((50_000.0, 25), (10_000.0, 15), (0.01, 5))
AUTHORITY_POINTS: Final[dict[str, int]] = {"decision_maker": 25, "influencer": 12, "none": 0}
NEED_POINTS: Final[dict[str, int]] = {"high": 25, "medium": 12, "low": 0}
TIMELINE_POINTS: Final[dict[str, int]] = {"this_quarter": 25, "this_half": 15, "this_year": 8, "none": 0}
HOT_THRESHOLD: Final = 70
WARM_THRESHOLD: Final = 40


@dataclass(frozen=True)
class LeadScore:
    score: int  # 0-100
    band: LeadBand


def budget_points(budget_usd: float) -> int:
    for minimum, points in BUDGET_POINTS:
        if budget_usd >= minimum:
            return points
    return 0


def band_for(score: int) -> LeadBand:
    if score >= HOT_THRESHOLD:
        return "hot"
    if score >= WARM_THRESHOLD:
        return "warm"
    return "cold"


def score_lead(budget_usd: float, authority: Authority, need: Need, timeline: Timeline) -> LeadScore:
    score = (
        budget_points(budget_usd)
        + AUTHORITY_POINTS[authority]
        + NEED_POINTS[need]
        + TIMELINE_POINTS[timeline]
    )
    return LeadScore(score=score, band=band_for(score))
