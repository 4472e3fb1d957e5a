"""Metric Views: second-scale histogram buckets and bounded label sets.

The SDK's default histogram boundaries (0, 5, 10, ... 10000) are sized for milliseconds; every
latency histogram here (ours, livekit-agents' ``lk.agents.*`` and ``gen_ai.*``, httpx's
``http.client.*``) is recorded in seconds, so each gets explicit boundaries.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from telemetry import names

_LATENCY = ExplicitBucketHistogramAggregation(boundaries=names.LATENCY_BUCKETS_S)
_DURATION = ExplicitBucketHistogramAggregation(boundaries=names.DURATION_BUCKETS_S)

# Long-running histograms (minutes); everything else in seconds is a latency.
_DURATION_HISTOGRAMS = (names.SESSION_DURATION, names.CALL_DURATION)


def build_views() -> list[View]:
    views = [
        View(instrument_type=Histogram, instrument_name=name, aggregation=_DURATION)
        for name in _DURATION_HISTOGRAMS
    ]
    # Wildcards: every other seconds histogram of ours, livekit's and the GenAI/HTTP conventions.
    for pattern in ("sales_agent.*", "lk.agents.*", "gen_ai.*", "http.*"):
        views.append(View(instrument_type=Histogram, instrument_name=pattern, aggregation=_LATENCY))
    return views
