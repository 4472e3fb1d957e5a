"""OpenTelemetry setup for the sales agent: ``setup_telemetry(TelemetrySettings())`` once per process."""

from telemetry.settings import TelemetrySettings
from telemetry.setup import Telemetry, setup_telemetry

__all__ = ["Telemetry", "TelemetrySettings", "setup_telemetry"]
