from opentelemetry import metrics, trace


def test_span_and_metric_captured(otel):
    tracer = trace.get_tracer("t")
    counter = metrics.get_meter("t").create_counter("sales_agent.calls")
    before = otel.metric_value("sales_agent.calls", tenant_id="x")
    with tracer.start_as_current_span("op"):
        counter.add(1, {"tenant_id": "x"})
    assert [s.name for s in otel.spans()] == ["op"]
    assert otel.metric_value("sales_agent.calls", tenant_id="x") == before + 1
