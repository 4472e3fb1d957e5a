"""OpenTelemetry setup for the sales agent: ``setup_telemetry(TelemetrySettings())`` once per process.

The names below are loaded on first use (PEP 562), not when the package is imported: every command
imports ``telemetry.config_errors`` before it can print anything, and importing the OpenTelemetry SDK
with it would put ~0.5 s in front of ``simulate``'s first line (``bench/bench_startup.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telemetry.settings import TelemetrySettings
    from telemetry.setup import Telemetry, setup_telemetry

__all__ = ["Telemetry", "TelemetrySettings", "setup_telemetry"]

_HOMES = {
    "Telemetry": "telemetry.setup",
    "setup_telemetry": "telemetry.setup",
    "TelemetrySettings": "telemetry.settings",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'telemetry' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
