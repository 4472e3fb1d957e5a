"""CRM data the agent captures, validated before anything goes over the network.

Email syntax is checked with ``email-validator`` (no DNS lookups) and phone numbers are normalised to
E.164 with ``phonenumbers``; a failure raises ``InvalidInput`` naming the field and what is wrong,
so the LLM can ask the caller again. The messages never repeat the value: they reach span events,
logs and stderr, and a dictated address that failed validation ("lee at umbrella.example.com") is
contact data that no pattern recognises as such. The LLM has the value already.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from agent.errors import InvalidInput

LEAD_STATUSES = ("new", "contacted", "qualified", "unqualified", "meeting_booked", "callback", "lost")
DEFAULT_PHONE_REGION = "US"  # numbers spoken without a country code are read as this region's


class Contact(BaseModel):
    """A prospect. At least one of email / phone is required (it keys the CRM record)."""

    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)

    name: str
    company: str | None = None
    role: str | None = None
    email: str | None = None
    phone: str | None = None

    def __init__(self, **data: object) -> None:
        # Raise the project's InvalidInput (field + specific message) rather than pydantic's error.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else None
            message = str(err.get("ctx", {}).get("error") or err["msg"]).removeprefix("Value error, ")
            raise InvalidInput(message, field=field, error_type=f"invalid_{field or 'contact'}") from None
        if not self.email and not self.phone:
            raise InvalidInput(
                "Need an email address or a phone number to save the contact.",
                field="email",
                error_type="missing_contact_key",
            )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value:
            raise ValueError("The contact's name is empty.")
        if len(value) > 200:
            raise ValueError("The contact's name is longer than 200 characters.")
        return value

    @field_validator("company", "role", "email", "phone", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"The email address is not valid: {_without_value(str(exc), value)}") from None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return normalise_phone(value)


# Why phonenumbers could not parse a number, by its public reason code.
_PARSE_FAILURES = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "the country code is missing or unknown",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "it does not look like a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short after the international prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "it has too few digits",
    phonenumbers.NumberParseException.TOO_LONG: "it has too many digits",
}


def normalise_phone(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """E.164 form of ``value`` or ValueError with the reason."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        # The reason by its code, never the library's text (it may quote the number back).
        reason = _PARSE_FAILURES.get(exc.error_type, "it cannot be read as a phone number")
        raise ValueError(f"The phone number is not valid: {reason}.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(
            "The phone number is not a valid number; include the country code (+44 for the UK, +1 the US)."
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _without_value(reason: str, value: str) -> str:
    """A library's reason, unless it quotes any part of the value (then a generic one)."""
    fragments = [part for part in re.split(r"[^0-9A-Za-z]+", value) if len(part) >= 3]
    if any(fragment.lower() in reason.lower() for fragment in fragments):
        return "it does not have the form of one."
    return reason


def contact_key(contact: Contact) -> str:
    """The CRM record key: the lower-cased email, else the E.164 phone."""
    if contact.email:
        return contact.email.lower()
    assert contact.phone is not None  # Contact guarantees one of the two
    return contact.phone


def validate_contact_key(key: str) -> str:
    """A key given by a caller (email or phone) in its canonical form, or InvalidInput."""
    key = (key or "").strip()
    if not key:
        raise InvalidInput("The contact key is empty.", field="contact_key", error_type="invalid_contact_key")
    try:
        if "@" in key:
            return Contact(name="-", email=key).email.lower()  # type: ignore[union-attr]
        return Contact(name="-", phone=key).phone  # type: ignore[return-value]
    except InvalidInput as exc:
        raise InvalidInput(
            f"The contact key must be the contact's email or phone number. {exc.message}",
            field="contact_key",
            error_type="invalid_contact_key",
        ) from None


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to a CRM write; ``message`` is the truthful text for the LLM."""

    status: Literal["synced", "queued"]
    message: str
    idempotency_key: str


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Booking:
    booking_id: str
    contact_key: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    oldest_age_s: float | None
    # "<step>: <error>" while the outbox's storage is failing (its last call of that step failed):
    # new writes are then not durable, and depth/age may not be readable.
    storage_error: str | None = None
