"""The Segment HTTP Tracking API (/v1/track, identify, page, screen, group, alias, batch): Segment's and
RudderStack's libraries send to the hub by changing only their host and write key (a source token).

Same reading as /api/v1/events (tracking/api.py: size limits, gzip with its output cap, depth limit, JSON errors),
same service underneath (services/segment.py → services/ingest.py). Answers as Segment does: 200
{"success": true}; a message over 32 KB or a batch over 500 KB is a 400 naming it.
Reference: https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .api import BadRequest, _json_post, _parse_json, _read_text
from .segment import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, message_bytes, message_name
from .services.ingest import source_authenticate
from .services.segment import segment_cors_allowed, segment_messages_ingest

# analytics.js posts text/plain (no CORS preflight for it); the server libraries post application/json.
CONTENT_TYPES = ("application/json", "text/plain")
PREFLIGHT_MAX_AGE = 600


def _write_key(request: HttpRequest, body: Any) -> str:
    """The write key: HTTP Basic's username (empty password) as the SDKs send it, a Bearer token, or the body's
    writeKey."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(401, "Authorization: Basic must be base64 of <write key>: (empty password)") from None
        return decoded.partition(":")[0]
    if scheme.lower() == "bearer":
        return credentials.strip()
    key = body.get("writeKey") if isinstance(body, dict) else None
    return key if isinstance(key, str) else ""


def _source(request: HttpRequest, body: Any):
    key = _write_key(request, body)
    if not key:
        raise BadRequest(401, "missing write key: send the source token as HTTP Basic username, or writeKey")
    source = source_authenticate(key) if key.isascii() and len(key) <= 200 else None
    if source is None:
        raise BadRequest(401, "invalid or disabled write key (source token)")
    origin = request.headers.get("Origin")
    if origin and not segment_cors_allowed(origin=origin, source=source):
        # A browser on a page the source does not name: refused, nothing stored (CORS is off by default).
        raise BadRequest(403, f"origin {origin[:100]} may not post this source's calls (its Segment settings)")
    request.segment_source = source  # the CORS answer names the origin only for this source's
    return source


def _read(request: HttpRequest, limit: int, what: str) -> Any:
    text = _read_text(request, CONTENT_TYPES)
    size = len(text.encode())
    if size > limit:
        raise BadRequest(400, f"{what} is {size} bytes; Segment's limit is {limit // 1024} KB ({limit} bytes)")
    return _parse_json(text)


def _call(call: str) -> Callable[[HttpRequest], JsonResponse]:
    def view(request: HttpRequest) -> JsonResponse:
        message = _read(request, MAX_MESSAGE_BYTES, f"the {call} message")
        source = _source(request, message)
        if not isinstance(message, dict):
            raise BadRequest(400, f"body must be a JSON object (one {call} message)")
        segment_messages_ingest(source=source, messages=[message], call=call)
        return JsonResponse({"success": True})

    view.__name__ = f"segment_{call}"
    return view


def _batch(request: HttpRequest) -> JsonResponse:
    body = _read(request, MAX_BATCH_BYTES, "the batch")
    source = _source(request, body)
    messages = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise BadRequest(400, 'body must be {"batch": [...]} with at least one message')
    too_big = [(n, m) for n, m in enumerate(messages) if message_bytes(m) > MAX_MESSAGE_BYTES]
    kept = [m for n, m in enumerate(messages) if n not in {i for i, _ in too_big}]
    segment_messages_ingest(source=source, messages=kept, batch_context=body.get("context"))
    if too_big:
        # The others are stored (a retry of this batch stores nothing twice: the messageIds are the nonces).
        named = "; ".join(f"{message_name(m, n)} is {message_bytes(m)} bytes" for n, m in too_big[:5])
        more = f" (and {len(too_big) - 5} more)" if len(too_big) > 5 else ""
        return JsonResponse(
            {
                "success": False,
                "error": f"{named}{more}: over Segment's limit of {MAX_MESSAGE_BYTES // 1024} KB per message; "
                f"those are not stored, the other {len(kept)} messages are",
            },
            status=400,
        )
    return JsonResponse({"success": True})


def _segment(view: Callable[[HttpRequest], JsonResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """A Segment endpoint: CORS (preflight, and the allowed origin named on answers), then the ingest API's
    POST-only JSON handling (tracking/api.py _json_post)."""
    posted = _json_post(view)

    @csrf_exempt
    def endpoint(request: HttpRequest) -> HttpResponse:
        origin = request.headers.get("Origin", "")
        if request.method == "OPTIONS":
            return _preflight(origin)
        response = posted(request)
        if response.status_code == 401:
            response["WWW-Authenticate"] = 'Basic realm="event-hub"'
        source = getattr(request, "segment_source", None)
        if origin and source is not None and segment_cors_allowed(origin=origin, source=source):
            _allow(response, origin)
        return response

    endpoint.__name__ = view.__name__
    return endpoint


def _preflight(origin: str) -> HttpResponse:
    # A preflight carries no write key: the origin must be one some source allows (the POST checks it is its own).
    if not origin or not segment_cors_allowed(origin=origin):
        return JsonResponse({"error": f"origin {origin[:100] or '(none)'} is not allowed (CORS is off)"}, status=403)
    response = HttpResponse(status=204)
    _allow(response, origin)
    response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Content-Encoding"
    response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return response


def _allow(response: HttpResponse, origin: str) -> None:
    response["Access-Control-Allow-Origin"] = origin
    response["Vary"] = "Origin"


track = _segment(_call("track"))
identify = _segment(_call("identify"))
page = _segment(_call("page"))
screen = _segment(_call("screen"))
group = _segment(_call("group"))
alias = _segment(_call("alias"))
batch = _segment(_batch)
batch.__name__ = "segment_batch"

# Path → view: the HTTP API's names, and analytics.js's one-letter ones (its apiHost + "/t", "/p" …).
ENDPOINTS = {
    "track": track,
    "identify": identify,
    "page": page,
    "screen": screen,
    "group": group,
    "alias": alias,
    "batch": batch,
    "t": track,
    "i": identify,
    "p": page,
    "s": screen,
    "g": group,
    "a": alias,
    "b": batch,
    "import": batch,
}
