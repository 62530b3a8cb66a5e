"""The small base every vendor module builds on: plain data in, requests out, answers classified.

Vendor modules never touch the ORM or the network: they turn an event (plain data) and the connection's
settings and secrets into `VendorRequest`s, and an `httpx.Response` into a `Result`. Sending lives in
`vendors/http.py`; what happens to a delivery lives in `services/delivery.py`.
"""

from __future__ import annotations

import email.utils
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, quote_plus

import httpx

REDACTED = "[redacted]"
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class ConfigurationError(ValueError):
    """The connection's settings or secrets cannot work; the message says which and why."""


@dataclass(frozen=True)
class OutgoingEvent:
    """What a vendor needs to know of one delivery."""

    key: int
    nonce: str
    event_type: str
    event_date: datetime
    data: dict[str, Any]
    tracker_id: str = ""
    vendor_event_name: str = ""
    mapping: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # What came with the event beside its data (Segment: context, traits, userId, anonymousId).
    context: dict[str, Any] = field(default_factory=dict)


# Paths a mapping reads from the event's context: context.<path>, traits.<path>, userId, anonymousId.
CONTEXT_HEADS = ("context", "traits")
CONTEXT_PATHS = ("userId", "anonymousId")


@dataclass
class VendorRequest:
    """One HTTP request to a vendor, covering the deliveries named in `keys`."""

    method: str
    url: str
    json: Any = None
    params: dict[str, str] | None = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    keys: tuple[int, ...] = ()
    # Strings that must never be recorded (keys, tokens, assertions); headers are never recorded.
    sensitive: tuple[str, ...] = ()
    # A request of several events: each key's own part of the body, in the body's shape (e.g. {"events": [its
    # element]}), recorded in that delivery's attempt instead of the whole body (which would be stored once per
    # event it carries).
    parts: dict[int, Any] | None = None

    def recorded_url(self) -> str:
        try:
            url = str(httpx.URL(self.url, params=self.params)) if self.params else self.url
        except Exception:  # noqa: BLE001 (params that cannot be encoded: the URL without them)
            url = self.url
        return storable(redact(url, self.sensitive))

    def recorded_body(self, key: int | None = None) -> str:
        """The body as recorded: secrets redacted, storable in any database (even when it could not be sent);
        with `key`, that delivery's part of it where the request has parts."""
        try:
            if key is not None and self.parts and key in self.parts:
                body = json.dumps(self.parts[key], ensure_ascii=False, sort_keys=False)
            elif self.json is not None:
                body = json.dumps(self.json, ensure_ascii=False, sort_keys=False)
            elif self.form is not None:
                body = str(httpx.QueryParams(self.form))
            else:
                body = ""
        except Exception as exc:  # noqa: BLE001 (e.g. RecursionError: record why instead of failing the run)
            return f"[body not recordable: {type(exc).__name__}]"
        return storable(redact(body, self.sensitive))


@dataclass(frozen=True)
class Result:
    """What an answer means for the deliveries it covers."""

    outcome: Literal["delivered", "retry", "failed"]
    error: str = ""
    retry_after: float | None = None
    vendor_ref: str = ""
    # 401: the service refreshes the token once and sends again before accepting this result.
    auth_expired: bool = False


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime


def redact(text: str, sensitive: tuple[str, ...] | list[str]) -> str:
    """Replace every secret, raw or URL-encoded (query strings, form bodies), by a marker."""
    for secret in sorted((s for s in sensitive if s and len(s) >= 4), key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, REDACTED)
    return text


# At most this long a Retry-After is taken literally (a day); the delivery service clamps it further to
# the connection's give-up window.
RETRY_AFTER_MAX = 86_400.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (ASCII digits only) or an HTTP date; None if
    absent or anything else ("²", "-5", "1e9", "inf" are not delta-seconds). Capped at RETRY_AFTER_MAX."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value[:12]) if len(value) > 12 else float(value), RETRY_AFTER_MAX)
    if not value.isascii():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    except OverflowError:
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX)


# A NUL or a lone UTF-16 surrogate: no UTF-8 text, no PostgreSQL text or jsonb, no vendor takes them.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """Text any database column and page takes: each NUL (PostgreSQL text refuses it) and lone surrogate
    (UTF-8 cannot hold it) replaced by its visible JSON escape (\\u0000, \\ud800), so it still shows what was there."""
    if text.isascii() and "\x00" not in text:
        return text
    return UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def excerpt_text(text: str, limit: int = 500, sensitive: tuple[str, ...] | list[str] = ()) -> str:
    """The first `limit` characters of `text`, secrets redacted first: a secret the cut would halve is
    replaced whole before the cut, so no part of it shows."""
    text = redact(text, sensitive) if sensitive else text
    return text if len(text) <= limit else text[:limit] + "…"


def excerpt(response: httpx.Response, limit: int = 500, sensitive: tuple[str, ...] | list[str] = ()) -> str:
    """An excerpt of the answer's text, redacted before it is cut (see excerpt_text)."""
    try:
        text = response.text
    except Exception as exc:  # noqa: BLE001 (an undecodable body: say so rather than fail the caller)
        return f"[body not readable: {type(exc).__name__}]"
    return excerpt_text(text, limit, sensitive)


def vendor_message(response: httpx.Response) -> str:
    """The vendor's own error message where the body has one, else a body excerpt."""
    try:
        body = response.json()
    except ValueError:
        return excerpt(response, 300)
    if isinstance(body, dict):
        for key in ("message", "detail", "error_description", "error"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)
    return excerpt(response, 300)


def utc_now() -> datetime:
    """The clock of the vendor modules (one name, so tests can set it)."""
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    """UTC with a Z suffix; milliseconds only when the date has them."""
    value = value.astimezone(UTC)
    timespec = "milliseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")


def resolve_path(event: OutgoingEvent, path: Any, item: Any = None) -> Any:
    """The value a route mapping names; None when absent.

    "data.a.b" (list indexes allowed: "data.items.0.sku"), "eventDate" (RFC 3339), "eventType", "trackerId",
    "nonce", "vendorEventName", "item.x" (inside the list item being mapped), "=text" (that text),
    "context.ip", "traits.email", "userId", "anonymousId" (what a Segment call brought with the event);
    a value that is not a string (number, boolean, object) is a constant."""
    if not isinstance(path, str):
        return path
    if path.startswith("="):
        return path[1:]
    head, _, rest = path.partition(".")
    if head == "data":
        value: Any = event.data
    elif head == "item":
        value = item
    elif head in CONTEXT_HEADS:
        value = event.context.get(head)
    elif path in CONTEXT_PATHS:
        return event.context.get(path)
    else:
        root = {
            "eventDate": rfc3339(event.event_date),
            "eventType": event.event_type,
            "trackerId": event.tracker_id,
            "nonce": event.nonce,
            "vendorEventName": event.vendor_event_name or event.event_type,
        }
        return root.get(path) if not rest else None
    for part in rest.split(".") if rest else ():
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def map_fields(event: OutgoingEvent, mapping: dict[str, Any], item: Any = None) -> dict[str, Any]:
    """An object built from a mapping of vendor attribute → source path; dotted attributes nest
    ("customer.email"); absent values and empty strings are left out (vendors want them omitted)."""
    out: dict[str, Any] = {}
    for attribute, path in mapping.items():
        value = resolve_path(event, path, item)
        if value is None or value == "":
            continue
        *parents, leaf = attribute.split(".")
        target = out
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return out


def is_blank(value: Any) -> bool:
    """Missing for a required field: absent, empty text, empty list or object."""
    return value is None or (isinstance(value, str | list | dict) and not value)


def oauth_token(response: httpx.Response, now: datetime, margin: timedelta = timedelta(seconds=60)) -> Token:
    """An OAuth 2.0 token answer ({access_token, expires_in}), kept until shortly before it expires."""
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise ValueError("the token endpoint answered without an access_token")
    lifetime = timedelta(seconds=float(body.get("expires_in") or 300))
    return Token(body["access_token"], now + max(lifetime - margin, lifetime / 2))


def classify_status(response: httpx.Response) -> Result:
    """The default rules: 2xx delivered; 408/425/429/5xx retry (Retry-After honoured); 401 refresh once;
    any other 4xx failed."""
    status = response.status_code
    if 200 <= status < 300:
        return Result("delivered")
    message = f"HTTP {status}: {vendor_message(response)}"
    if status in RETRYABLE_STATUSES or status >= 500:
        return Result("retry", message, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status == 401:
        return Result("failed", message, auth_expired=True)
    return Result("failed", message)


class Vendor:
    """Base of the vendor modules; one subclass per vendor, registered by `kind`."""

    kind: ClassVar[str] = ""
    label: ClassVar[str] = ""
    # Events one request may carry (Tracify lists, Acquia up to 10 per entity); 1 = one request each.
    max_events_per_request: ClassVar[int] = 1
    # Whether the vendor drops an event whose nonce it already holds: re-sending a delivered event to a
    # vendor that does not would store it twice, so the console asks before doing it.
    dedups_by_nonce: ClassVar[bool] = False
    required_settings: ClassVar[tuple[str, ...]] = ()
    required_secrets: ClassVar[tuple[str, ...]] = ()
    # The vendor's API for erasing a person, as its document names it; "" when the document has none (none of the
    # five seeds has one): an erasure then lists the vendor so that staff ask it.
    deletion_api: ClassVar[str] = ""

    def __init__(
        self, *, base_url: str, auth_url: str = "", settings: dict | None = None, secrets: dict | None = None
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.auth_url = auth_url
        self.settings = settings or {}
        self.secrets = secrets or {}

    def events_per_request(self) -> int:
        """Events one request carries at most for this connection (max_events_per_request unless it says less)."""
        return self.max_events_per_request

    def check(self) -> None:
        """Raise ConfigurationError if the settings or secrets cannot work."""
        missing = [k for k in self.required_settings if not self.settings.get(k)]
        missing += [k for k in self.required_secrets if not self.secrets.get(k)]
        if missing:
            raise ConfigurationError(f"{self.label}: missing {', '.join(missing)}")

    def sensitive(self) -> tuple[str, ...]:
        """Every secret string, so that recorded requests can be redacted."""
        values: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, str):
                values.append(value)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self.secrets)
        return tuple(values)

    # -- auth (optional) ---------------------------------------------------------------------------
    def token_request(self, now: datetime) -> VendorRequest | None:
        """The request that obtains an access token, or None when the vendor has no token flow."""
        return None

    def parse_token(self, response: httpx.Response, now: datetime) -> Token:
        raise NotImplementedError

    # -- events --------------------------------------------------------------------------------------
    def build(self, events: list[OutgoingEvent], token: str | None) -> list[VendorRequest]:
        """Requests that carry these events (pure); refused events are left out of every request."""
        raise NotImplementedError

    def refusal(self, event: OutgoingEvent) -> str:
        """Why this event must not be sent (our error, e.g. a required field missing); "" to send it."""
        return ""

    def refusals(self, events: list[OutgoingEvent]) -> dict[int, str]:
        """The reasons of the events build() leaves out, by key: the delivery service fails them with it."""
        return {e.key: reason for e in events if (reason := self.refusal(e))}

    def sendable(self, events: list[OutgoingEvent]) -> list[OutgoingEvent]:
        return [e for e in events if not self.refusal(e)]

    @classmethod
    def validate_mapping(
        cls, event_name: str, mapping: dict[str, Any], options: dict[str, Any] | None = None
    ) -> list[str]:
        """Problems of a route for this vendor (event_name: its vendor name, else the event type); [] if fine."""
        return []

    @classmethod
    def received_sources(cls, mapping: dict[str, Any]) -> list[str]:
        """The event's paths a route with this mapping sends (data minimisation: what the route editor shows),
        sorted; "data" alone means all of the event's data. Constants and item.<field> paths are left out."""
        found: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for inner in value.values():
                    walk(inner)
            elif isinstance(value, str) and value and not value.startswith("=") and not value.startswith("item"):
                found.add(value)

        walk(mapping)
        return sorted(found)

    def classify(self, request: VendorRequest, response: httpx.Response) -> Result:
        return classify_status(response)
