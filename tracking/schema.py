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

from .vendors.base import UNSTORABLE, storable

FIELD_TYPES = ("string", "email", "phone", "number", "currency", "boolean", "date", "location", "message")
FIELD_ENTITIES = ("user", "event", "state", "statistic")
# States and statistics are set after the event (lead board), never in its data.
DATA_ENTITIES = ("user", "event")
CURRENCY = re.compile(r"^[A-Z]{3}$")
# ASCII digits only: \d would also take other scripts' digits, which datetime does not read.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$", re.ASCII)
# Levels of objects and arrays in one posted event, the event itself being the first: data nests 31 deep.
MAX_DEPTH = 32
# Vendors read JSON numbers as doubles: an integer of more bits is past ±1.8e308 (Infinity to them).
MAX_INT_BITS = 1024
# Problems named per event at most; the rest are counted.
MAX_REPORTED = 20
# What the body parser puts where it cut nesting too deep to read (a NUL: no client value passes as it).
TOO_DEEP = "\x00nested too deep"
TOO_DEEP_MARK = f"[nested deeper than {MAX_DEPTH} levels: not kept]"


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
    if not parsed.tzinfo:
        return parsed.replace(tzinfo=UTC)
    try:
        # Stored (and sent) in UTC: 9999-12-31T23:59:59-23:59 is a year 10000 there, which no datetime holds.
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC (years 1 to 9999)") from None
    return parsed


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
        # Python's JSON parser takes NaN and Infinity; JSON itself (and so Webmarketer) does not. An int past a
        # double's range is no number a vendor reads either (and math.isfinite would raise on it).
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        finite = value.bit_length() <= MAX_INT_BITS if isinstance(value, int) else math.isfinite(value)
        return None if finite else "must be a number"
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


class OutOfRange(float):
    """A JSON number no double holds (1e400 reads as inf); its text is kept to name it."""

    text: str

    def __new__(cls, text: str) -> OutOfRange:
        number = super().__new__(cls, "-inf" if text.startswith("-") else "inf")
        number.text = text
        return number


def json_float(text: str) -> float:
    """parse_float for json.loads: 1e400 becomes an OutOfRange, refused per event rather than per body."""
    number = float(text)
    return number if math.isfinite(number) else OutOfRange(text)


def json_int(text: str) -> int | float:
    """parse_int for json.loads: past 400 digits (far past a double) no int is made, so no digit limit is hit."""
    return int(text) if len(text) <= 400 else OutOfRange(text)


def _unstorable_why(text: str) -> str:
    found = sorted({f"\\u{ord(c):04x}" for c in UNSTORABLE.findall(text)})
    shown = ", ".join(found[:3]) + (", …" if len(found) > 3 else "")
    kinds = []
    if "\x00" in text:
        kinds.append("a NUL character")
    if any(c != "\x00" for c in UNSTORABLE.findall(text)):
        kinds.append("a lone UTF-16 surrogate")
    return f"contains {' and '.join(kinds)} ({shown}), which no vendor takes"


def _int_text(number: int) -> str:
    try:
        return str(number)
    except ValueError:  # past Python's int-to-text digit limit
        return f"<an integer of {number.bit_length()} bits>"


class _Cleaner:
    """Walks one posted event into a copy every database and vendor takes, naming each change."""

    def __init__(self) -> None:
        self.problems: list[FieldError] = []
        self.unreported = 0

    def problem(self, path: str, message: str, value: Any = None) -> None:
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(FieldError(path, message, value))
        else:
            self.unreported += 1

    def clean(self, value: Any, path: str, depth: int) -> Any:
        if isinstance(value, str):
            if value == TOO_DEEP:
                self.problem(path, f"is nested deeper than {MAX_DEPTH} levels")
                return TOO_DEEP_MARK
            if UNSTORABLE.search(value):
                self.problem(path, _unstorable_why(value), storable(value))
                return storable(value)
            return value
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            text = value.text if isinstance(value, OutOfRange) else str(value)
            self.problem(path, f"is a number out of range ({text[:40]}): JSON numbers must fit in a double", text)
            return text
        if isinstance(value, int):
            if value.bit_length() <= MAX_INT_BITS:
                return value
            text = _int_text(value)
            self.problem(path, "is a number out of range: JSON numbers must fit in a double (±1.8e308)", text)
            return text
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            self.problem(path, f"is nested deeper than {MAX_DEPTH} levels")
            return TOO_DEEP_MARK
        if isinstance(value, list):
            return [self.clean(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict):
            copy: dict[str, Any] = {}
            for key, v in value.items():
                key = key if isinstance(key, str) else str(key)
                if UNSTORABLE.search(key):
                    escaped = storable(key)
                    self.problem(f"{path}.{escaped}" if path else escaped, f"key {_unstorable_why(key)}", escaped)
                    key = escaped
                    while key in value or key in copy:  # never overwrite a key that was sent as such
                        key += "~"
                copy[key] = self.clean(v, f"{path}.{key}" if path else key, depth + 1)
            return copy
        return value


def storable_copy(item: Any) -> tuple[Any, list[FieldError]]:
    """A copy of one posted event that every database and vendor takes, and the reasons it differs.

    NUL and lone surrogates become their visible escapes, numbers past a double their text, nesting past
    MAX_DEPTH a marker. Each change is a FieldError naming its path (data.first_name, data.items[0].sku)."""
    cleaner = _Cleaner()
    copy = cleaner.clean(item, "" if isinstance(item, dict) else "event", 1)
    if cleaner.unreported:
        cleaner.problems.append(FieldError("event", f"and {cleaner.unreported} more values no vendor takes"))
    return copy, cleaner.problems
