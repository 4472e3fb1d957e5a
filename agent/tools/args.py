"""The tools' arguments as pydantic models: one source for the JSON schema the LLM sees and for validation.

The tools are livekit *raw* function tools: livekit hands us the LLM's arguments as a dict and we
validate them here, inside the error wrapper. That way a missing field or a malformed value is a
``validation`` error with a field-specific message for the LLM (and counted in
``sales_agent.errors``), instead of being rejected by livekit before our wrapper sees it.

``extra="forbid"``: the LLM cannot smuggle in ids (``tenant_id``, ``contact_key``...). Whose data a
tool touches comes from the call's ``CallContext`` only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import InvalidInput
from agent.tools.scoring import Authority, Need, Timeline
from agent.vocabulary.call_outcome import EndCallChoice


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


ArgsT = TypeVar("ArgsT", bound=_Args)


class CaptureBasicInfoArgs(_Args):
    name: str = Field(min_length=1, max_length=200, description="The prospect's full name.")
    company: str = Field(min_length=1, max_length=200, description="The prospect's company.")
    role: str | None = Field(default=None, max_length=200, description="Job title, if known.")
    email: str | None = Field(default=None, max_length=320, description="Work email address.")
    phone: str | None = Field(
        default=None, max_length=40, description="Phone number, with country code if given."
    )
    # Email syntax, phone format and "email or phone" are checked by agent.crm.models.Contact.


class QualifyLeadArgs(_Args):
    budget: float = Field(
        ge=0, description="Annual budget in USD the prospect indicated; 0 if none or unknown."
    )
    authority: Authority = Field(description="Can the prospect sign? decision_maker, influencer or none.")
    need: Need = Field(description="How pressing the problem we solve is for them: high, medium or low.")
    timeline: Timeline = Field(
        description="When they want to buy: this_quarter, this_half, this_year or none."
    )


class CheckAvailabilityArgs(_Args):
    days_ahead: int = Field(default=7, ge=1, le=30, description="How many days ahead to look (1-30).")


class BookMeetingArgs(_Args):
    slot_start: datetime = Field(
        description="Start of the slot to book, ISO 8601 exactly as returned by check_availability."
    )

    @field_validator("slot_start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # The calendar works in UTC; a naive time from the LLM is taken as UTC rather than guessed.
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class LogNoteArgs(_Args):
    note: str = Field(min_length=1, max_length=2000, description="A short factual note for the CRM.")


class EndCallArgs(_Args):
    outcome: EndCallChoice = Field(
        description="converted (meeting booked or deal agreed), not_interested, or callback (call later)."
    )


def parse_args(model: type[ArgsT], raw: object) -> ArgsT:
    """Validate the LLM's arguments; ``InvalidInput`` naming each bad field and why (never the values:
    they may be personal data, and the message goes to logs and spans as well as to the LLM)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {_reason(err)}" for err in exc.errors()
        ]
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        field = str(first[0]) if first else None
        raise InvalidInput("; ".join(problems), field=field, error_type="invalid_arguments") from None


def _reason(err: Any) -> str:
    if err["type"] == "missing":
        return "this field is required"
    if err["type"] == "extra_forbidden":
        return "unexpected argument (not part of this tool)"
    return str(err["msg"]).removeprefix("Value error, ")


def tool_schema(name: str, description: str, args: type[_Args]) -> dict[str, Any]:
    """A livekit ``raw_schema`` (OpenAI function format) built from the argument model."""
    parameters = args.model_json_schema()
    parameters.pop("title", None)
    for prop in parameters.get("properties", {}).values():
        prop.pop("title", None)
    return {"name": name, "description": description, "parameters": parameters}
