"""Stable HTTP semantic conventions (``http.client.request.duration`` in seconds) for every httpx client.

OpenTelemetry's instrumentations read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process, at the first
instrumentation of any kind, and never again. Whichever code instruments first therefore decides for
everyone: a CRM client built before ``setup_telemetry`` used to fix the old conventions (milliseconds,
``http.client.duration``) for the whole process, and the dashboards and alerts, which read the stable
names, went blank. Every place that instruments calls this first, so the order no longer matters.
"""

from __future__ import annotations

import os

OPT_IN_VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"


def opt_in_stable_http_semconv() -> None:
    """Ask for the stable HTTP conventions unless the operator chose a mode (e.g. ``http/dup``)."""
    os.environ.setdefault(OPT_IN_VARIABLE, "http")
