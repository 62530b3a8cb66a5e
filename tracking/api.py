"""The ingest API: company systems post events with a source token (Authorization: Bearer …)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .services.ingest import events_ingest, source_authenticate


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="event-hub"'
    return response


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _read_json(request: HttpRequest) -> Any:
    """The body as JSON, within the size limit."""
    limit = settings.INGEST_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest(400, "invalid Content-Length") from None
    if declared > limit:
        raise BadRequest(413, f"body is {declared} bytes; the limit is {limit} bytes")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise BadRequest(413, f"body exceeds the limit of {limit} bytes")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest(400, "body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None


def _no_constant(name: str) -> None:
    # Python's json reads NaN and Infinity; JSON (RFC 8259) has no such numbers and no vendor accepts them.
    raise ValueError(f"{name} is not a JSON number")


def _authenticate(request: HttpRequest):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadRequest(401, "missing source token: send Authorization: Bearer <token>")
    source = source_authenticate(token.strip())
    if source is None:
        raise BadRequest(401, "invalid or disabled source token")
    return source


@csrf_exempt
@require_POST
def event_create(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/events: one event."""
    try:
        source = _authenticate(request)
        item = _read_json(request)
        if not isinstance(item, dict):
            raise BadRequest(400, "body must be a JSON object (one event)")
    except BadRequest as exc:
        return _error(exc.status, str(exc))
    (result,) = events_ingest(source=source, items=[item])
    if not result.accepted:
        return JsonResponse(
            {"error": "the event does not match its event type; it is kept as invalid", **result.as_dict()},
            status=422,
        )
    return JsonResponse(result.as_dict(), status=202)


@csrf_exempt
@require_POST
def event_batch_create(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/events/batch: {"events": [...]}; each item is stored, valid or not."""
    try:
        source = _authenticate(request)
        body = _read_json(request)
        items = body.get("events") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise BadRequest(400, 'body must be {"events": [...]} with at least one event')
        if len(items) > settings.INGEST_MAX_BATCH:
            raise BadRequest(413, f"{len(items)} events; a batch holds at most {settings.INGEST_MAX_BATCH}")
    except BadRequest as exc:
        return _error(exc.status, str(exc))
    results = events_ingest(source=source, items=items)
    accepted = sum(1 for r in results if r.accepted)
    return JsonResponse(
        {"accepted": accepted, "invalid": len(results) - accepted, "events": [r.as_dict() for r in results]},
        # Some accepted: 202 with per-event statuses. None accepted: 422 (all kept as invalid).
        status=202 if accepted else 422,
    )


_EVENT = {
    "type": "object",
    "required": ["eventType", "data"],
    "additionalProperties": False,
    "properties": {
        "eventType": {"type": "string", "description": "Event type reference, e.g. contact-form"},
        "data": {"type": "object", "description": "Must match the event type's fields (by ingestionKey)"},
        "eventDate": {"type": "string", "format": "date-time", "description": "RFC3339; UTC if no offset"},
        "trackerId": {"type": "string"},
        "nonce": {"type": "string", "maxLength": 200, "description": "Dedup key; generated if absent"},
    },
}
_RESULT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "nonce": {"type": "string"},
        "status": {"type": "string", "enum": ["accepted", "duplicate", "invalid"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "value": {}},
            },
        },
    },
}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}


def _responses(ok: dict) -> dict:
    def js(schema: dict) -> dict:
        return {"application/json": {"schema": schema}}

    return {
        "202": {"description": "Accepted (stored, deliveries queued)", "content": js(ok)},
        "400": {"description": "Malformed JSON or body shape", "content": js(_ERROR)},
        "401": {"description": "Missing or wrong source token", "content": js(_ERROR)},
        "413": {"description": "Body over 1 MiB or batch over 500 events", "content": js(_ERROR)},
        "422": {"description": "Unknown event type or schema violation; kept as invalid", "content": js(ok)},
    }


OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Event hub ingest API", "version": "1.0.0"},
    "components": {
        "securitySchemes": {"source": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Event": _EVENT, "Result": _RESULT, "Error": _ERROR},
    },
    "security": [{"source": []}],
    "paths": {
        "/api/v1/events": {
            "post": {
                "summary": "Post one event",
                "operationId": "event_create",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _EVENT}}},
                "responses": _responses(_RESULT),
            }
        },
        "/api/v1/events/batch": {
            "post": {
                "summary": "Post up to 500 events; 202 if any was accepted, with a status per event",
                "operationId": "event_batch_create",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["events"],
                                "properties": {
                                    "events": {"type": "array", "minItems": 1, "maxItems": 500, "items": _EVENT}
                                },
                            }
                        }
                    },
                },
                "responses": _responses(
                    {
                        "type": "object",
                        "properties": {
                            "accepted": {"type": "integer"},
                            "invalid": {"type": "integer"},
                            "events": {"type": "array", "items": _RESULT},
                        },
                    }
                ),
            }
        },
    },
}


@require_GET
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(OPENAPI)
