"""PromQL fragments the boards share: selectors, rates, quantiles, ratios, and zero instead of "No data".

A counter that counts failures (errors, retries, fallbacks, outbox entries) has no series until the
first failure, so a healthy agent would show "No data" where the truth is 0. ``or_zero`` appends
``or on() <zero>``: ``on()`` compares no labels, so the zero is added only when the left side is
empty; a bare ``or vector(0)`` beside a ``sum by (...)`` would add a stray zero series next to the
real ones, because a labelled series never matches the label-less zero.
"""

from __future__ import annotations

from collections.abc import Sequence

from dashboards.metrics import Histogram, label
from telemetry import names

# Label selectors of every app query: the agent's job, the board's instance and tenant variables.
APP = 'job="sales-agent", instance=~"$instance"'
APP_TENANT = APP + f', {label(names.TENANT_ID)}=~"$tenant"'
RATE = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)


def selector(base: str, *matchers: str) -> str:
    return ", ".join((base, *matchers))


def _sum(labels: Sequence[str]) -> str:
    return f"sum by ({', '.join(labels)}) " if labels else "sum"


def sum_rate(metric: str, sel: str, by: Sequence[str] = (), *, fn: str = "rate", window: str = RATE) -> str:
    """``sum by (labels) (rate(metric{sel}[window]))``; ``fn="increase"`` for counts per window."""
    return f"{_sum(by)}({fn}({metric}{{{sel}}}[{window}]))"


def sum_increase(metric: str, sel: str, by: Sequence[str] = (), *, window: str = "$__range") -> str:
    """``sum by (labels) (increase(metric{sel}[window]))``: counts over the board's time range."""
    return sum_rate(metric, sel, by, fn="increase", window=window)


def zero(labels: dict[str, str] | None = None) -> str:
    """A constant 0 series, labelled so that a panel's legend names it (e.g. dependency="none")."""
    expr = "vector(0)"
    for name, value in (labels or {}).items():
        expr = f'label_replace({expr}, "{name}", "{value}", "", "")'
    return expr


def or_zero(expr: str, labels: dict[str, str] | None = None) -> str:
    """``expr``, or a single 0 series when ``expr`` has no series (see the module docstring)."""
    return f"{expr} or on() {zero(labels)}"


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator where an absent numerator counts as 0 (no failures yet = 0 %).

    An absent denominator (no traffic) still yields no value: there is no ratio to show.
    """
    return f"({or_zero(numerator)}) / {denominator}"


def quantile(q: float, histogram: Histogram, sel: str, by: Sequence[str] = ()) -> str:
    labels = ", ".join(("le", *by))
    return f"histogram_quantile({q:g}, sum by ({labels}) (rate({histogram.bucket}{{{sel}}}[{RATE}])))"
