"""The health checks' instruments: each check's last result and duration.

Created from an injected meter (``telemetry.instruments``), never at import.
"""

from __future__ import annotations

from opentelemetry.metrics import Meter

from telemetry import names
from telemetry.instruments import InstrumentSet


class HealthInstruments:
    def __init__(self, meter: Meter) -> None:
        self.status = meter.create_gauge(
            names.HEALTH_CHECK_STATUS,
            unit="1",
            description="Last result of a health check: 1 healthy, 0 unhealthy",
        )
        self.duration = meter.create_gauge(
            names.HEALTH_CHECK_DURATION, unit="s", description="Duration of the last run of a health check"
        )


INSTRUMENTS = InstrumentSet(HealthInstruments)
instruments = INSTRUMENTS.get
