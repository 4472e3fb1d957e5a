"""CrmSettings: the spec's defaults, env overrides and per-operation retry policies."""

from __future__ import annotations

from agent.crm import CrmSettings
from agent.resilience import RetryPolicy


def test_defaults_are_the_specs(monkeypatch):
    for var in ("CRM_RETRIES", "CRM_RETRY_ATTEMPTS", "CRM_BREAKER_FAILURE_THRESHOLD", "CRM_RETRY_OVERRIDES"):
        monkeypatch.delenv(var, raising=False)
    s = CrmSettings()
    assert s.retry_policy() == RetryPolicy(
        retries=3, wait_initial_s=1.0, wait_max_s=10.0, wait_exp_base=2.0, wait_jitter_s=1.0
    )
    assert (s.breaker_failure_threshold, s.breaker_recovery_s, s.breaker_half_open_max_calls) == (5, 60.0, 3)


def test_env_overrides_and_per_operation_policies(monkeypatch):
    monkeypatch.setenv("CRM_URL", "http://crm.internal:8080")
    monkeypatch.setenv("CRM_API_KEY", "s3cret")
    monkeypatch.setenv("CRM_RETRIES", "5")
    monkeypatch.setenv("CRM_RETRY_OVERRIDES", '{"book_meeting": {"retries": 1, "wait_max_s": 2}}')
    s = CrmSettings()
    assert s.crm_url == "http://crm.internal:8080" and s.calendar_url is None
    assert "s3cret" not in repr(s)  # secrets never end up in logs
    assert s.retry_policy().retries == 5
    book = s.retry_policy_overrides()["book_meeting"]
    assert (book.retries, book.wait_max_s, book.wait_initial_s) == (1, 2, 1.0)
