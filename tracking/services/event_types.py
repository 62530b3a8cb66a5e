"""Event types edited in the console: every rule checked in one place, then saved and audited.

The data is Webmarketer-shaped (what a push sends): reference, name, fields (states and statistics are
fields with entity state / statistic), phoneParsingConfig (country codes in the order numbers are tried),
expirationPolicy ({from, retentionDurationInDays} as in the seed's create sample) and metadata.
"""

from __future__ import annotations

import json
import re
from typing import Any

import phonenumbers
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import EventType
from ..schema import DATA_ENTITIES, FIELD_ENTITIES, FIELD_TYPES
from ..vendors.webmarketer import event_type_body, event_type_digest
from .audit import audit_record
from .webmarketer import event_type_document

__all__ = [
    "EventTypeInvalid",
    "event_type_clean",
    "event_type_save",
    "event_type_sync_state",
    "event_type_push_body",
    "event_type_archive_set",
    "FIELD_FLAGS",
    "EXPIRATION_FROM",
]

REFERENCE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Storage and ingestion keys: no spaces or punctuation that would make them awkward in JSON paths and URLs
# (states and statistics are PATCHed at .../states/{storageKey}).
KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
KEY_MAX = 64
FIELD_FLAGS = ("optional", "discriminant", "isPii", "isMostProbableLocation")
# The keys the editor shows; any other key of a field (e.g. added by Webmarketer) is kept as it was.
FIELD_KEYS = ("type", "entity", "storageKey", "ingestionKey", "label", *FIELD_FLAGS)
# webmarketer-api-1.0.0.txt, "Create an event-type": "from": "project, event-type".
EXPIRATION_FROM = ("project", "event-type")
RETENTION_MAX_DAYS = 36_500
# A state is set to 0 or 1; a statistic holds an amount (seed: "Update an event state / statistic").
ENTITY_TYPES = {"state": ("boolean", "number"), "statistic": ("number",)}


class EventTypeInvalid(ValueError):
    """The data breaks a rule. `errors` maps a path ("name", "fields.2.storageKey", "expirationPolicy.from",
    "fields" for the list as a whole) to its messages, so a form can show each next to its input."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{path}: {' '.join(messages)}" for path, messages in errors.items()))
        self.errors = errors


class _Errors(dict):
    def add(self, path: str, message: str) -> None:
        self.setdefault(path, []).append(message)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _key_problem(key: str, what: str) -> str | None:
    if len(key) > KEY_MAX:
        return f"{what} is longer than {KEY_MAX} characters."
    if not KEY.match(key):
        return f"{what} {key!r}: use letters, digits, _ . - and no spaces."
    return None


def _field_clean(index: int, raw: Any, errors: _Errors) -> dict[str, Any]:
    path = f"fields.{index}"
    if not isinstance(raw, dict):
        errors.add(path, "A field must be an object.")
        return {}
    field = {k: v for k, v in raw.items() if k not in FIELD_KEYS}  # kept as they were
    kind, entity = _text(raw.get("type")), _text(raw.get("entity"))
    if kind not in FIELD_TYPES:
        errors.add(
            f"{path}.type", f"Choose a type among {', '.join(FIELD_TYPES)}" + (f" (not {kind!r})." if kind else ".")
        )
    if entity not in FIELD_ENTITIES:
        errors.add(
            f"{path}.entity", "Choose user, event, state or statistic" + (f" (not {entity!r})." if entity else ".")
        )
    elif entity in ENTITY_TYPES and kind in FIELD_TYPES and kind not in ENTITY_TYPES[entity]:
        allowed = " or ".join(ENTITY_TYPES[entity])
        why = "is set to 0 or 1" if entity == "state" else "holds an amount"
        errors.add(f"{path}.type", f"A {entity} {why}: use type {allowed}.")
    storage_key = _text(raw.get("storageKey"))
    if not storage_key:
        errors.add(f"{path}.storageKey", "A storage key is required.")
    elif problem := _key_problem(storage_key, "Storage key"):
        errors.add(f"{path}.storageKey", problem)
    ingestion_key = _text(raw.get("ingestionKey"))
    if ingestion_key and (problem := _key_problem(ingestion_key, "Ingestion key")):
        errors.add(f"{path}.ingestionKey", problem)
    label = raw.get("label")
    if label is not None and not isinstance(label, str):
        errors.add(f"{path}.label", "A label is text.")
    elif label and len(label) > 200:
        errors.add(f"{path}.label", "A label is at most 200 characters.")
    flags = {flag: bool(raw.get(flag)) for flag in FIELD_FLAGS}
    if flags["discriminant"] and entity != "user":
        errors.add(f"{path}.discriminant", "Only user fields identify the user (discriminant).")
    if flags["isMostProbableLocation"] and kind != "location":
        errors.add(f"{path}.isMostProbableLocation", "Only a location field can be the most probable location.")
    field |= {
        "type": kind,
        "entity": entity,
        "storageKey": storage_key,
        # The seed's create sample sends null: Webmarketer then reads the value at the storage key.
        "ingestionKey": ingestion_key or None,
        **flags,
    }
    if label and isinstance(label, str) and label.strip():
        field["label"] = label.strip()
    return field


def _fields_clean(raw: Any, errors: _Errors) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        errors.add("fields", "Fields must be a list.")
        return []
    fields = [_field_clean(i, item, errors) for i, item in enumerate(raw)]
    # Storage keys name fields, states and statistics alike in Webmarketer: one use each.
    by_storage: dict[str, list[int]] = {}
    by_ingestion: dict[str, list[int]] = {}
    for i, field in enumerate(fields):
        if field.get("storageKey"):
            by_storage.setdefault(field["storageKey"], []).append(i)
        if field.get("entity") in DATA_ENTITIES and field.get("storageKey"):
            by_ingestion.setdefault(field["ingestionKey"] or field["storageKey"], []).append(i)
    for key, rows in by_storage.items():
        for i in rows[1:]:
            errors.add(f"fields.{i}.storageKey", f"Storage key {key!r} is already used by row {rows[0] + 1}.")
    for key, rows in by_ingestion.items():
        for i in rows[1:]:
            # Two fields fed from one key of the data: the second would silently copy the first.
            where = "ingestionKey" if fields[i]["ingestionKey"] else "storageKey"
            if f"fields.{i}.{where}" not in errors:  # a storage key used twice says enough
                errors.add(f"fields.{i}.{where}", f"Events already bring {key!r} to row {rows[0] + 1}.")
    locations = [i for i, f in enumerate(fields) if f.get("isMostProbableLocation")]
    for i in locations[1:]:
        errors.add(
            f"fields.{i}.isMostProbableLocation", f"Row {locations[0] + 1} is already the most probable location."
        )
    if not any(f.get("entity") in DATA_ENTITIES for f in fields):
        errors.add("fields", "Add at least one user or event field: an event type without one has nothing to check.")
    return fields


def _phone_config_clean(raw: Any, errors: _Errors) -> list[dict[str, Any]]:
    """Country codes (or {order, countryCode}) → Webmarketer's [{order: 1, countryCode}, …] in that order."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        errors.add("phoneParsingConfig", "Give a list of country codes.")
        return []
    items = sorted(raw, key=lambda c: c.get("order", 0)) if all(isinstance(c, dict) for c in raw) else raw
    codes = [_text(c.get("countryCode") if isinstance(c, dict) else c).upper() for c in items]
    unknown = [c or "(empty)" for c in codes if c not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        errors.add(
            "phoneParsingConfig",
            f"Not an ISO 3166 alpha-2 country code with phone numbering: {', '.join(unknown)} (e.g. FR, BE, GB).",
        )
    twice = sorted({c for c in codes if codes.count(c) > 1})
    if twice:
        errors.add("phoneParsingConfig", f"Given twice: {', '.join(twice)}.")
    return [{"order": i, "countryCode": code} for i, code in enumerate(codes, start=1)]


def _expiration_clean(raw: Any, errors: _Errors) -> dict[str, Any] | None:
    if raw in (None, {}, ""):
        return None
    if not isinstance(raw, dict):
        errors.add("expirationPolicy", "The expiration policy must be an object {from, retentionDurationInDays}.")
        return None
    origin = _text(raw.get("from"))
    if origin not in EXPIRATION_FROM:
        errors.add("expirationPolicy.from", "Choose project or event-type.")
    days_raw = raw.get("retentionDurationInDays")
    days: int | None = None
    if isinstance(days_raw, int) and not isinstance(days_raw, bool):
        days = days_raw
    elif isinstance(days_raw, str) and days_raw.strip().isdigit():
        days = int(days_raw.strip())
    if days is None or not 1 <= days <= RETENTION_MAX_DAYS:
        errors.add(
            "expirationPolicy.retentionDurationInDays",
            f"Give the retention as a whole number of days, 1 to {RETENTION_MAX_DAYS}.",
        )
    return {"from": origin, "retentionDurationInDays": days}


def event_type_clean(*, data: dict[str, Any], event_type: EventType | None = None) -> dict[str, Any]:
    """The data checked and normalised (Webmarketer's shape); raises EventTypeInvalid with every problem."""
    errors = _Errors()
    name = _text(data.get("name"))
    if not name:
        errors.add("name", "A name is required (Webmarketer shows it).")
    elif len(name) > 200:
        errors.add("name", "A name is at most 200 characters.")
    reference = _text(data.get("reference"))
    if not reference:
        errors.add("reference", "A reference is required.")
    elif len(reference) > 64 or not REFERENCE.match(reference):
        errors.add("reference", "Use 1 to 64 lowercase letters, digits and single dashes (e.g. contact-form).")
    elif event_type is None or reference != event_type.reference:
        if EventType.objects.filter(reference=reference).exclude(pk=getattr(event_type, "pk", None)).exists():
            errors.add("reference", f"An event type {reference!r} already exists.")
        elif event_type is not None and (event_type.wm_id or event_type.events.exists()):
            # Webmarketer and our event log know the type by its reference.
            errors.add(
                "reference",
                "This type is in Webmarketer or has events: its reference cannot change. Create a new type instead.",
            )
    metadata = data.get("metadata")
    if metadata in (None, ""):
        metadata = {}
    if not isinstance(metadata, dict):
        errors.add("metadata", 'Metadata must be a JSON object, e.g. {"form": "webmarketer"}.')
        metadata = {}
    cleaned = {
        "reference": reference,
        "name": name,
        "fields": _fields_clean(data.get("fields", []), errors),
        "metadata": metadata,
        "phoneParsingConfig": _phone_config_clean(data.get("phoneParsingConfig"), errors),
        "expirationPolicy": _expiration_clean(data.get("expirationPolicy"), errors),
    }
    if errors:
        raise EventTypeInvalid(dict(errors))
    return cleaned


def _canonical(fields: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(f, sort_keys=True) for f in fields)


def _as_stored(fields: list[dict[str, Any]], stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cleaned field that says what the stored one of its storage key says (the editor spells out every
    flag and a null ingestionKey where Webmarketer may leave them out) is kept as stored, so saving an
    unchanged pulled type changes nothing and it stays in sync."""
    by_key = {f.get("storageKey"): f for f in stored if isinstance(f, dict)}
    kept = []
    for field in fields:
        original = by_key.get(field.get("storageKey"))
        same = original is not None and _field_clean(0, original, _Errors()) == field
        kept.append(original if same else field)
    return kept


@transaction.atomic
def event_type_save(*, event_type: EventType | None, data: dict[str, Any], user: Any) -> EventType:
    """Create (event_type=None) or update an event type from the editor's data; audited with before/after."""
    cleaned = event_type_clean(data=data, event_type=event_type)
    before = event_type_document(event_type) if event_type is not None else None
    target = event_type if event_type is not None else EventType()
    fields = cleaned["fields"]
    phone_config = cleaned["phoneParsingConfig"]
    if event_type is not None:
        fields = _as_stored(fields, event_type.fields)
        if _canonical(fields) == _canonical(event_type.fields):
            # Same fields, only shown in another order (the editor lists states apart): keep the mirror's order
            # so an unchanged type does not look changed here.
            fields = event_type.fields
        if _phone_config_clean(event_type.phone_parsing_config, _Errors()) == phone_config:
            phone_config = event_type.phone_parsing_config
    target.reference = cleaned["reference"]
    target.name = cleaned["name"]
    target.fields = fields
    target.metadata = cleaned["metadata"]
    target.phone_parsing_config = phone_config
    target.expiration_policy = cleaned["expirationPolicy"]
    try:
        with transaction.atomic():
            target.save()
    except IntegrityError:  # created meanwhile by someone else
        raise EventTypeInvalid({"reference": [f"An event type {target.reference!r} already exists."]}) from None
    after = event_type_document(target)
    audit_record(
        user=user,
        action="event_type.update" if before else "event_type.create",
        target=target,
        details={"before": before, "after": after},
    )
    return target


def event_type_sync_state(event_type: EventType) -> str:
    """Where the type stands with Webmarketer: "local" (never pushed nor pulled), "changed" here since the
    last sync, or "synced"."""
    if not event_type.wm_id:
        return "local"
    if event_type.synced_hash and event_type_digest(event_type_document(event_type)) != event_type.synced_hash:
        return "changed"
    return "synced"


def event_type_push_body(event_type: EventType) -> dict[str, Any]:
    """What a push sends ("Create an event-type" body), for the console to show."""
    return event_type_body(event_type_document(event_type))


@transaction.atomic
def event_type_archive_set(*, event_type: EventType, archived: bool, user: Any = None) -> bool:
    """Archive (ingest refuses its events from now on) or bring back an event type; audited when it changed."""
    if (event_type.archived_at is not None) == archived:
        return False
    event_type.archived_at = timezone.now() if archived else None
    event_type.save(update_fields=["archived_at", "updated_at"])
    audit_record(user=user, action="event_type.archive" if archived else "event_type.unarchive", target=event_type)
    return True
