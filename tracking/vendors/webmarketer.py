"""Webmarketer: service-account JWT → bearer token, then the events API.

Reference: seeds/webmarketer-api-1.0.0.txt and VENDORS.md (auth flow from the official PHP SDK).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .base import (
    ConfigurationError,
    OutgoingEvent,
    Result,
    Token,
    Vendor,
    VendorRequest,
    classify_status,
    excerpt,
    rfc3339,
    vendor_message,
)

PROJECT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DEFAULT_AUDIENCE = "https://oauth.webmarketer.io/oidc/token"
SERVICE_ACCOUNT_KEYS = ("privateKey", "privateKeyId", "clientId", "serviceAccountEmail")
# Refresh a token this long before the vendor says it expires.
TOKEN_MARGIN = timedelta(seconds=60)


def service_account(secrets: dict[str, Any]) -> dict[str, str]:
    """The service-account JSON, given as an object or as the downloaded file's text."""
    account = secrets.get("service_account")
    if isinstance(account, str):
        try:
            account = json.loads(account)
        except ValueError:
            raise ConfigurationError("Webmarketer: service_account is not valid JSON") from None
    if not isinstance(account, dict):
        raise ConfigurationError("Webmarketer: the service_account secret (service-account JSON) is missing")
    missing = [k for k in SERVICE_ACCOUNT_KEYS if not account.get(k)]
    if missing:
        raise ConfigurationError(f"Webmarketer: the service account lacks {', '.join(missing)}")
    return account


def event_body(project_id: str, event: OutgoingEvent) -> dict[str, Any]:
    """The body of "Create an event" (pure)."""
    body: dict[str, Any] = {
        "projectId": project_id,
        "eventType": event.vendor_event_name or event.event_type,
        "eventDate": rfc3339(event.event_date),
    }
    if event.tracker_id:
        body["trackerId"] = event.tracker_id
    body["nonce"] = event.nonce
    body["data"] = event.data
    return body


class Webmarketer(Vendor):
    kind = "webmarketer"
    label = "Webmarketer"
    dedups_by_nonce = True  # Reference: an event whose nonce the project already holds is not stored again
    required_settings = ("project_id",)
    required_secrets = ("service_account",)

    @classmethod
    def received_sources(cls, mapping: dict[str, Any]) -> list[str]:
        # Reference: "Create an event": the event's data as its event type (mirrored from Webmarketer) defines it.
        return ["data"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (PEM text, parsed key): the text is compared so a changed secret is never signed with the old key.
        self._parsed_key: tuple[str, rsa.RSAPrivateKey] | None = None

    @property
    def project_id(self) -> str:
        return self.settings.get("project_id", "")

    def check(self) -> None:
        super().check()
        if not (3 <= len(self.project_id) <= 64 and PROJECT_ID.match(self.project_id)):
            raise ConfigurationError("Webmarketer: project_id must be 3–64 lowercase letters, digits and single dashes")
        self.private_key()

    def private_key(self) -> rsa.RSAPrivateKey:
        """The service account's key, parsed once per instance (the delivery service keeps one instance per
        connection version): parsing a PEM key costs milliseconds, and check() and every token need it."""
        pem = service_account(self.secrets)["privateKey"]
        cached = self._parsed_key
        if cached is not None and cached[0] == pem:
            return cached[1]
        try:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError, AttributeError):
            key = None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(
                "Webmarketer: the service account's privateKey is not an RSA private key"
            ) from None
        self._parsed_key = (pem, key)
        return key

    def sensitive(self) -> tuple[str, ...]:
        try:
            extra: tuple[str, ...] = (service_account(self.secrets)["privateKey"],)
        except ConfigurationError:
            extra = ()
        return super().sensitive() + extra

    @property
    def token_url(self) -> str:
        return self.auth_url or DEFAULT_AUDIENCE

    # Reference: VENDORS.md "Auth (same SDK)": RS256 JWT bearer grant.
    def token_request(self, now: datetime) -> VendorRequest:
        account = service_account(self.secrets)
        assertion = jwt.encode(
            {
                "iss": account["clientId"],
                "sub": account["serviceAccountEmail"],
                # The endpoint it is sent to, never a fixed host: an assertion sent to another token endpoint
                # names that endpoint, so it cannot be replayed at Webmarketer's.
                "aud": self.token_url,
                "scope": "full_access",
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 300,
            },
            self.private_key(),
            algorithm="RS256",
            headers={"kid": account["privateKeyId"], "typ": "JWT"},
        )
        return VendorRequest(
            "POST",
            self.token_url,
            form={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "client_id": account["clientId"],
                "assertion": assertion,
            },
            sensitive=(assertion,),
        )

    def parse_token(self, response: httpx.Response, now: datetime) -> Token:
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ValueError("the token endpoint answered without an access_token")
        lifetime = timedelta(seconds=float(body.get("expires_in") or 300))
        return Token(body["access_token"], now + max(lifetime - TOKEN_MARGIN, lifetime / 2))

    # Reference: webmarketer-api-1.0.0.txt "Create an event".
    def build(self, events: list[OutgoingEvent], token: str | None) -> list[VendorRequest]:
        headers = {"Authorization": f"Bearer {token}"}
        return [
            VendorRequest(
                "POST",
                self.base_url + "events",
                json=event_body(self.project_id, event),
                headers=headers,
                keys=(event.key,),
                sensitive=(token or "",),
            )
            for event in events
        ]

    def classify(self, request: VendorRequest, response: httpx.Response) -> Result:
        result = classify_status(response)
        if result.outcome != "delivered":
            return result
        # Ingestion is asynchronous: 200 and the event id as a JSON string, even for an invalid event.
        try:
            event_id = response.json()
        except ValueError:
            event_id = None
        if not isinstance(event_id, str) or not event_id:
            # Not what the docs promise (a proxy page?): send again; the nonce keeps it one event.
            return Result("retry", f"HTTP {response.status_code} without the event id: {response.text[:200]}")
        return Result("delivered", vendor_ref=event_id)

    # -- operations beyond events: event types, trash, raw events, offline interactions, insights ----------
    # Pure request builders; the services send them (with a token) and read the answers with the parsers
    # below. Paths are relative to the API base, like "events".
    def _request(
        self, method: str, path: str, token: str | None, *, params: dict | None = None, json: Any = None
    ) -> VendorRequest:
        return VendorRequest(
            method,
            self.base_url + path.lstrip("/"),
            json=json,
            params={k: v for k, v in (params or {}).items() if v is not None} or None,
            headers={"Authorization": f"Bearer {token}"},
            sensitive=(token or "",),
        )

    def _path(self, template: str, *parts: str) -> str:
        path = template.replace("{projectId}", quote(self.project_id, safe=""))
        return "/".join([path.strip("/"), *(quote(p, safe="") for p in parts)])

    # Reference: webmarketer-api-1.0.0.txt "Get event types".
    def event_types_request(
        self,
        token: str | None,
        *,
        offset: int = 0,
        limit: int = 100,
        search: str | None = None,
        archived: bool | None = None,
        storage_key: str | None = None,
        reference: str | None = None,
        sort: str | None = None,
    ) -> VendorRequest:
        params = {
            "offset": str(offset),
            "limit": str(limit),
            "search": search,
            "archived": None if archived is None else str(archived).lower(),
            "storageKey": storage_key,
            "reference": reference,
            "sort": sort,
        }
        return self._request("GET", self._path(EVENT_TYPES_PATH), token, params=params)

    # Reference: webmarketer-api-1.0.0.txt "Get an event type".
    def event_type_request(self, token: str | None, reference: str) -> VendorRequest:
        return self._request("GET", self._path(EVENT_TYPES_PATH, reference), token)

    # Reference: webmarketer-api-1.0.0.txt "Create an event-type".
    def event_type_create_request(self, token: str | None, event_type: dict[str, Any]) -> VendorRequest:
        return self._request("POST", self._path(EVENT_TYPES_PATH), token, json=event_type_body(event_type))

    # Reference: webmarketer-api-1.0.0.txt "Get Trashed events" (no public path: setting `trash_path`).
    def trashed_request(
        self,
        token: str | None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> VendorRequest:
        params = {
            "since": rfc3339(since) if since else None,
            "until": rfc3339(until) if until else None,
            "offset": str(offset),
            "limit": str(limit),
        }
        path = self._path(self.settings.get("trash_path") or DEFAULT_TRASH_PATH)
        return self._request("GET", path, token, params=params)

    # Reference: webmarketer-api-1.0.0.txt "Gets a Raw Event by ID".
    def raw_event_request(self, token: str | None, event_id: str) -> VendorRequest:
        return self._request("GET", self._path("projects/{projectId}/events", event_id), token)

    # Reference: webmarketer-api-1.0.0.txt "Create offline interaction".
    def offline_interaction_request(
        self, token: str | None, *, date: datetime | str, user_data: dict[str, Any], node_data: dict[str, Any]
    ) -> VendorRequest:
        body = {
            "date": rfc3339(date) if isinstance(date, datetime) else date,
            "userData": user_data,
            "nodeData": node_data,
        }
        return self._request("POST", self._path("projects/{projectId}/interactions/offline"), token, json=body)

    # Reference: webmarketer-api-1.0.0.txt "Event insights (without attribution)" (setting `insights_path`).
    def insights_request(
        self,
        token: str | None,
        *,
        since: datetime,
        until: datetime,
        metrics: list[str],
        group_by: str = "project",
        interval: str = "day",
        filter: Any = None,  # the API's name
    ) -> VendorRequest:
        if interval not in INSIGHT_INTERVALS:
            raise ValueError(f"unknown insights interval {interval!r}; use one of {', '.join(INSIGHT_INTERVALS)}")
        if group_by not in INSIGHT_GROUPS:
            raise ValueError(f"unknown insights groupBy {group_by!r}; use project or event-type")
        if not metrics or not all(isinstance(m, str) and m for m in metrics):
            raise ValueError("insights need at least one metric (event-count, a state or a statistic key)")
        body = {
            "since": rfc3339(since),
            "until": rfc3339(until),
            "metrics": list(metrics),
            "groupBy": group_by,
            "interval": interval,
            "filter": filter,
        }
        path = self._path(self.settings.get("insights_path") or DEFAULT_INSIGHTS_PATH)
        return self._request("POST", path, token, json=body)

    # Reference: webmarketer-api-1.0.0.txt "Update an event state".
    def state_update_request(
        self, token: str | None, *, event_id: str, storage_key: str, value: Any, date: datetime | None = None
    ) -> VendorRequest:
        """PATCH projects/{projectId}/events/{id}/states/{storageKey} with {value: 0|1, date?}."""
        path = self._path(EVENTS_PATH, event_id, "states", storage_key)
        return self._request("PATCH", path, token, json=update_body(value, date, state=True))

    # Reference: webmarketer-api-1.0.0.txt "Update an event statistic".
    def statistic_update_request(
        self, token: str | None, *, event_id: str, storage_key: str, value: Any, date: datetime | None = None
    ) -> VendorRequest:
        """PATCH projects/{projectId}/events/{id}/statistics/{storageKey} with {value, date?}.

        The docs name the field `value`; the PHP SDK sends `rawValue`: the document wins (VENDORS.md)."""
        path = self._path(EVENTS_PATH, event_id, "statistics", storage_key)
        return self._request("PATCH", path, token, json=update_body(value, date, state=False))


EVENT_TYPES_PATH = "projects/{projectId}/event-types"
EVENTS_PATH = "projects/{projectId}/events"
# VENDORS.md: no public path found for these two; a connection setting overrides each.
DEFAULT_TRASH_PATH = "projects/{projectId}/events/trashed"
DEFAULT_INSIGHTS_PATH = "projects/{projectId}/events/insights"
INSIGHT_INTERVALS = (
    "day",
    "week",
    "month",
    "quarter",
    "semester",
    "year",
    "dayOfWeek",
    "dayOfMonth",
    "dayOfYear",
    "weekOfYear",
    "monthOfYear",
    "quarterOfYear",
    "semesterOfYear",
)
INSIGHT_GROUPS = ("project", "event-type")
# What makes two versions of an event type different. Not expirationPolicy: the API takes it on create but
# never shows it back (get/list samples), so comparing it would report changes nobody made.
DIGEST_KEYS = ("name", "fields", "metadata", "phoneParsingConfig", "archivedAt")


class AnswerError(Exception):
    """Webmarketer answered with an error (`message` is its own words, verbatim), or not at all."""

    def __init__(self, text: str, *, status: int | None = None, message: str = "") -> None:
        super().__init__(text)
        self.status = status
        self.message = message or text

    @property
    def auth_expired(self) -> bool:
        return self.status == 401


class UnexpectedAnswer(AnswerError):
    """A success answer that is not shaped as the docs promise."""


@dataclass(frozen=True)
class Page:
    """One page of a paginated listing: {count, total, data}."""

    count: int
    total: int
    data: list[Any]


@dataclass(frozen=True)
class TrashedItem:
    """One trashed event, as the trash listing gives it."""

    id: str
    event_type_ref: str
    event_type_id: str
    errors: list[dict[str, Any]]
    processing_date: datetime | None
    raw_event_date: datetime | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class OfflineAnswer:
    """What Webmarketer said to an offline interaction: accepted, or rejected with its message verbatim."""

    accepted: bool
    status: int
    message: str
    body: Any = None


def parse_date(value: Any, what: str) -> datetime | None:
    """A date of an answer (RFC3339; a space for the T is tolerated; UTC when no offset); None stays None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise UnexpectedAnswer(f"{what} should be an RFC3339 date, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _expect(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise UnexpectedAnswer(f"{what} should be {names}, got {type(value).__name__}: {str(value)[:100]}")
    return value


def answer_body(response: httpx.Response, what: str) -> Any:
    """The JSON of a success answer; an error answer raises AnswerError with Webmarketer's message."""
    status = response.status_code
    if not response.is_success:
        message = vendor_message(response)
        raise AnswerError(f"{what}: Webmarketer answered HTTP {status}: {message}", status=status, message=message)
    try:
        return response.json()
    except ValueError:
        raise UnexpectedAnswer(
            f"{what}: HTTP {status} with a body that is not JSON: {excerpt(response, 200)}", status=status
        ) from None


def _page(response: httpx.Response, what: str) -> tuple[Page, list[Any]]:
    body = _expect(answer_body(response, what), dict, f"{what}: the answer")
    for key in ("count", "total", "data"):
        if key not in body:
            raise UnexpectedAnswer(f"{what}: the answer has no {key!r} (expected {{count, total, data}})")
    data = _expect(body["data"], list, f"{what}: data")
    page = Page(_expect(body["count"], int, f"{what}: count"), _expect(body["total"], int, f"{what}: total"), data)
    return page, data


def event_type_from_answer(doc: Any, what: str = "event type") -> dict[str, Any]:
    """An event type of an answer, checked and with empty values normalised (metadata {}, config [])."""
    doc = _expect(doc, dict, what)
    for key in ("_id", "reference", "name"):
        _expect(doc.get(key), str, f"{what}: {key}")
    fields = _expect(doc.get("fields", []), list, f"{what} {doc['reference']}: fields")
    for i, item in enumerate(fields):
        _expect(item, dict, f"{what} {doc['reference']}: fields[{i}]")
        _expect(item.get("storageKey"), str, f"{what} {doc['reference']}: fields[{i}].storageKey")
    archived_at = parse_date(doc.get("archivedAt"), f"{what} {doc['reference']}: archivedAt")
    result = {
        "_id": doc["_id"],
        "reference": doc["reference"],
        "name": doc["name"],
        "fields": fields,
        "metadata": _expect(doc.get("metadata") or {}, dict, f"{what} {doc['reference']}: metadata"),
        "phoneParsingConfig": _expect(
            doc.get("phoneParsingConfig") or [], list, f"{what} {doc['reference']}: phoneParsingConfig"
        ),
        "archivedAt": rfc3339(archived_at) if archived_at else None,
        "createdAt": doc.get("createdAt"),
        "updatedAt": doc.get("updatedAt"),
    }
    if "expirationPolicy" in doc:
        result["expirationPolicy"] = doc["expirationPolicy"]
    return result


def parse_event_types(response: httpx.Response) -> Page:
    """A page of "Get event types": data holds checked event types."""
    page, data = _page(response, "event types")
    return Page(
        page.count, page.total, [event_type_from_answer(d, f"event types: data[{i}]") for i, d in enumerate(data)]
    )


def parse_event_type(response: httpx.Response) -> dict[str, Any]:
    """The answer of "Get an event type" and of "Create an event-type" (the created type)."""
    return event_type_from_answer(answer_body(response, "event type"))


def parse_trashed(response: httpx.Response) -> Page:
    """A page of "Get Trashed events": data holds TrashedItems."""
    page, data = _page(response, "trashed events")
    items = []
    for i, doc in enumerate(data):
        what = f"trashed events: data[{i}]"
        _expect(doc, dict, what)
        errors = _expect(doc.get("errors", []), list, f"{what}.errors")
        items.append(
            TrashedItem(
                id=_expect(doc.get("_id"), str, f"{what}._id"),
                event_type_ref=_expect(doc.get("eventTypeRef") or "", str, f"{what}.eventTypeRef"),
                event_type_id=str(doc.get("eventTypeId") or ""),
                errors=[_expect(e, dict, f"{what}.errors[{j}]") for j, e in enumerate(errors)],
                processing_date=parse_date(doc.get("processingDate"), f"{what}.processingDate"),
                raw_event_date=parse_date(doc.get("rawEventDate"), f"{what}.rawEventDate"),
                raw=doc,
            )
        )
    return Page(page.count, page.total, items)


def parse_raw_event(response: httpx.Response) -> dict[str, Any]:
    """The answer of "Gets a Raw Event by ID": the event as it was sent."""
    doc = _expect(answer_body(response, "raw event"), dict, "raw event")
    _expect(doc.get("_id"), str, "raw event: _id")
    _expect(doc.get("data", {}), dict, "raw event: data")
    return doc


def parse_offline_interaction(response: httpx.Response) -> OfflineAnswer:
    """Ingestion is synchronous: 2xx accepted; a 4xx is a rejection whose message is shown verbatim.

    401 (refresh the token), 429 and 5xx (try later) raise AnswerError: they say nothing of the interaction."""
    status = response.status_code
    if response.is_success:
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return OfflineAnswer(True, status, "", body)
    if status in (401, 408, 425, 429) or status >= 500:
        answer_body(response, "offline interaction")  # raises with Webmarketer's message
    try:
        body = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    # NestJS-style validation answers list their messages; anything else: Webmarketer's message as given.
    if isinstance(message, list) and all(isinstance(m, str) for m in message):
        message = "; ".join(message)
    return OfflineAnswer(False, status, message if isinstance(message, str) else vendor_message(response), body)


def event_type_body(event_type: dict[str, Any]) -> dict[str, Any]:
    """The body of "Create an event-type" from a Webmarketer-shaped event type (pure)."""
    body = {
        "reference": event_type["reference"],
        "name": event_type["name"],
        "fields": event_type.get("fields") or [],
        "metadata": event_type.get("metadata") or {},
    }
    if event_type.get("phoneParsingConfig"):
        body["phoneParsingConfig"] = event_type["phoneParsingConfig"]
    if event_type.get("expirationPolicy"):
        body["expirationPolicy"] = event_type["expirationPolicy"]
    return body


def event_type_digest(event_type: dict[str, Any]) -> str:
    """A digest of what an event type says (DIGEST_KEYS), blind to key order and bookkeeping (ids, dates)."""
    archived = event_type.get("archivedAt")
    if isinstance(archived, datetime):
        archived = rfc3339(archived)
    elif archived:
        archived = rfc3339(parse_date(archived, "archivedAt"))  # type: ignore[arg-type]
    content = {  # DIGEST_KEYS
        "name": event_type.get("name") or "",
        "fields": event_type.get("fields") or [],
        "metadata": event_type.get("metadata") or {},
        "phoneParsingConfig": event_type.get("phoneParsingConfig") or [],
        "archivedAt": archived or None,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# How a value of each field type should look, for the trash inbox.
TYPE_WORDS = {
    "email": "a valid email address",
    "phone": "a valid phone number",
    "number": "a number",
    "currency": "an ISO 4217 currency code (e.g. EUR)",
    "boolean": "true or false",
    "date": "an RFC3339 date-time",
    "location": "a valid location {zipcode, country}",
    "string": "text",
    "message": "text",
}


def _shown(value: Any) -> str:
    # Sorted keys: PostgreSQL's jsonb reorders an object's keys, the explanation must not depend on the database.
    return repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def trash_error_explain(error: Any) -> str:
    """One trash error in words: which field, which value, why (e.g. "phone: '0613' is not a valid phone
    number"). Reads `field` as an object or, as the docs announce for later, as a plain string."""
    if not isinstance(error, dict):
        return f"unreadable error: {_shown(error)}"
    field, kind, value = error.get("field"), error.get("type"), error.get("value")
    field_type = None
    if isinstance(field, dict):
        name = field.get("ingestionKey") or field.get("storageKey") or "(unnamed field)"
        field_type = field.get("type")
    else:
        name = field if isinstance(field, str) and field else "(unknown field)"
    words = TYPE_WORDS.get(field_type or "")
    if kind == "missing-field":
        return f"{name}: required but missing" + (f" (expected {words})" if words else "")
    if kind == "invalid-field":
        return f"{name}: {_shown(value)} is not {words or 'a valid value'}"
    return f"{name}: {kind or 'error'} (value {_shown(value)})"


# -- state and statistic updates ------------------------------------------------------------------------------
# Reference: webmarketer-api-1.0.0.txt "Update an event state" / "Update an event statistic", Troubleshooting.
STORAGE_KEY_MISSING = "No storageKey matching field in this eventType"


def rfc3339_ms(value: datetime) -> str:
    """UTC with milliseconds and a Z, as in the docs' update samples ("2023-05-04T12:00:00.000Z")."""
    if value.tzinfo is None:
        raise ValueError("an update date needs a timezone (a naive date would be read as UTC by Webmarketer)")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def update_value(value: Any, *, state: bool) -> int | float:
    """The number an update sends: a state is 0 or 1; a statistic any finite number, an integral one as an
    integer (the docs' sample sends 4000)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"an update value must be a number, got {type(value).__name__}")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError("an update value must be a finite number")
    if state and number not in (0, 1):
        raise ValueError(f"a state value is 0 or 1, got {value}")
    return int(number) if number == number.to_integral_value() else float(number)


def update_body(value: Any, date: datetime | None, *, state: bool) -> dict[str, Any]:
    """The body of a state or statistic update: {value, date?} (date left out when not relevant)."""
    body: dict[str, Any] = {"value": update_value(value, state=state)}
    if date is not None:
        body["date"] = rfc3339_ms(date)
    return body


def update_404_explain(message: str, *, kind: str, storage_key: str) -> str:
    """A 404 to an update in words, for staff who never read the docs' Troubleshooting section."""
    if STORAGE_KEY_MISSING.lower() in message.lower():
        return (
            f'Webmarketer has no {kind} "{storage_key}" on this event\'s type: either the key is misspelt, or the '
            f"{kind} was added to the event type after this event was created (Webmarketer's team can add it to "
            "past events on request)."
        )
    return (
        "Webmarketer does not know this event in the project: it may have been trashed as invalid (see the trash "
        "inbox) or sent to another project."
    )


def classify_update(response: httpx.Response, *, kind: str, storage_key: str) -> Result:
    """An update's answer: 2xx applied (the docs show no success body, so none is read); a 404 failed with
    Webmarketer's message verbatim and what it means; the rest by the usual rules (401 refresh once, 429
    and 5xx retry with Retry-After)."""
    result = classify_status(response)
    if response.status_code == 404:
        explained = update_404_explain(vendor_message(response), kind=kind, storage_key=storage_key)
        return Result("failed", f"{result.error} — {explained}")
    return result
