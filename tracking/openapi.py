"""The OpenAPI 3.0.3 document of the ingest API, generated from the event-type mirror (pure: rows in, dict out).

One schema per event type: its data fields by ingestionKey, typed as tracking/schema.py validates them, the
required ones named, with an example. The request body is a oneOf on eventType with a discriminator, so a client
generator (or a person) learns that a purchase needs a currency."""

from __future__ import annotations

import re
from typing import Any

from .consent import PURPOSES
from .schema import DATA_ENTITIES, MAX_DEPTH, ingestion_key

MAX_TEXT = 200
_TEXT = "No NUL (\\u0000) and no lone UTF-16 surrogate (\\ud800-\\udfff), here or anywhere in the event"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


# -- one data field, as tracking/schema.py validates it ----------------------------------------------------------
_FIELD_SCHEMAS: dict[str, dict] = {
    "string": {"type": "string", "example": "Kate"},
    "message": {"type": "string", "example": "Please call me about the offer."},
    "email": {"type": "string", "format": "email", "example": "kate.austen@example.com"},
    "number": {"type": "number", "example": 129.9},
    "currency": {
        "type": "string",
        "pattern": "^[A-Z]{3}$",
        "description": "ISO 4217 code",
        "example": "EUR",
    },
    "boolean": {"type": "boolean", "example": True},
    "date": {
        "type": "string",
        "format": "date-time",
        "description": "RFC3339; UTC if no offset",
        "example": "2026-11-30T09:30:00Z",
    },
    "location": {
        "type": "object",
        "required": ["zipcode", "country"],
        "properties": {
            "zipcode": {"type": "string", "minLength": 1, "example": "75002"},
            "country": {"type": "string", "minLength": 1, "example": "FR"},
        },
        "example": {"zipcode": "75002", "country": "FR"},
    },
}
# Examples per key where the key says more than the type (first_name is a string, but not "Kate" for last_name).
_KEY_EXAMPLES = {"first_name": "Kate", "last_name": "Austen", "amount": 129.9, "turnover": 1200}


def _phone_schema(regions: list[str]) -> dict:
    tried = ", ".join(regions) if regions else "none: international format only"
    example = "+33 6 12 34 56 78" if not regions or "FR" not in regions else "06 12 34 56 78"
    return {
        "type": "string",
        "description": f"A valid phone number, international (+…) or national in these regions, in order: {tried}. "
        "Checked as a real number (libphonenumber): a string no schema can tell apart may still get a 422.",
        "example": example,
    }


def _regions(phone_parsing_config: list[dict] | None) -> list[str]:
    config = sorted(phone_parsing_config or [], key=lambda c: c.get("order", 0))
    return [c["countryCode"] for c in config if c.get("countryCode")]


def field_schema(field: dict, regions: list[str]) -> dict:
    """The JSON schema of one Webmarketer field's value in an event's data."""
    kind = field.get("type", "string")
    schema = dict(_phone_schema(regions) if kind == "phone" else _FIELD_SCHEMAS.get(kind, {}))
    key = ingestion_key(field)
    if key in _KEY_EXAMPLES and schema.get("type") in ("string", "number"):
        value = _KEY_EXAMPLES[key]
        if isinstance(value, str) == (schema["type"] == "string"):
            schema["example"] = value
    if not field.get("optional") and schema.get("type") == "string":
        schema["minLength"] = 1  # an empty string counts as missing
    label = field.get("label") or ""
    about = [f"Webmarketer {kind} field ({field.get('entity')})"]
    if label:
        about.insert(0, label)
    if field.get("isPii"):
        about.append("personal data")
    if field.get("discriminant"):
        about.append("identifies the lead")
    description = ". ".join(about) + "."
    schema["description"] = f"{description} {schema['description']}" if schema.get("description") else description
    return schema


def _schema_name(reference: str) -> str:
    """contact-form → ContactFormEvent (component names take letters, digits, dots, dashes and underscores)."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", reference) if part) + "Event"


def event_type_schemas(event_type) -> tuple[str, dict, dict, dict]:
    """(component name, event schema, data schema, example event) of one EventType row."""
    regions = _regions(event_type.phone_parsing_config)
    fields = [f for f in event_type.fields if f.get("entity") in DATA_ENTITIES and ingestion_key(f)]
    properties = {ingestion_key(f): field_schema(f, regions) for f in fields}
    required = [ingestion_key(f) for f in fields if not f.get("optional")]
    data: dict[str, Any] = {
        "type": "object",
        "description": f"The data of a {event_type.reference} event ({event_type.name}). Keys are the fields' "
        "ingestionKey; other keys are allowed and passed on to routes that map them.",
        "properties": properties,
        "additionalProperties": True,
    }
    if required:
        data["required"] = required
    name = _schema_name(event_type.reference)
    example_data = {key: schema["example"] for key, schema in properties.items() if "example" in schema}
    example = {"eventType": event_type.reference, "data": example_data, "nonce": f"{event_type.reference}-0001"}
    data["example"] = example_data
    event = {
        "type": "object",
        "description": f"A {event_type.name} event ({event_type.reference}).",
        "required": ["eventType", "data"],
        "additionalProperties": False,
        "properties": {
            "eventType": {"type": "string", "enum": [event_type.reference]},
            "data": _ref(f"{name}Data"),
            "eventDate": _ref("EventDate"),
            "trackerId": _ref("TrackerId"),
            "nonce": _ref("Nonce"),
            "consent": _ref("Consent"),
        },
        "example": example,
    }
    return name, event, data, example


# -- the envelope and the answers ------------------------------------------------------------------------------
_EVENT_DATE = {
    "type": "string",
    "format": "date-time",
    "description": "RFC3339; UTC if no offset; must fall within years 1 to 9999 once converted to UTC. "
    "The time of receipt if absent.",
    "example": "2026-11-30T09:30:00Z",
}
_TRACKER_ID = {"type": "string", "maxLength": MAX_TEXT, "description": "The visitor's tracker id, if any."}
_NONCE = {
    "type": "string",
    "maxLength": MAX_TEXT,
    "description": "Dedup key, per source (the same nonce from another source is another event); generated if "
    f"absent. Over {MAX_TEXT} characters the event is kept as invalid and its answer's nonce is null.",
    "example": "order-1042",
}
_EVENT = {
    "type": "object",
    "description": "Any event, whatever its type: the envelope every event type's schema shares.",
    "required": ["eventType", "data"],
    "additionalProperties": False,
    "properties": {
        "eventType": {
            "type": "string",
            "maxLength": MAX_TEXT,
            "description": f"Event type reference, e.g. contact-form. {_TEXT}.",
        },
        "data": {
            "type": "object",
            "description": "Must match the event type's fields (by ingestionKey). Objects and arrays nest at most "
            f"{MAX_DEPTH} levels counting the event itself; numbers fit in a double (±1.8e308; 1e400 is refused).",
        },
        "eventDate": _ref("EventDate"),
        "trackerId": _ref("TrackerId"),
        "nonce": _ref("Nonce"),
        "consent": _ref("Consent"),
    },
}
_CONSENT = {
    "description": "The purposes the person consented to (analytics, advertising, personalisation): a list, or an "
    "object of purpose → true/false. [] grants none. Absent: the source's default applies. A route needing a "
    "purpose not granted records its delivery as suppressed (never sent). Anything else keeps the event as invalid.",
    "oneOf": [
        {"type": "array", "items": {"type": "string", "enum": list(PURPOSES)}},
        {"type": "object", "additionalProperties": {"type": "boolean"}},
    ],
    "example": ["analytics", "personalisation"],
}
_FIELD_ERROR = {
    "type": "object",
    "required": ["field", "message"],
    "properties": {
        "field": {"type": "string", "description": "A path: eventType, nonce, data.first_name, data.items[0].sku"},
        "message": {"type": "string"},
        "value": {"description": "The value refused, as stored (visible escapes for NUL and surrogates)"},
    },
    "example": {"field": "data.currency", "message": "is required", "value": None},
}
_RESULT = {
    "type": "object",
    "required": ["id", "nonce", "status"],
    "properties": {
        "id": {"type": "string", "format": "uuid", "description": "The stored event's id"},
        "nonce": {
            "type": "string",
            "nullable": True,
            "description": "The nonce sent, or the one generated when none was; null when the one sent was "
            "refused (errors name it)",
        },
        "status": {"type": "string", "enum": ["accepted", "duplicate", "invalid"]},
        "errors": {
            "type": "array",
            "description": "Why the event is invalid (only when status is invalid)",
            "items": _ref("FieldError"),
        },
    },
    "example": {"id": "3f0c9a4e-8a53-4a8b-9a0e-3c1f4a0b2d11", "nonce": "order-1042", "status": "accepted"},
}
_INVALID = {
    "type": "object",
    "required": ["error", "id", "nonce", "status", "errors"],
    "properties": {
        "error": {"type": "string", "description": "A summary naming the first fields at fault"},
        "id": {"type": "string", "format": "uuid"},
        "nonce": {"type": "string", "nullable": True},
        "status": {"type": "string", "enum": ["invalid"]},
        "errors": {"type": "array", "items": _ref("FieldError")},
    },
    "example": {
        "error": "the event is kept as invalid and never sent: data.currency is required",
        "id": "3f0c9a4e-8a53-4a8b-9a0e-3c1f4a0b2d11",
        "nonce": "order-1042",
        "status": "invalid",
        "errors": [{"field": "data.currency", "message": "is required", "value": None}],
    },
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
    "example": {"error": "invalid or disabled source token"},
}


def _batch_result(*, refused: bool) -> dict:
    counts = {
        "accepted": {"type": "integer", "minimum": 0, "description": "New events accepted (queued for delivery)"},
        "duplicate": {
            "type": "integer",
            "minimum": 0,
            "description": "Events whose nonce this source already used (or repeated within the batch): the "
            "stored event is answered, nothing new is stored",
        },
        "invalid": {"type": "integer", "minimum": 0, "description": "New events kept as invalid, never sent"},
        "events": {"type": "array", "items": _ref("Result"), "description": "One answer per event, in order"},
    }
    schema: dict[str, Any] = {"type": "object", "required": ["accepted", "duplicate", "invalid", "events"]}
    if refused:
        schema["required"] = ["error", *schema["required"]]
        schema["properties"] = {"error": {"type": "string"}, **counts}
    else:
        schema["properties"] = counts
    return schema


def _responses(ok: str, invalid: str) -> dict:
    def js(name: str) -> dict:
        return {"application/json": {"schema": _ref(name)}}

    def error(description: str) -> dict:
        return {"description": description, "content": js("Error")}

    return {
        "202": {"description": "Accepted (stored, deliveries queued)", "content": js(ok)},
        "400": error(
            "Malformed JSON (NaN and Infinity included), not UTF-8, not valid gzip, wrong body shape, or nesting "
            "too deep to read at all"
        ),
        "401": {
            "description": "Missing or wrong source token",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "example": 'Bearer realm="event-hub"'}},
            "content": js("Error"),
        },
        "405": {
            "description": "Any method but POST",
            "headers": {"Allow": {"schema": {"type": "string"}, "example": "POST"}},
            "content": {
                "application/json": {
                    "schema": _ref("Error"),
                    "example": {"error": "method GET is not allowed here; use POST"},
                }
            },
        },
        "411": error("No Content-Length, and the server cannot tell where a chunked body ends"),
        "413": error("Body over the size limit (as sent, and again once gunzipped) or a batch over its limit"),
        "415": error(
            "Content-Type other than application/json (charset, if any, utf-8) or Content-Encoding other than "
            "identity or gzip"
        ),
        "422": {
            "description": "Nothing accepted: unknown event type, schema violation or a value no vendor takes "
            f"(NUL, lone surrogate, number past a double, nesting past {MAX_DEPTH} levels, eventType, trackerId "
            f"or nonce over {MAX_TEXT} characters, an eventDate out of range in UTC). The event is kept as invalid "
            "(with the offending strings as their visible escapes); error sums it up and errors name each field.",
            "content": js(invalid),
        },
    }


_ENCODING = {
    "name": "Content-Encoding",
    "in": "header",
    "required": False,
    "description": "identity or gzip; anything else is a 415. Without Content-Length, a chunked body is read.",
    "schema": {"type": "string", "enum": ["identity", "gzip"]},
}


def openapi_document(*, event_types: list, limit: int, batch: int, server_url: str | None = None) -> dict:
    """The OpenAPI 3.0.3 document: one schema per (unarchived) event type, the limits in force."""
    schemas: dict[str, dict] = {
        "Event": _EVENT,
        "EventDate": _EVENT_DATE,
        "TrackerId": _TRACKER_ID,
        "Consent": _CONSENT,
        "ConsentUpdate": {
            "type": "object",
            "required": ["consent"],
            "additionalProperties": False,
            "description": "Exactly one of email and trackerId.",
            "properties": {
                "email": {"type": "string", "maxLength": 254, "example": "kate@example.com"},
                "trackerId": _ref("TrackerId"),
                "consent": _ref("Consent"),
            },
        },
        "ConsentUpdateResult": {
            "type": "object",
            "required": ["consent", "events", "suppressed"],
            "properties": {
                "consent": {"type": "array", "items": {"type": "string", "enum": list(PURPOSES)}},
                "events": {"type": "integer", "description": "Events about the person"},
                "suppressed": {"type": "integer", "description": "Deliveries suppressed by this update"},
            },
        },
        "Nonce": _NONCE,
        "FieldError": _FIELD_ERROR,
        "Result": _RESULT,
        "InvalidResult": _INVALID,
        "BatchResult": _batch_result(refused=False),
        "BatchRefusal": _batch_result(refused=True),
        "Error": _ERROR,
    }
    typed: dict[str, str] = {}
    examples: dict[str, dict] = {}
    for event_type in event_types:
        name, event, data, example = event_type_schemas(event_type)
        if name in schemas:  # "a-1" and "a1" both read A1Event: the later one gets a number
            name = next(f"{name}{n}" for n in range(2, 10_000) if f"{name}{n}" not in schemas)
            event["properties"]["data"] = _ref(f"{name}Data")
        schemas[name], schemas[f"{name}Data"] = event, data
        typed[event_type.reference] = f"#/components/schemas/{name}"
        examples[event_type.reference] = {"summary": f"A {event_type.name} event", "value": example}
    if typed:
        one_event: dict = {
            "oneOf": [{"$ref": ref} for ref in typed.values()],
            "discriminator": {"propertyName": "eventType", "mapping": typed},
        }
        schemas["AnyEvent"] = {
            **one_event,
            "description": "An event of one of the defined event types, told apart by eventType",
        }
        one = _ref("AnyEvent")
    else:
        one = _ref("Event")
    types = ", ".join(typed) or "none yet"
    body = {"required": True, "content": {"application/json": {"schema": one}}}
    if examples:
        body["content"]["application/json"]["examples"] = examples
    first = next(iter(examples.values()), None)
    batch_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {"events": {"type": "array", "minItems": 1, "maxItems": batch, "items": one}},
                }
            }
        },
    }
    if first:
        batch_body["content"]["application/json"]["example"] = {"events": [ex["value"] for ex in examples.values()]}
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "Event hub ingest API",
            "version": "1.2.0",
            "description": f"Post events with a source token (Authorization: Bearer hub_…). Event types defined "
            f"here: {types}; each has its own schema below, and an event of another type is kept as invalid. "
            f"Limits: body {limit} bytes (also once gunzipped), {batch} events per batch, nesting {MAX_DEPTH} "
            f"levels per event, eventType / trackerId / nonce {MAX_TEXT} characters. Every error answer is JSON "
            "with an error key. In a batch, each event is answered by itself: an invalid one is kept as invalid "
            "and the others are stored.",
        },
        "components": {
            "securitySchemes": {"source": {"type": "http", "scheme": "bearer", "description": "A source's token"}},
            "schemas": schemas,
        },
        "security": [{"source": []}],
        "paths": {
            "/api/v1/events": {
                "post": {
                    "summary": "Post one event",
                    "operationId": "event_create",
                    "parameters": [_ENCODING],
                    "requestBody": body,
                    "responses": _responses("Result", "InvalidResult"),
                }
            },
            "/api/v1/consent": {
                "post": {
                    "summary": "A person's consent as it stands now: what it no longer allows is suppressed",
                    "description": "Name the person by email (a value anywhere in their events' data, any case) "
                    "or trackerId. Every event about them takes this consent; each pending or retrying delivery "
                    "it no longer allows is suppressed (never sent). Events still to come carry their own.",
                    "operationId": "consent_update",
                    "parameters": [_ENCODING],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("ConsentUpdate")}},
                    },
                    "responses": {
                        "200": {
                            "description": "Recorded",
                            "content": {"application/json": {"schema": _ref("ConsentUpdateResult")}},
                        },
                        **{k: v for k, v in _responses("Result", "InvalidResult").items() if k not in ("202", "422")},
                    },
                }
            },
            "/api/v1/events/batch": {
                "post": {
                    "summary": f"Post up to {batch} events; 202 if any was accepted, with a status per event",
                    "operationId": "event_batch_create",
                    "parameters": [_ENCODING],
                    "requestBody": batch_body,
                    "responses": _responses("BatchResult", "BatchRefusal"),
                }
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url, "description": "This hub"}]
    return document
