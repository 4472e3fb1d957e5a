"""CRM / calendar configuration (pydantic-settings): every variable starts with ``CRM_``.

Read once by the entry point (``AppSettings.from_env``) and passed down; frozen. ``CRM_RETRY_OVERRIDES``
is JSON keyed by operation, each value a partial retry policy: an unknown operation or field, or a value
of the wrong type, is rejected at start with the variable's name (it used to fail late with a
``TypeError``, be ignored, or switch retries off).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.resilience import RetryPolicy
from telemetry.config_errors import decode_json

# The operations the facade runs through its callers (CRM and calendar), which the overrides can name.
CrmOperation = Literal[
    "upsert_contact",
    "add_note",
    "set_lead_status",
    "get_contact",
    "list_free_slots",
    "book_meeting",
    "cancel_meeting",
]
CRM_OPERATIONS: tuple[str, ...] = get_args(CrmOperation)


class RetryOverride(BaseModel):
    """Part of a ``RetryPolicy`` for one operation; the fields not given keep the CRM-wide values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int | None = Field(default=None, ge=0)
    wait_initial_s: float | None = Field(default=None, ge=0)
    wait_max_s: float | None = Field(default=None, ge=0)
    wait_exp_base: float | None = Field(default=None, ge=1)
    wait_jitter_s: float | None = Field(default=None, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    retry_after_max_s: float | None = Field(default=None, ge=0)

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class CrmSettings(BaseSettings):
    """``CRM_URL``, ``CRM_CALENDAR_URL`` (defaults to the CRM's), ``CRM_OUTBOX_PATH`` or ``CRM_OUTBOX_URL``
    (a PostgreSQL database many workers share; it wins over the path), ``CRM_API_KEY`` and
    the retry / breaker policy (``CRM_RETRIES``, ``CRM_RETRY_*``, ``CRM_BREAKER_*``; per-operation
    overrides as JSON in ``CRM_RETRY_OVERRIDES``, e.g. ``{"book_meeting": {"retries": 1}}``).

    Deprecated names, still read (with a warning from ``AppSettings.from_env``): ``CALENDAR_URL``,
    ``CRM_RETRY_ATTEMPTS`` (it always set the number of *retries*, not attempts)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True, frozen=True)

    crm_url: str = Field(default="http://127.0.0.1:8090", alias="CRM_URL")
    calendar_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CRM_CALENDAR_URL", "CALENDAR_URL", "calendar_url")
    )
    api_key: SecretStr | None = Field(
        default=None, alias="CRM_API_KEY"
    )  # sent as a bearer token, never logged
    outbox_path: str = Field(default="data/crm_outbox.sqlite3", alias="CRM_OUTBOX_PATH")
    outbox_poll_interval_s: float = Field(default=2.0, gt=0, alias="CRM_OUTBOX_POLL_INTERVAL_S")
    # postgresql://user:password@host:5432/db — the password is never logged (errors show the URL without it).
    outbox_url: SecretStr | None = Field(default=None, alias="CRM_OUTBOX_URL")
    outbox_timeout_s: float = Field(default=5.0, gt=0, le=60, alias="CRM_OUTBOX_TIMEOUT_S")
    outbox_pool_size: int = Field(default=8, ge=1, le=100, alias="CRM_OUTBOX_POOL_SIZE")

    connect_timeout_s: float = Field(default=2.0, gt=0, alias="CRM_CONNECT_TIMEOUT_S")
    read_timeout_s: float = Field(default=5.0, gt=0, alias="CRM_READ_TIMEOUT_S")
    max_connections: int = Field(default=20, ge=1, alias="CRM_MAX_CONNECTIONS")

    # The spec's retry defaults: 3 retries (4 attempts), 1 s initial, 10 s max, x2, jitter.
    retries: int = Field(
        default=3, ge=0, validation_alias=AliasChoices("CRM_RETRIES", "CRM_RETRY_ATTEMPTS", "retries")
    )
    retry_wait_initial_s: float = Field(default=1.0, ge=0, alias="CRM_RETRY_WAIT_INITIAL_S")
    retry_wait_max_s: float = Field(default=10.0, ge=0, alias="CRM_RETRY_WAIT_MAX_S")
    retry_exp_base: float = Field(default=2.0, ge=1, alias="CRM_RETRY_EXP_BASE")
    retry_jitter_s: float = Field(default=1.0, ge=0, alias="CRM_RETRY_JITTER_S")
    retry_overrides: Annotated[dict[CrmOperation, RetryOverride], NoDecode] = Field(
        default_factory=dict, alias="CRM_RETRY_OVERRIDES"
    )

    # The spec's breaker defaults: open after 5 failures, 60 s recovery, 3 calls in half-open.
    breaker_failure_threshold: int = Field(default=5, ge=1, alias="CRM_BREAKER_FAILURE_THRESHOLD")
    breaker_recovery_s: float = Field(default=60.0, ge=0, alias="CRM_BREAKER_RECOVERY_S")
    breaker_half_open_max_calls: int = Field(default=3, ge=1, alias="CRM_BREAKER_HALF_OPEN_MAX_CALLS")

    @field_validator("outbox_url", mode="before")
    @classmethod
    def _database_url(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        if not isinstance(text, str) or not text.startswith(("postgresql://", "postgres://")):
            raise ValueError("CRM_OUTBOX_URL must be a postgresql:// URL (unset it to use CRM_OUTBOX_PATH)")
        return text

    @property
    def outbox_location(self) -> str:
        """Where the outbox is: the database URL (with its password) when set, else the file path."""
        return self.outbox_url.get_secret_value() if self.outbox_url is not None else self.outbox_path

    @field_validator("retry_overrides", mode="before")
    @classmethod
    def _overrides(cls, value: Any) -> Any:
        value = decode_json(value, 'an object per operation, e.g. {"book_meeting": {"retries": 1}}')
        if isinstance(value, dict):
            unknown = sorted(str(op) for op in value if op not in CRM_OPERATIONS)
            if unknown:
                raise ValueError(
                    f"unknown operation {', '.join(map(repr, unknown))}; "
                    f"expected one of {', '.join(CRM_OPERATIONS)}"
                )
        return value

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            retries=self.retries,
            wait_initial_s=self.retry_wait_initial_s,
            wait_max_s=self.retry_wait_max_s,
            wait_exp_base=self.retry_exp_base,
            wait_jitter_s=self.retry_jitter_s,
            retry_after_max_s=self.retry_wait_max_s,
        )

    def retry_policy_overrides(self) -> dict[str, RetryPolicy]:
        base = self.retry_policy()
        return {op: base.with_overrides(**change.changes()) for op, change in self.retry_overrides.items()}
