"""The one percentile estimator for the figures we print (``simulate``'s summary, the benchmarks).

Linear interpolation between the two nearest ranks: numpy's default and ``statistics.quantiles``'
"inclusive" method, for any ``q`` from 0 to 100 (p0 is the minimum, p100 the maximum, p50 of an even
count the mean of the middle two). Prometheus' ``histogram_quantile`` interpolates too, within a
bucket, so a printed p95 and a dashboard p95 estimate the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``; None without values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
