"""Prometheus series names for OpenTelemetry instruments, as the OTel Prometheus exporter writes them.

Boards pass the constants of ``telemetry/names.py`` through these helpers when they build a query,
never a typed-out ``sales_agent_..._total``: renaming a metric in names.py and regenerating the
dashboards (``uv run python -m dashboards.generate``) rewrites every query that reads it.

The translation is the exporter's (opentelemetry-exporter-prometheus, per the OTel spec's Prometheus
compatibility rules): characters other than ``[a-zA-Z0-9:]`` become ``_``; the unit is appended
(``s`` -> ``_seconds``, ``By`` -> ``_bytes``; ``1`` and ``{annotations}`` add nothing); a monotonic
sum (a counter) ends in ``_total``; an up-down counter is exported as a gauge; a histogram is the
``_bucket`` / ``_count`` / ``_sum`` series of its name. Attribute keys become labels the same way
(``call.outcome`` -> ``call_outcome``). Only the units our instruments use are
mapped. The rules are reimplemented here, not imported, because the exporter keeps them in a
private module (``_mapping``); tests/unit/test_dashboards_json.py pins this module against the real
exporter for every kind and unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# UCUM units our instruments use -> the Prometheus suffix the exporter appends.
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "", "%": "percent"}
_ANNOTATION = re.compile(r"\{.*\}")
_INVALID = re.compile(r"[^a-zA-Z0-9:]+")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9]+")  # label names may not contain ":"


def _unit_suffix(unit: str) -> str:
    unit = _ANNOTATION.sub("", unit)
    if unit in _UNIT_SUFFIX:
        return _UNIT_SUFFIX[unit]
    if unit:
        raise ValueError(f"unit {unit!r} has no Prometheus suffix here: add it to dashboards/metrics.py")
    return ""


def _base_name(otel_name: str, unit: str) -> str:
    name = _INVALID.sub("_", otel_name)
    suffix = _unit_suffix(unit)
    if suffix and not name.endswith("_" + suffix):
        name = f"{name}_{suffix}"
    return name


def counter(otel_name: str, unit: str = "") -> str:
    """A counter (monotonic sum): ``sales_agent.calls`` -> ``sales_agent_calls_total``."""
    return _base_name(otel_name, unit) + "_total"


def gauge(otel_name: str, unit: str = "") -> str:
    """A gauge or up-down counter: ``sales_agent.outbox.oldest_age`` (s) -> ``..._oldest_age_seconds``."""
    return _base_name(otel_name, unit)


@dataclass(frozen=True)
class Histogram:
    """The series of one histogram; ``name`` is the family (``..._seconds``)."""

    name: str

    @property
    def bucket(self) -> str:
        return self.name + "_bucket"

    @property
    def count(self) -> str:
        return self.name + "_count"

    @property
    def sum(self) -> str:
        return self.name + "_sum"


def histogram(otel_name: str, unit: str = "s") -> Histogram:
    """A histogram; our histograms are in seconds (names.LATENCY_BUCKETS_S / DURATION_BUCKETS_S)."""
    return Histogram(_base_name(otel_name, unit))


def label(attribute: str) -> str:
    """A metric attribute's Prometheus label: ``gen_ai.provider.name`` -> ``gen_ai_provider_name``."""
    return _INVALID_LABEL.sub("_", attribute)
