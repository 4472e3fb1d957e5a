"""Business metrics: each function records its series by tenant; bad labels are refused."""

from __future__ import annotations

import pytest

from agent import business_metrics as bm
from agent.errors import InvalidInput
from telemetry import names


def test_each_metric_is_recorded_by_tenant(otel):
    t = {names.TENANT_ID: "bm-tenant"}
    before = {
        "captured": otel.metric_value(names.LEADS_CAPTURED, **t),
        "hot": otel.metric_value(names.LEADS_QUALIFIED, **t, **{names.LEAD_BAND: "hot"}),
        "booked": otel.metric_value(names.MEETINGS_BOOKED, **t),
        "converted": otel.metric_value(names.CALLS, **t, **{names.CALL_OUTCOME: "converted"}),
        "duration": otel.metric_value(names.CALL_DURATION, **t, **{names.CALL_OUTCOME: "converted"}),
    }
    bm.lead_captured("bm-tenant")
    bm.lead_qualified("bm-tenant", "hot")
    bm.meeting_booked("bm-tenant")
    bm.call_ended("bm-tenant", "converted", 182.5)

    assert otel.metric_value(names.LEADS_CAPTURED, **t) == before["captured"] + 1
    assert otel.metric_value(names.LEADS_QUALIFIED, **t, **{names.LEAD_BAND: "hot"}) == before["hot"] + 1
    assert otel.metric_value(names.MEETINGS_BOOKED, **t) == before["booked"] + 1
    assert otel.metric_value(names.CALLS, **t, **{names.CALL_OUTCOME: "converted"}) == before["converted"] + 1
    points = [
        p for attrs, p in otel.metric_points(names.CALL_DURATION) if attrs.get(names.TENANT_ID) == "bm-tenant"
    ]
    assert points and points[0].count == before["duration"] + 1
    # Minutes-scale buckets from the Views, not the SDK's millisecond defaults.
    assert tuple(points[0].explicit_bounds) == names.DURATION_BUCKETS_S


@pytest.mark.parametrize("outcome", ["converted", "not_interested", "callback", "dropped", "failed", "error"])
def test_every_call_outcome_is_accepted(otel, outcome):
    attrs = {names.TENANT_ID: "bm-outcomes", names.CALL_OUTCOME: outcome}
    before = otel.metric_value(names.CALLS, **attrs)
    bm.call_ended("bm-outcomes", outcome, 30.0)
    assert otel.metric_value(names.CALLS, **attrs) == before + 1


def test_unbounded_labels_are_refused():
    with pytest.raises(InvalidInput, match="band must be one of cold, hot, warm"):
        bm.lead_qualified("acme", "lukewarm")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="outcome must be one of"):
        bm.call_ended("acme", "maybe later", 10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        bm.call_ended("acme", "dropped", -1.0)
