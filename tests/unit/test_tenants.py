"""Tenant registry: YAML loading, id validation, clear errors for a broken file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import InvalidInput
from agent.session_settings import SessionLimits, SessionSettings
from agent.tenants import DEFAULT_TENANTS_FILE, TenantConfigError, TenantRegistry, TenantSettings


def test_default_file_has_demo_tenants_and_an_override():
    registry = TenantRegistry.from_file(DEFAULT_TENANTS_FILE)
    assert {"acme", "globex"} <= set(registry.ids())
    acme = registry.get("acme")
    assert acme.display_name
    assert acme.sessions.expiry_minutes is None
    globex = registry.get("globex")
    limits = SessionLimits.resolve(SessionSettings(), globex.sessions)
    assert limits.expiry_s == 15 * 60
    assert limits.inactivity_s == 2 * 60
    assert limits.max_sessions == 50


def test_env_selects_the_file(tmp_path: Path, monkeypatch):
    file = tmp_path / "t.yaml"
    file.write_text("tenants:\n  initech:\n    display_name: Initech\n")
    monkeypatch.setenv("SALES_AGENT_TENANTS_FILE", str(file))
    assert TenantRegistry.from_file(TenantSettings().file).ids() == ["initech"]


@pytest.mark.parametrize(
    ("tenant_id", "error_type"),
    [
        ("Acme", "malformed_tenant_id"),
        ("a", "malformed_tenant_id"),
        ("-acme", "malformed_tenant_id"),
        ("acme;drop", "malformed_tenant_id"),
        ("x" * 64, "malformed_tenant_id"),
        ("", "malformed_tenant_id"),
        ("initech", "unknown_tenant"),
    ],
)
def test_get_rejects_malformed_and_unknown_ids(tenant_id: str, error_type: str):
    registry = TenantRegistry.from_file(DEFAULT_TENANTS_FILE)
    with pytest.raises(InvalidInput) as info:
        registry.get(tenant_id)
    assert info.value.error_type == error_type
    assert info.value.field == "tenant_id"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("tenants: [unclosed", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
        ("tenants: {}\n", "tenants: Dictionary should have at least 1 item"),
        ("tenants:\n  Bad_Id:\n    display_name: X\n", "tenants.Bad_Id.[key]: String should match pattern"),
        ("tenants:\n  acme:\n    display_name: ''\n", "tenants.acme.display_name"),
        (
            "tenants:\n  acme:\n    display_name: A\n    sessions:\n      expiry_minutes: -1\n",
            "tenants.acme.sessions.expiry_minutes: Input should be greater than 0",
        ),
        (
            "tenants:\n  acme:\n    display_name: A\n    sessions:\n      expiry_minuts: 3\n",
            "tenants.acme.sessions.expiry_minuts: Extra inputs are not permitted",
        ),
    ],
)
def test_broken_file_names_file_and_problem(tmp_path: Path, content: str, problem: str):
    file = tmp_path / "tenants.yaml"
    file.write_text(content)
    with pytest.raises(TenantConfigError) as info:
        TenantRegistry.from_file(file)
    assert str(file) in str(info.value)
    assert problem in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TenantConfigError, match=r"cannot read tenants file .*nope\.yaml"):
        TenantRegistry.from_file(missing)


def test_tenant_cap_never_exceeds_process_cap():
    settings = SessionSettings(max_sessions=10)
    registry = TenantRegistry.from_mapping(
        {"tenants": {"big": {"display_name": "Big", "sessions": {"max_sessions": 500}}}}
    )
    assert SessionLimits.resolve(settings, registry.get("big").sessions).max_sessions == 10
