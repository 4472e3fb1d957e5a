"""The tenants this deployment serves, loaded from YAML and validated once at startup.

A tenant id arrives from outside (job/room metadata), so ``TenantRegistry.get`` checks its format
and membership before anything else uses it; the bounded set of known ids is also what keeps the
``tenant.id`` metric label bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.errors import InvalidInput
from agent.session_settings import SessionOverrides
from agent.vocabulary.tenant_id import TENANT_ID_PATTERN, is_tenant_id
from telemetry.config_errors import ConfigError


def _default_tenants_file() -> Path:
    """``config/tenants.yaml`` of the source checkout, else the copy the wheel carries in the package."""
    package = Path(__file__).resolve().parent
    packaged = package / "config" / "tenants.yaml"  # pyproject.toml: wheel force-include
    return packaged if packaged.is_file() else package.parent / "config" / "tenants.yaml"


DEFAULT_TENANTS_FILE = _default_tenants_file()

TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN)]


class TenantSettings(BaseSettings):
    """``SALES_AGENT_TENANTS_FILE``: the YAML file of tenants (default: the demo tenants)."""

    model_config = SettingsConfigDict(env_prefix="SALES_AGENT_TENANTS_", extra="ignore", frozen=True)

    file: Path = DEFAULT_TENANTS_FILE


class TenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: TenantId
    display_name: str = Field(min_length=1)
    # What the tenant sells, for the agent's instructions.
    pitch: str = ""
    sessions: SessionOverrides = SessionOverrides()


class _TenantEntry(BaseModel):
    """One entry of the YAML mapping (the id is the key)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1)
    pitch: str = ""
    sessions: SessionOverrides = SessionOverrides()


class _TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenants: dict[TenantId, _TenantEntry] = Field(min_length=1)


class TenantConfigError(ConfigError):
    """The tenants file is missing or invalid; the message names the file and the problem (exit 2)."""


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    )


class TenantRegistry:
    def __init__(self, tenants: Iterable[TenantConfig]) -> None:
        self._tenants: dict[str, TenantConfig] = {}
        for tenant in tenants:
            if tenant.id in self._tenants:
                raise ValueError(f"duplicate tenant id {tenant.id!r}")
            self._tenants[tenant.id] = tenant
        if not self._tenants:
            raise ValueError("a tenant registry needs at least one tenant")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<mapping>") -> TenantRegistry:
        """Build from the YAML document's structure: ``{"tenants": {id: {display_name, ...}}}``."""
        try:
            parsed = _TenantsFile.model_validate(data)
        except ValidationError as exc:
            raise TenantConfigError(f"invalid tenants file {source}: {_describe(exc)}") from exc
        return cls(TenantConfig(id=tid, **entry.model_dump()) for tid, entry in parsed.tenants.items())

    @classmethod
    def from_file(cls, path: str | Path) -> TenantRegistry:
        """Load the tenants file (``TenantSettings.file`` at the entry point)."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise TenantConfigError(f"cannot read tenants file {file}: {exc.strerror or exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TenantConfigError(f"tenants file {file} is not valid YAML: {exc}") from exc
        if not isinstance(data, Mapping):
            raise TenantConfigError(f"invalid tenants file {file}: expected a mapping with a 'tenants' key")
        return cls.from_mapping(data, source=str(file))

    def get(self, tenant_id: str) -> TenantConfig:
        """The tenant's config; ``InvalidInput`` for a malformed or unknown id."""
        if not is_tenant_id(tenant_id):
            shown = repr(tenant_id)[:70]
            raise InvalidInput(
                f"malformed tenant id {shown}: expected {TENANT_ID_PATTERN}",
                field="tenant_id",
                error_type="malformed_tenant_id",
            )
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise InvalidInput(
                f"unknown tenant {tenant_id!r}", field="tenant_id", error_type="unknown_tenant"
            )
        return tenant

    def ids(self) -> list[str]:
        return sorted(self._tenants)

    def __contains__(self, tenant_id: object) -> bool:
        return isinstance(tenant_id, str) and tenant_id in self._tenants

    def __len__(self) -> int:
        return len(self._tenants)
