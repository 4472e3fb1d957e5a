"""The sales agent's function tools (see ``sales_tools``), their argument models and lead scoring."""

from agent.tools.sales_tools import EndCallHook, SalesTools
from agent.tools.scoring import LeadScore, score_lead

__all__ = ["EndCallHook", "LeadScore", "SalesTools", "score_lead"]
