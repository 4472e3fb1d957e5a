"""Each shared vocabulary has one definition (agent/vocabulary/, telemetry/names.py) that every layer uses.

The source scans fail when a module grows its own copy again; the behavioural tests check that the
layers that used to disagree now accept and refuse the same values.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import InvalidInput
from agent.tenants import TenantRegistry
from agent.vocabulary.tenant_id import TENANT_ID_PATTERN, is_tenant_id

REPO = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("agent", "telemetry", "local_services", "bench")


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for folder in SOURCE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _string_constants(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _owners(predicate: object) -> set[str]:
    """The modules holding a string literal for which ``predicate`` is true."""
    return {rel for rel, tree in _modules() if any(predicate(s) for s in _string_constants(tree))}  # type: ignore[operator]


# --- tenant id --------------------------------------------------------------------------------
def test_tenant_id_pattern_is_defined_once() -> None:
    assert _owners(lambda s: "[a-z0-9]" in s) == {"agent/vocabulary/tenant_id.py"}


TENANT_IDS = [
    ("acme", True),
    ("a1", True),
    ("x" * 63, True),
    ("a", False),  # too short
    ("x" * 64, False),  # too long
    ("ac_me", False),  # the CRM layers used to accept "_"
    ("-acme", False),
    ("Acme", False),
    ("acme\n", False),  # a match() with "$" used to let a trailing newline through
]


@pytest.mark.parametrize(("tenant_id", "valid"), TENANT_IDS)
def test_registry_and_vocabulary_agree(tenant_id: str, valid: bool) -> None:
    assert is_tenant_id(tenant_id) is valid
    registry = TenantRegistry.from_mapping({"tenants": {"only-this-one": {"display_name": "Only"}}})
    with pytest.raises(InvalidInput) as info:
        registry.get(tenant_id)  # none of the ids is configured: well-formed ones are "unknown"
    assert info.value.error_type == ("unknown_tenant" if valid else "malformed_tenant_id")
    if not valid:
        assert TENANT_ID_PATTERN in info.value.message


async def test_crm_facade_and_crm_service_accept_the_same_tenant_ids(crm_env) -> None:
    crm, admin = crm_env
    for tenant_id, valid in TENANT_IDS:
        if valid:
            assert await crm.get_contact(tenant_id, "ann@acme.com") is None  # reached the CRM: no contact
        else:
            with pytest.raises(InvalidInput) as info:
                await crm.get_contact(tenant_id, "ann@acme.com")
            assert info.value.field == "tenant_id"
        if "\n" in tenant_id:
            continue  # not representable in an HTTP header
        response = await admin.get("/v1/contacts/ann%40acme.com", headers={"X-Tenant-Id": tenant_id})
        expected = 404 if valid else 400  # 404: accepted, no such contact; 400: invalid_tenant
        assert response.status_code == expected, (tenant_id, response.text)
