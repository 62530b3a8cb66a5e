"""Validation of an event's data against its event type's Webmarketer fields (pure)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

FIELD_TYPES = ("string", "email", "phone", "number", "currency", "boolean", "date", "location", "message")
FIELD_ENTITIES = ("user", "event", "state", "statistic")
# States and statistics are set after the event (lead board), never in its data.
DATA_ENTITIES = ("user", "event")
CURRENCY = re.compile(r"^[A-Z]{3}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, "value": self.value}


def parse_rfc3339(value: str) -> datetime:
    """An RFC3339 date-time; no offset means UTC (Webmarketer's rule). Raises ValueError."""
    if not isinstance(value, str) or not RFC3339.match(value):
        raise ValueError("not an RFC3339 date-time (e.g. 2023-08-21T19:22:17Z)")
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:  # shaped right, but no such day or time (e.g. February 30th, 25:00)
        raise ValueError(f"not a real date-time ({exc})") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ingestion_key(field: dict) -> str:
    return field.get("ingestionKey") or field.get("storageKey") or ""


def _check_value(kind: str, value: Any, phone_regions: list[str]) -> str | None:
    """The reason `value` is not a valid `kind`, or None."""
    if kind in ("string", "message"):
        return None if isinstance(value, str) else "must be a string"
    if kind == "email":
        if not isinstance(value, str):
            return "must be an email address (a string)"
        try:
            validate_email(value)
        except ValidationError:
            return "is not a valid email address"
        return None
    if kind == "phone":
        if not isinstance(value, str):
            return "must be a phone number (a string)"
        for region in phone_regions or [None]:
            try:
                number = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return None
        tried = ", ".join(phone_regions) if phone_regions else "international format only"
        return f"is not a valid phone number (tried: {tried})"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        # Python's JSON parser takes NaN and Infinity; JSON itself (and so Webmarketer) does not.
        return None if ok and math.isfinite(value) else "must be a number"
    if kind == "currency":
        ok = isinstance(value, str) and CURRENCY.match(value)
        return None if ok else "must be an ISO 4217 currency code such as EUR"
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "date":
        try:
            parse_rfc3339(value)
        except ValueError as exc:
            return f"is {exc}"
        return None
    if kind == "location":
        if not isinstance(value, dict):
            return "must be an object {zipcode, country}"
        bad = [k for k in ("zipcode", "country") if not isinstance(value.get(k), str) or not value.get(k)]
        return f"needs {' and '.join(bad)} as text" if bad else None
    return f"has an unknown field type {kind!r}"


def validate_data(fields: list[dict], data: Any, phone_parsing_config: list[dict] | None = None) -> list[FieldError]:
    """Every way `data` breaks the event type's fields (empty when valid); extra keys are allowed."""
    if not isinstance(data, dict):
        return [FieldError("data", "must be a JSON object", data)]
    regions = [
        c["countryCode"]
        for c in sorted(phone_parsing_config or [], key=lambda c: c.get("order", 0))
        if c.get("countryCode")
    ]
    errors: list[FieldError] = []
    for field in fields:
        if field.get("entity") not in DATA_ENTITIES:
            continue
        key = ingestion_key(field)
        value = data.get(key)
        if value is None or value == "":
            if not field.get("optional"):
                errors.append(FieldError(key, "is required"))
            continue
        reason = _check_value(field.get("type", "string"), value, regions)
        if reason:
            errors.append(FieldError(key, reason, value))
    return errors
