"""The ingest API: company systems post events with a source token (Authorization: Bearer …)."""

from __future__ import annotations

import json
import logging
import re
import zlib
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .consent import ConsentError, consent_parse
from .errors import where
from .models import EventType
from .openapi import openapi_document as build_openapi
from .schema import MAX_DEPTH, TOO_DEEP, json_float, json_int
from .services.ingest import events_ingest, source_authenticate
from .services.ingest_group import event_ingest
from .services.privacy import Person, PersonError, consent_update

logger = logging.getLogger(__name__)

# Content-Encoding values read; anything else is a 415.
ENCODINGS = ("", "identity", "gzip", "x-gzip")
_READ_CHUNK = 64 * 1024


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="event-hub"'
    return response


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json_post(view: Callable[[HttpRequest], JsonResponse]) -> Callable[[HttpRequest], JsonResponse]:
    """POST only, and every answer JSON: 405 names the method, a BadRequest becomes its 4xx, and anything
    unforeseen a logged JSON 500 (never Django's HTML page: callers are programs)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest) -> JsonResponse:
        if request.method != "POST":
            response = _error(405, f"method {request.method} is not allowed here; use POST")
            response["Allow"] = "POST"
            return response
        try:
            return view(request)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        except Exception as exc:
            # By type and place only: an exception's message may quote the posted data (personal data).
            logger.error("ingest failed on %s: %s at %s", request.path, type(exc).__name__, where(exc))
            return _error(
                500, "internal error: the request may not be stored; send it again (a nonce keeps it one event)"
            )

    return wrapper


def _body(request: HttpRequest) -> bytes:
    """The body's bytes as sent (before any Content-Encoding is undone), within INGEST_MAX_BODY_BYTES."""
    limit = settings.INGEST_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise BadRequest(400, "invalid Content-Length")
        if length > limit:
            raise BadRequest(413, f"body is {length} bytes; the limit is {limit} bytes")
        stream: Any = request  # Django's stream stops at Content-Length
    elif request.META.get("wsgi.input_terminated"):
        # No Content-Length (a chunked body): the server decoded the chunks and ends the stream at the body's
        # end (gunicorn and uWSGI say so with wsgi.input_terminated), so read it to that end, within the limit.
        stream = request.META["wsgi.input"]
    else:
        # Django reads a body without Content-Length as empty: answering on it would store nothing silently.
        raise BadRequest(411, "send a Content-Length (this server cannot read a body of unknown length)")
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise BadRequest(413, f"body exceeds the limit of {limit} bytes")
    return b"".join(chunks)


def _gunzip(data: bytes, limit: int) -> bytes:
    """The gzip body decompressed, stopping past `limit` bytes of output (a small bomb never grows large)."""
    out, size = [], 0
    while True:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = decompressor.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise BadRequest(400, f"body is not valid gzip ({exc})") from None
        out.append(part)
        size += len(part)
        if size > limit or decompressor.unconsumed_tail:
            raise BadRequest(413, f"body decompressed exceeds the limit of {limit} bytes")
        if not decompressor.eof:
            raise BadRequest(400, "body is not valid gzip (truncated)")
        data = decompressor.unused_data
        if not data:  # a gzip body may hold several members, read one after the other (RFC 1952)
            return b"".join(out)


def _read_json(request: HttpRequest) -> Any:
    """The body as JSON: application/json in UTF-8, identity or gzip, within the size and depth limits."""
    return _parse_json(_read_text(request))


def _read_text(request: HttpRequest, content_types: tuple[str, ...] = ("application/json",)) -> str:
    """The body as text: one of `content_types` in UTF-8, identity or gzip, within the size limit."""
    if request.content_type.lower() not in content_types:
        raise BadRequest(415, f"send Content-Type: {content_types[0]}")
    charset = request.content_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise BadRequest(415, f"charset {charset} is not read; send application/json in UTF-8")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise BadRequest(415, f"Content-Encoding {encoding} is not read; send the body as is or gzip")
    body = _body(request)
    if encoding.endswith("gzip"):
        body = _gunzip(body, settings.INGEST_MAX_BODY_BYTES)
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise BadRequest(400, "body is not UTF-8 text") from None


def _parse_json(text: str) -> Any:
    """JSON text parsed within the depth limit (what is nested deeper is cut and marked)."""
    try:
        return _json_loads(text)
    except RecursionError:
        pass
    # Nested deeper than the parser can go: cut what is past the limit (each item then says so), once more.
    try:
        return _json_loads(_nesting_cut(text, MAX_DEPTH + 2))
    except RecursionError:  # unbalanced brackets: nothing to cut
        raise BadRequest(400, f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None


def _json_loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=json_float, parse_int=json_int)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise BadRequest(400, f"malformed JSON: {exc}") from None


def _no_constant(name: str) -> None:
    # Python's json reads NaN and Infinity; JSON (RFC 8259) has no such numbers and no vendor accepts them.
    raise ValueError(f"{name} is not a JSON number")


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _nesting_cut(text: str, limit: int) -> str:
    """The JSON text with each array or object opened past `limit` levels replaced by the TOO_DEEP string.

    Containers are only ever values, so the text stays JSON; strings are skipped whole (brackets in them
    do not count). Only called when the parser gave up, so the common path pays nothing."""
    out, depth, last, cut_at = [], 0, 0, -1
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char[0] == '"':
            continue
        if char in "[{":
            depth += 1
            if depth == limit + 1:
                cut_at = token.start()
        else:
            if depth == limit + 1 and cut_at >= 0:
                out += [text[last:cut_at], json.dumps(TOO_DEEP)]
                last, cut_at = token.end(), -1
            depth -= 1
    out.append(text[last:])
    return "".join(out)


def _authenticate(request: HttpRequest):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise BadRequest(401, "missing source token: send Authorization: Bearer <token>")
    # Tokens are short ASCII: anything else cannot be one (and a lone surrogate could not even be hashed).
    source = source_authenticate(token) if token.isascii() and len(token) <= 200 else None
    if source is None:
        raise BadRequest(401, "invalid or disabled source token")
    return source


def _invalid_summary(errors: list[dict[str, Any]]) -> str:
    named = "; ".join(f"{e['field']} {e['message']}".strip() for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"the event is kept as invalid and never sent: {named}{more}"


@_json_post
def event_create(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/events: one event."""
    source = _authenticate(request)
    item = _read_json(request)
    if not isinstance(item, dict):
        raise BadRequest(400, "body must be a JSON object (one event)")
    # Committed with the process's concurrent one-event requests, and answered after that commit.
    result = event_ingest(source=source, item=item)
    if not result.accepted and not result.duplicate:
        return JsonResponse({"error": _invalid_summary(result.event.errors), **result.as_dict()}, status=422)
    if not result.accepted:
        return JsonResponse({"error": "this nonce names an event kept as invalid", **result.as_dict()}, status=422)
    return JsonResponse(result.as_dict(), status=202)


@_json_post
def event_batch_create(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/events/batch: {"events": [...]}; each item is stored, valid or not."""
    source = _authenticate(request)
    body = _read_json(request)
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise BadRequest(400, 'body must be {"events": [...]} with at least one event')
    if len(items) > settings.INGEST_MAX_BATCH:
        raise BadRequest(413, f"{len(items)} events; a batch holds at most {settings.INGEST_MAX_BATCH}")
    results = events_ingest(source=source, items=items)
    # accepted and invalid count new events only; a nonce seen before (or twice in the batch) is a duplicate.
    duplicate = sum(1 for r in results if r.duplicate)
    accepted = sum(1 for r in results if r.accepted and not r.duplicate)
    answer = {
        "accepted": accepted,
        "duplicate": duplicate,
        "invalid": len(results) - accepted - duplicate,
        "events": [r.as_dict() for r in results],
    }
    if not any(r.accepted for r in results):
        # None accepted: 422 (all kept as invalid), with an error like every other refusal.
        return JsonResponse({"error": "no event of the batch was accepted; each says why", **answer}, status=422)
    # Some accepted: 202 with per-event statuses.
    return JsonResponse(answer, status=202)


@_json_post
def consent_update_view(request: HttpRequest) -> JsonResponse:
    """POST /api/v1/consent: {"email" | "trackerId": …, "consent": [...] | {purpose: bool}}: the person's consent as
    it stands now. Their pending and retrying deliveries it no longer allows are suppressed (never sent); audited."""
    source = _authenticate(request)
    body = _read_json(request)
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    unknown = sorted(set(body) - {"email", "trackerId", "consent"})
    if unknown:
        raise BadRequest(400, f"unknown keys: {', '.join(unknown)}")
    if "consent" not in body:
        raise BadRequest(400, 'consent is required: the purposes granted now, e.g. ["analytics"] ([] withdraws all)')
    try:
        person = Person.of(email=body.get("email"), tracker_id=body.get("trackerId"))
        purposes = consent_parse(body["consent"])
    except (PersonError, ConsentError) as exc:
        raise BadRequest(400, str(exc)) from None
    result = consent_update(person=person, purposes=purposes, via=f"api (source {source.name})")
    return JsonResponse({"consent": result.purposes, "events": result.events, "suppressed": result.suppressed})


def openapi(request: HttpRequest) -> JsonResponse:
    """GET /api/v1/openapi.json."""
    if request.method not in ("GET", "HEAD"):
        response = _error(405, f"method {request.method} is not allowed here; use GET")
        response["Allow"] = "GET, HEAD"
        return response
    return JsonResponse(openapi_document(server_url=request.build_absolute_uri("/").rstrip("/") or None))


def openapi_document(*, server_url: str | None = None) -> dict:
    """The OpenAPI 3 document of the ingest API: the limits in force, a schema per (unarchived) event type."""
    return build_openapi(
        event_types=list(EventType.objects.filter(archived_at__isnull=True).order_by("reference")),
        limit=settings.INGEST_MAX_BODY_BYTES,
        batch=settings.INGEST_MAX_BATCH,
        server_url=server_url,
    )
