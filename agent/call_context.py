"""Who a piece of work belongs to: the tenant, the session and the call.

Tools and clients take this from the session (never from the LLM), so a tenant id can't be forged
by a prompt. ``session.id`` and ``call.id`` go on spans and logs only, never on metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from telemetry import names


@dataclass(frozen=True)
class CallContext:
    tenant_id: str
    session_id: str
    call_id: str

    def span_attributes(self) -> dict[str, str]:
        """Attributes for spans and log records (high-cardinality ids included)."""
        return {
            names.TENANT_ID: self.tenant_id,
            names.SESSION_ID: self.session_id,
            names.CALL_ID: self.call_id,
        }
