"""Each shared vocabulary has one definition (agent/vocabulary/, telemetry/names.py) that every layer uses.

The source scans fail when a module grows its own copy again; the behavioural tests check that the
layers that used to disagree now accept and refuse the same values.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import business_metrics
from agent.errors import InvalidInput
from agent.llm import LLMSettings
from agent.percentiles import percentile
from agent.simulate.report import percentile as report_percentile
from agent.simulate.stack import FaultSpec, LlmEndpoint, Stack, check_faults, open_stack
from agent.tenants import TenantRegistry
from agent.tools.args import EndCallArgs
from agent.tools.sales_tools import LEAD_STATUS_BY_BAND
from agent.tools.scoring import band_for
from agent.vocabulary.call_outcome import CALL_OUTCOMES, END_CALL_CHOICES
from agent.vocabulary.fault_modes import CRM_FAULT_MODES, LLM_FAULT_MODES
from agent.vocabulary.lead_band import LEAD_BANDS
from agent.vocabulary.local_providers import DEFAULT_LOCAL_PROVIDERS
from agent.vocabulary.tenant_id import TENANT_ID_PATTERN, is_tenant_id
from bench._common import percentile as bench_percentile
from local_services.llm_provider import Fault, run_llm_provider
from telemetry import names

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("agent", "telemetry", "local_services", "bench")


@functools.cache
def _parsed() -> tuple[tuple[str, ast.Module], ...]:
    # Parsed once per test process: the scans below read the same ~200 modules many times, and
    # re-parsing them per scan was most of this file's time in the unit loop.
    return tuple(
        (rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel))
        for folder in SOURCE_DIRS
        for path in sorted((REPO / folder).rglob("*.py"))
        for rel in (path.relative_to(REPO).as_posix(),)
    )


def _modules() -> Iterator[tuple[str, ast.Module]]:
    yield from _parsed()


@functools.cache
def _string_constants(tree: ast.AST) -> frozenset[str]:
    return frozenset(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


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


# ``otel`` first: a CRM client built before setup_telemetry would fix httpx's semconv mode process-wide.
async def test_crm_facade_and_crm_service_accept_the_same_tenant_ids(otel, crm_env) -> None:
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
        response = await admin.post(
            "/v1/contacts/lookup", json={"contact_key": "ann@acme.com"}, headers={"X-Tenant-Id": tenant_id}
        )
        expected = 404 if valid else 400  # 404: accepted, no such contact; 400: invalid_tenant
        assert response.status_code == expected, (tenant_id, response.text)


@functools.cache
def _collections(tree: ast.AST) -> tuple[frozenset[str], ...]:
    """Every literal tuple/list/set of strings, and every ``Literal[...]`` of strings, in ``tree``."""
    return tuple(_walk_collections(tree))


def _walk_collections(tree: ast.AST) -> Iterator[frozenset[str]]:
    for node in ast.walk(tree):
        elements: list[ast.expr] | None = None
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            elements = list(node.elts)
        elif isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
            inner = node.slice
            elements = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if elements and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elements):
            yield frozenset(e.value for e in elements)  # type: ignore[attr-defined]


def _definers(values: tuple[str, ...]) -> set[str]:
    """The modules that spell out a collection holding every one of ``values``."""
    wanted = frozenset(values)
    return {rel for rel, tree in _modules() if any(wanted <= c for c in _collections(tree))}


# --- call outcome and lead band -----------------------------------------------------------------
def test_call_outcomes_and_end_call_choices_are_defined_once() -> None:
    assert END_CALL_CHOICES == ("converted", "not_interested", "callback")
    assert set(END_CALL_CHOICES) < set(CALL_OUTCOMES)  # every choice of the LLM is a recorded outcome
    assert _definers(END_CALL_CHOICES) == {"agent/vocabulary/call_outcome.py"}


def test_end_call_tool_schema_offers_exactly_the_choices() -> None:
    schema = EndCallArgs.model_json_schema()
    assert tuple(schema["properties"]["outcome"]["enum"]) == END_CALL_CHOICES


def test_lead_bands_are_defined_once() -> None:
    assert _definers(LEAD_BANDS) == {"agent/vocabulary/lead_band.py"}
    assert {band_for(score) for score in range(101)} == set(LEAD_BANDS)
    assert set(LEAD_STATUS_BY_BAND) == set(LEAD_BANDS)


@pytest.mark.parametrize("outcome", [*CALL_OUTCOMES, "hung_up"])
def test_recorded_outcomes_are_the_vocabulary(otel, outcome: str) -> None:
    if outcome in CALL_OUTCOMES:
        business_metrics.call_ended("acme", outcome, 1.0)  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidInput, match="outcome must be one of"):
            business_metrics.call_ended("acme", outcome, 1.0)  # type: ignore[arg-type]


async def test_facade_refuses_a_band_outside_the_vocabulary(otel, crm_env) -> None:
    crm, _admin = crm_env
    with pytest.raises(InvalidInput, match="hot, warm, cold"):
        await crm.set_lead_status("acme", "ann@acme.com", "qualified", 80, "boiling")


# --- fault modes --------------------------------------------------------------------------------
def test_fault_modes_are_defined_once() -> None:
    assert _definers(LLM_FAULT_MODES) == {"agent/vocabulary/fault_modes.py"}
    assert _definers(CRM_FAULT_MODES) == {"agent/vocabulary/fault_modes.py"}


async def test_stand_ins_and_simulate_accept_the_same_fault_modes(crm_service) -> None:
    _url, admin = crm_service
    for mode in CRM_FAULT_MODES:
        assert (await admin.post("/admin/fault", json={"mode": mode, "count": 1})).status_code == 200
    assert (await admin.post("/admin/fault", json={"mode": "explode"})).status_code == 422
    for mode in LLM_FAULT_MODES:
        assert Fault.parse({"mode": mode}).mode == mode
    with pytest.raises(ValueError, match="unknown fault mode"):
        Fault.parse({"mode": "explode"})
    stack = Stack((LlmEndpoint("primary", "http://127.0.0.1:1/v1"),), "http://127.0.0.1:2", False)
    check_faults(stack, [FaultSpec("llm-primary", m) for m in LLM_FAULT_MODES])
    check_faults(stack, [FaultSpec(target, m) for target in ("crm", "calendar") for m in CRM_FAULT_MODES])
    with pytest.raises(ValueError, match="expected one of"):
        check_faults(stack, [FaultSpec("crm", "hang")])


# --- local provider names ----------------------------------------------------------------------
def _model_suffix_fstrings(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.JoinedStr)
        and any(isinstance(v, ast.Constant) and str(v.value).endswith("-model") for v in node.values)
        for node in ast.walk(tree)
    )


def test_local_provider_naming_is_defined_once() -> None:
    assert _definers(DEFAULT_LOCAL_PROVIDERS) == set()  # the vocabulary spells it with its constants
    assert {rel for rel, tree in _modules() if _model_suffix_fstrings(tree)} == {
        "agent/vocabulary/local_providers.py"
    }


async def test_simulate_and_llm_settings_name_a_local_chain_alike() -> None:
    urls = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", "http://127.0.0.1:3/v1"]
    chain = LLMSettings.for_local(urls).chain
    assert [p.name for p in chain] == ["primary", "backup", "backup2"]
    assert [p.model for p in chain] == ["primary-model", "backup-model", "backup2-model"]
    async with open_stack(urls, crm_url="http://127.0.0.1:4") as stack:  # nothing is started
        assert [ep.name for ep in stack.llm] == [p.name for p in chain]
        assert set(stack.fault_targets()) >= {f"llm-{p.name}" for p in chain}
    async with run_llm_provider() as provider:
        assert (provider.name, provider.provider.model) == ("primary", "primary-model")


# --- percentiles ----------------------------------------------------------------------------------
def _estimators(tree: ast.AST) -> bool:
    """A module computes percentiles itself: statistics.quantiles, or a percentile/p95 index by hand."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "quantiles":
            return True
        if (
            isinstance(node, ast.FunctionDef)
            and "percentile" in node.name
            and any(isinstance(n, ast.Name) and n.id == "sorted" for n in ast.walk(node))
        ):
            return True
        if isinstance(node, ast.Subscript) and any(
            isinstance(n, ast.Constant) and n.value in (0.95, 0.99) for n in ast.walk(node.slice)
        ):
            return True
    return False


def test_one_percentile_estimator() -> None:
    assert {rel for rel, tree in _modules() if _estimators(tree)} == {"agent/percentiles.py"}
    values = [0.3, 0.1, 0.4, 0.2]
    assert percentile(values, 50) == pytest.approx(0.25)  # the mean of the middle two
    assert (percentile(values, 0), percentile(values, 100)) == (0.1, 0.4)
    assert percentile(values, 95) == pytest.approx(0.385)
    assert report_percentile is percentile
    assert bench_percentile(values, 95) == percentile(values, 95)
    assert (percentile([], 95), bench_percentile([], 95)) == (None, 0.0)


# --- error.type codes ---------------------------------------------------------------------------
CLASSIFIER_CODES = (
    names.ERROR_CONNECT,
    names.ERROR_STREAM_DROPPED,
    names.ERROR_MALFORMED_RESPONSE,
    names.ERROR_CIRCUIT_OPEN,
    names.ERROR_COOLDOWN,
    names.ERROR_FIRST_TOKEN_TIMEOUT,
    names.ERROR_EMPTY_RESPONSE,
    names.ERROR_ALL_PROVIDERS_FAILED,
)


def test_error_type_codes_are_spelled_only_in_telemetry_names() -> None:
    # sales_agent.dependency.duration's outcome label has a value of the same spelling (its own vocabulary)
    also_an_outcome = {names.ERROR_CIRCUIT_OPEN: {"agent/resilience/caller.py"}}
    for code in CLASSIFIER_CODES:
        owners = _owners(lambda s, code=code: s == code)
        assert owners == {"telemetry/names.py", *also_an_outcome.get(code, ())}, code
    # and the HTTP form is built from names.ERROR_HTTP, not with an f-string of its own
    http_fstrings = {
        rel
        for rel, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        and any(isinstance(v, ast.Constant) and str(v.value).endswith("http_") for v in node.values)
    }
    assert http_fstrings == set()


def _error_type_literals(tree: ast.AST) -> Iterator[str]:
    """Every ``error_type="..."`` (or the constant part of an f-string) given to a call."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg != "error_type":
                continue
            if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                yield kw.value.value
            elif isinstance(kw.value, ast.JoinedStr):  # f"invalid_{field or 'contact'}"
                yield "".join(str(v.value) for v in kw.value.values if isinstance(v, ast.Constant)) + "*"


def test_every_error_type_raised_is_documented() -> None:
    documented = set(names.ERROR_TYPES)
    for rel, tree in _modules():
        for code in _error_type_literals(tree):
            if code.endswith("*"):  # a family: each of its members must be listed
                assert any(d.startswith(code[:-1]) for d in documented), (rel, code)
            else:
                assert code in documented, (rel, code)
    fields = ("name", "company", "role", "email", "phone")
    assert {f"invalid_{f}" for f in (*fields, "contact")} <= documented  # agent/crm/models.py's family
