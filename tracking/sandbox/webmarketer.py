"""Webmarketer in the sandbox: service accounts, the JWT-bearer token endpoint, create-event, event types
(list with filters, get, create; update and delete as sandbox conveniences), the trash (events that break
their event type), raw events, offline interactions, and state / statistic updates (history kept per event).

Mounted at /webmarketer: API base /webmarketer/api/v1/, token endpoint /webmarketer/oidc/token.
Reference: seeds/webmarketer-api-1.0.0.txt; VENDORS.md for the auth flow.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jwt
import phonenumbers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import Credentials, Refusal, SandboxState, VendorSandbox, inject_fault, json_body, json_error
from .webmarketer_insights import InsightsError, insights_compute
from .webmarketer_insights import query_parse as insights_query_parse

NAME = "webmarketer"
WEBMARKETER_AUDIENCE = "https://oauth.webmarketer.io/oidc/token"
PROJECT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
TOKEN_LIFETIME = 3600
PROJECT = "/webmarketer/api/v1/projects/{project_id}"
# Reference: webmarketer-api-1.0.0.txt "Update an event state", Troubleshooting.
STORAGE_KEY_MISSING = "No storageKey matching field in this eventType"


class Sandbox(VendorSandbox):
    name = NAME

    def __init__(self, state: SandboxState) -> None:
        super().__init__(state)
        self.accounts = Credentials(state, "webmarketer_service_accounts")  # key id → public key, client, email
        self.tokens: dict[str, float] = {}

    def reset(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}  # by Webmarketer event id
        self.by_nonce: dict[tuple[str, str], str] = {}  # (projectId, nonce) → event id
        self.token_requests = 0
        self.event_types: dict[str, dict[str, dict[str, Any]]] = {}  # projectId → reference → event type
        self.trash: list[dict[str, Any]] = []
        self.offline_interactions: list[dict[str, Any]] = []
        # States and statistics, kept beside the events (the raw event stays as it was sent): the storage keys
        # the event's type declared when the event arrived (None: the sandbox did not know the type), the
        # current value per key, and every update in the order received.
        self.lead_keys: dict[str, dict[str, set[str]] | None] = {}
        self.lead_values: dict[str, dict[str, dict[str, Any]]] = {}
        self.lead_history: dict[str, list[dict[str, Any]]] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/__sandbox__/webmarketer/service-accounts", self.service_account_create, methods=["POST"]),
            Route("/__sandbox__/webmarketer/events", self.inspect_events),
            Route("/__sandbox__/webmarketer/tokens", self.tokens_revoke, methods=["DELETE"]),
            Route(
                "/__sandbox__/webmarketer/projects/{project_id}/event-types/{reference}",
                self.console_event_type_change,
                methods=["PATCH"],
            ),
            Route("/webmarketer/oidc/token", self.token, methods=["POST"]),
            Route("/webmarketer/api/v1/events", self.event_create, methods=["POST"]),
            Route(f"{PROJECT}/event-types", self.event_types_list, methods=["GET", "POST"]),
            Route(f"{PROJECT}/event-types/{{reference}}", self.event_type_one, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{PROJECT}/events/trashed", self.trash_list),
            Route(f"{PROJECT}/events/insights", self.insights, methods=["POST"]),
            Route(f"{PROJECT}/events/{{event_id}}", self.raw_event),
            Route(f"{PROJECT}/events/{{event_id}}/states/{{storage_key}}", self.state_update, methods=["PATCH"]),
            Route(
                f"{PROJECT}/events/{{event_id}}/statistics/{{storage_key}}", self.statistic_update, methods=["PATCH"]
            ),
            Route(f"{PROJECT}/interactions/offline", self.offline_interaction_create, methods=["POST"]),
        ]

    # -- sandbox administration ---------------------------------------------------------------------
    async def service_account_create(self, request: Request) -> Response:
        """Like downloading a service-account JSON from the Webmarketer console."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        kid = uuid.uuid4().hex
        account = {
            "privateKeyId": kid,
            "privateKey": private_pem,
            "clientId": "sandbox-" + uuid.uuid4().hex[:12],
            "serviceAccountEmail": f"hub-{kid[:8]}@sandbox.webmarketer.io",
        }
        checked = {  # what the token endpoint checks assertions against (the private key goes to the hub only)
            "publicKey": public_pem,
            "clientId": account["clientId"],
            "serviceAccountEmail": account["serviceAccountEmail"],
        }
        self.accounts.add(kid, checked)
        return JSONResponse(account, status_code=201)

    def restore(self, received: list[dict[str, Any]]) -> None:
        """The events accepted before a restart, by nonce: a nonce sent again after it is still deduplicated."""
        for item in received:
            body = item.get("body")
            if item["vendor"] != NAME or item["path"] != "/webmarketer/api/v1/events" or item["status"] != 200:
                continue
            key = (body["projectId"], str(body["nonce"]))
            if key in self.by_nonce:
                self.events[self.by_nonce[key]]["sends"] += 1
                continue
            event_id = str(uuid.uuid4())
            self.by_nonce[key] = event_id
            self.events[event_id] = {"_id": event_id, **body, "createdAt": item["at"], "sends": 1}

    async def inspect_events(self, request: Request) -> Response:
        """What was received: each event with its current states and statistics and its update history."""
        events = [
            {
                **event,
                "states": self.lead_values.get(event_id, {}).get("state", {}),
                "statistics": self.lead_values.get(event_id, {}).get("statistic", {}),
                "updates": self.lead_history.get(event_id, []),
            }
            for event_id, event in self.events.items()
        ]
        return JSONResponse({"count": len(events), "token_requests": self.token_requests, "data": events})

    async def tokens_revoke(self, request: Request) -> Response:
        """Expire every issued token: the next call with one gets 401 (tests the refresh-once rule)."""
        self.tokens.clear()
        return JSONResponse({"ok": True})

    # -- the vendor's API ----------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.token_requests += 1
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        assertion = form.get("assertion", "")
        try:
            kid = jwt.get_unverified_header(assertion).get("kid")
        except jwt.PyJWTError:
            return JSONResponse({"error": "invalid_grant", "error_description": "malformed assertion"}, 400)
        account = self.accounts.get(kid or "")
        if account is None:
            return JSONResponse({"error": "invalid_client", "error_description": "unknown key id"}, 401)
        try:
            claims = jwt.decode(
                assertion,
                account["publicKey"],
                algorithms=["RS256"],
                # Like the vendor: the assertion names this token endpoint (as the client reached it), or the
                # endpoint the sandbox stands in for; an assertion made for any other endpoint is refused.
                audience=[own := str(request.url.replace(query="")).rstrip("/"), own + "/", WEBMARKETER_AUDIENCE],
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            return JSONResponse({"error": "invalid_grant", "error_description": str(exc)}, 400)
        if (
            claims["iss"] != account["clientId"]
            or claims["sub"] != account["serviceAccountEmail"]
            or form.get("client_id") != account["clientId"]
            or claims.get("scope") != "full_access"
        ):
            return JSONResponse({"error": "invalid_grant", "error_description": "claims do not match"}, 400)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.time() + TOKEN_LIFETIME
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "scope": "full_access"}
        )

    def authorised(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
        return bool(expires and expires > time.time())

    async def event_create(self, request: Request) -> Response:
        """POST events: 200 with the event id (the same id again for a known nonce)."""
        if not self.authorised(request):
            return json_error(401, "Unauthorized")
        body = await json_body(request, _not_json)
        await self.fault_check(request, body)
        problems = _event_problems(body)
        if problems:
            return self.answer(request, body, json_error(400, problems, error="Bad Request"))
        key = (body["projectId"], str(body["nonce"]))
        event_id = self.by_nonce.get(key)
        if event_id is None:
            event_id = str(uuid.uuid4())
            self.by_nonce[key] = event_id
            self.events[event_id] = {
                "_id": event_id,
                **body,
                "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "sends": 1,
            }
            self.trash_if_invalid(self.events[event_id])
            self.lead_keys[event_id] = self.lead_keys_of(body["projectId"], body["eventType"])
        else:
            self.events[event_id]["sends"] += 1
        return self.answer(request, body, JSONResponse(event_id))

    # -- event types, trash, raw events, offline interactions --------------------------------------------
    async def _guard(self, request: Request) -> str:
        """The path's project id; else raises Refusal (not recorded): 401, an injected fault, a bad project id."""
        if not self.authorised(request):
            raise Refusal(json_error(401, "Unauthorized"))
        fault = await inject_fault(self.state, NAME)
        if fault is not None:
            raise Refusal(fault)
        project = request.path_params["project_id"]
        if not (3 <= len(project) <= 64 and PROJECT_ID.match(project)):
            raise Refusal(json_error(400, "projectId must match ^[a-z0-9]+(?:-[a-z0-9]+)*$", error="Bad Request"))
        return project

    async def event_types_list(self, request: Request) -> Response:
        """GET: paginated, filtered by search / archived / storageKey / reference, sorted; POST: create."""
        project = await self._guard(request)
        if request.method == "POST":
            return await self._event_type_create(request, project)
        query = request.query_params
        try:
            offset, limit = _int_param(query, "offset", 0), _int_param(query, "limit", 10, maximum=100)
        except ValueError as exc:
            return json_error(400, str(exc), error="Bad Request")
        archived = query.get("archived", "false").lower() in ("true", "1")
        items = [t for t in self.event_types.get(project, {}).values() if (t["archivedAt"] is not None) == archived]
        if search := query.get("search", "").lower():
            items = [t for t in items if search in t["name"].lower() or search in t["reference"]]
        if storage_key := query.get("storageKey"):
            items = [t for t in items if any(f.get("storageKey") == storage_key for f in t["fields"])]
        if reference := query.get("reference"):
            items = [t for t in items if t["reference"] == reference]
        # "name,-createdAt": sort by the last key first; Python's sort is stable.
        for key in reversed([k.strip() for k in query.get("sort", "").split(",") if k.strip(" -")]):
            name = key.lstrip("-")
            items.sort(key=lambda t, name=name: str(t.get(name) or ""), reverse=key.startswith("-"))
        page = items[offset : offset + limit]
        return JSONResponse({"total": len(items), "count": len(page), "data": page})

    async def _event_type_create(self, request: Request, project: str) -> Response:
        body = await json_body(request, _not_json)
        problem = _event_type_problems(body)
        if problem:
            return json_error(400, problem, error="Bad Request")
        types = self.event_types.setdefault(project, {})
        if body["reference"] in types:
            message = f"An event type with reference {body['reference']!r} already exists"
            return json_error(409, message, error="Conflict")
        now = _now()
        doc = {
            "_id": f"{int(time.time()):08x}{secrets.token_hex(8)}",  # shaped like a MongoDB ObjectId
            "createdAt": now,
            "updatedAt": now,
            "archivedAt": None,
            "projectId": project,
            "reference": body["reference"],
            "name": body["name"],
            "fields": body.get("fields") or [],
            "metadata": body.get("metadata") or {},
            "phoneParsingConfig": body.get("phoneParsingConfig") or [],
        }
        if body.get("expirationPolicy") is not None:
            doc["expirationPolicy"] = body["expirationPolicy"]
        types[doc["reference"]] = doc
        return JSONResponse(doc, status_code=201)

    async def event_type_one(self, request: Request) -> Response:
        """GET one by reference; PATCH and DELETE are sandbox conveniences (the docs show no update), to play
        changes made in the Webmarketer console: PATCH takes the type's keys, plus {"archived": true|false}."""
        project = await self._guard(request)
        reference = request.path_params["reference"]
        types = self.event_types.get(project, {})
        doc = types.get(reference)
        if doc is None:
            return json_error(404, f"Event type {reference!r} not found", error="Not Found")
        if request.method == "GET":
            return JSONResponse(doc)
        if request.method == "DELETE":
            del types[reference]
            return Response(status_code=204)
        return self._event_type_change(types, doc, await json_body(request, _not_json))

    def _event_type_change(self, types: dict[str, dict[str, Any]], doc: dict[str, Any], changes: Any) -> Response:
        if not isinstance(changes, dict):
            return json_error(400, "body must be an object", error="Bad Request")
        editable = {"name", "fields", "metadata", "phoneParsingConfig", "expirationPolicy", "archivedAt"}
        updated = {**doc, **{k: v for k, v in changes.items() if k in editable}}
        if "archived" in changes:
            updated["archivedAt"] = (doc["archivedAt"] or _now()) if changes["archived"] else None
        if field_changes := changes.get("fieldChanges"):
            # {"phone": {"optional": false}}: change some keys of fields named by storageKey, as one would in
            # Webmarketer's console, without sending the whole list.
            if not isinstance(field_changes, dict) or not all(isinstance(v, dict) for v in field_changes.values()):
                return json_error(400, "fieldChanges must map storageKeys to objects", error="Bad Request")
            unknown = set(field_changes) - {f.get("storageKey") for f in updated["fields"]}
            if unknown:
                return json_error(400, f"no such fields: {sorted(unknown)}", error="Bad Request")
            updated["fields"] = [{**f, **field_changes.get(f.get("storageKey"), {})} for f in updated["fields"]]
        problem = _event_type_problems(updated)
        if problem:
            return json_error(400, problem, error="Bad Request")
        updated["updatedAt"] = _now()
        types[doc["reference"]] = updated
        return JSONResponse(updated)

    async def console_event_type_change(self, request: Request) -> Response:
        """PATCH, no token: a change made by hand in Webmarketer's console (the demo makes a field required
        this way, so events sent before the hub synced land in the trash). Same body as the API's PATCH, plus
        fieldChanges: {storageKey: {key: value}}."""
        project, reference = request.path_params["project_id"], request.path_params["reference"]
        types = self.event_types.get(project, {})
        doc = types.get(reference)
        if doc is None:
            return json_error(404, f"Event type {reference!r} not found", error="Not Found")
        return self._event_type_change(types, doc, await json_body(request, _not_json))

    def trash_if_invalid(self, event: dict[str, Any]) -> None:
        """An event whose type the sandbox knows and whose data breaks it goes to the trash, as in Webmarketer
        (the sender still got 200 and the id: ingestion is asynchronous)."""
        event_type = self.event_types.get(event["projectId"], {}).get(event["eventType"])
        if event_type is None:
            return
        errors = _schema_errors(event_type["fields"], event["data"])
        if errors:
            now = _now()
            self.trash.append(
                {
                    "_id": event["_id"],
                    "projectId": event["projectId"],
                    "errors": errors,
                    "eventTypeId": event_type["_id"],
                    "eventTypeRef": event_type["reference"],
                    "processingDate": now,
                    "rawEventDate": now,
                }
            )

    async def trash_list(self, request: Request) -> Response:
        """Trashed events whose processingDate is within since..until, newest first, paginated."""
        project = await self._guard(request)
        query = request.query_params
        try:
            since, until = _date_param(query, "since"), _date_param(query, "until")
            offset, limit = _int_param(query, "offset", 0), _int_param(query, "limit", 10, maximum=100)
        except ValueError as exc:
            return json_error(400, str(exc), error="Bad Request")
        items = [
            t
            for t in self.trash
            if t["projectId"] == project
            and (since is None or datetime.fromisoformat(t["processingDate"]) >= since)
            and (until is None or datetime.fromisoformat(t["processingDate"]) <= until)
        ]
        items.sort(key=lambda t: t["processingDate"], reverse=True)
        page = items[offset : offset + limit]
        return JSONResponse({"count": len(page), "total": len(items), "data": page})

    async def raw_event(self, request: Request) -> Response:
        project = await self._guard(request)
        event = self.events.get(request.path_params["event_id"])
        if event is None or event["projectId"] != project:
            return json_error(404, "Event not found", error="Not Found")
        return JSONResponse({k: v for k, v in event.items() if k != "sends"})

    # -- states and statistics -------------------------------------------------------------------------------
    def lead_keys_of(self, project: str, reference: str) -> dict[str, set[str]] | None:
        """The state and statistic storage keys of an event type now (kept with each event as it arrives)."""
        event_type = self.event_types.get(project, {}).get(reference)
        if event_type is None:
            return None
        keys: dict[str, set[str]] = {"state": set(), "statistic": set()}
        for item in event_type["fields"]:
            if item.get("entity") in keys:
                keys[item["entity"]].add(item["storageKey"])
        return keys

    async def state_update(self, request: Request) -> Response:
        return await self._lead_update(request, "state")

    async def statistic_update(self, request: Request) -> Response:
        return await self._lead_update(request, "statistic")

    async def _lead_update(self, request: Request, kind: str) -> Response:
        """PATCH …/events/{id}/states|statistics/{storageKey} {value, date?}: 404 with the documented message
        for a key the event's type did not declare when the event arrived (a sandbox that never saw the
        type takes any key)."""
        project = await self._guard(request)
        event_id, storage_key = request.path_params["event_id"], request.path_params["storage_key"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        status, answer = self._lead_answer(project, event_id, storage_key, kind, body)
        return self.answer(request, body, JSONResponse(answer, status_code=status))

    def _lead_answer(
        self, project: str, event_id: str, storage_key: str, kind: str, body: Any
    ) -> tuple[int, dict[str, Any]]:
        event = self.events.get(event_id)
        if event is None or event["projectId"] != project:
            return 404, {"statusCode": 404, "message": "Event not found", "error": "Not Found"}
        if not isinstance(body, dict):
            return 400, {"statusCode": 400, "message": "body must be an object", "error": "Bad Request"}
        value = body.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return 400, {"statusCode": 400, "message": "value must be a number", "error": "Bad Request"}
        if kind == "state" and value not in (0, 1):
            return 400, {"statusCode": 400, "message": "value must be 0 or 1", "error": "Bad Request"}
        date = body.get("date")
        if date is not None:
            try:
                datetime.fromisoformat(date)
            except (TypeError, ValueError):
                message = "date must be a valid ISO 8601 date string"
                return 400, {"statusCode": 400, "message": message, "error": "Bad Request"}
        keys = self.lead_keys.get(event_id)
        if keys is not None and storage_key not in keys[kind]:
            return 404, {"statusCode": 404, "message": STORAGE_KEY_MISSING, "error": "Not Found"}
        now = _now()
        update = {"kind": kind, "storageKey": storage_key, "value": value, "date": date, "receivedAt": now}
        self.lead_history.setdefault(event_id, []).append(update)
        values = self.lead_values.setdefault(event_id, {"state": {}, "statistic": {}})
        values[kind][storage_key] = {"value": value, "date": date or now, "updatedAt": now}
        return 200, {"_id": event_id, "storageKey": storage_key, **values[kind][storage_key]}

    async def offline_interaction_create(self, request: Request) -> Response:
        """Synchronous: 400 with the reason when the interaction cannot be taken, 201 otherwise."""
        project = await self._guard(request)
        body = await json_body(request, _not_json)
        if not isinstance(body, dict):
            return json_error(400, "body must be an object", error="Bad Request")
        node, user = body.get("nodeData"), body.get("userData")
        if not isinstance(node, dict) or not node.get("wmktId"):
            return json_error(400, "wmktId must be present in nodeData", error="Bad Request")
        if not isinstance(user, dict) or not user:
            return json_error(400, "userData must contain at least one identity field", error="Bad Request")
        if body.get("date") is not None:
            try:
                datetime.fromisoformat(body["date"])
            except (TypeError, ValueError):
                return json_error(400, "date must be a valid ISO 8601 date string", error="Bad Request")
        interaction = {"_id": str(uuid.uuid4()), "projectId": project, **body, "createdAt": _now()}
        self.offline_interactions.append(interaction)
        return JSONResponse(interaction, status_code=201)

    # Reference: webmarketer-api-1.0.0.txt "Event insights (without attribution)".
    async def insights(self, request: Request) -> Response:
        """Counts and statistic sums of the events held, per interval (and event type); 400 says why a query
        is refused (e.g. an unknown interval)."""
        project = await self._guard(request)
        body = await json_body(request, _not_json)
        try:
            query = insights_query_parse(body)
        except InsightsError as exc:
            return json_error(400, str(exc), error="Bad Request")
        return JSONResponse(insights_compute(project, query, self.events.values(), self.lead_values))


def _not_json() -> Response:
    return json_error(400, "body is not JSON", error="Bad Request")


def _event_problems(body: Any) -> str:
    if not isinstance(body, dict):
        return "body must be an object"
    pid = body.get("projectId")
    if not isinstance(pid, str) or not (3 <= len(pid) <= 64) or not PROJECT_ID.match(pid):
        return "projectId must match ^[a-z0-9]+(?:-[a-z0-9]+)*$ (3-64 characters)"
    for key in ("eventType", "nonce"):
        if not body.get(key):
            return f"{key} should not be empty"
    if not isinstance(body.get("data"), dict):
        return "data must be an object"
    return ""


FIELD_TYPES = ("string", "email", "phone", "number", "currency", "boolean", "date", "location", "message")
FIELD_ENTITIES = ("user", "event", "state", "statistic")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[\d\s.\-()/]+$")
ZIPCODE = re.compile(r"^(?=.*\d)[A-Za-z0-9 -]{3,10}$")
COUNTRY_NAME = re.compile(r"^[^\W\d_][^\W\d_ '-]*(?:[ '-][^\W\d_]+)*$")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int_param(query: Any, name: str, default: int, maximum: int | None = None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ValueError(f"{name} must be a non-negative integer")
    return min(int(raw), maximum) if maximum else int(raw)


def _date_param(query: Any, name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name} must be a date-time (RFC3339)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _event_type_problems(body: Any) -> str:
    if not isinstance(body, dict):
        return "body must be an object"
    reference = body.get("reference")
    if not isinstance(reference, str) or not PROJECT_ID.match(reference):
        return "reference must match ^[a-z0-9]+(?:-[a-z0-9]+)*$"
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        return "name should not be empty"
    fields = body.get("fields") or []
    if not isinstance(fields, list):
        return "fields must be an array"
    for i, item in enumerate(fields):
        if not isinstance(item, dict) or not isinstance(item.get("storageKey"), str) or not item["storageKey"]:
            return f"fields.{i}.storageKey should not be empty"
        if item.get("type") not in FIELD_TYPES:
            return f"fields.{i}.type must be one of: {', '.join(FIELD_TYPES)}"
        if item.get("entity") not in FIELD_ENTITIES:
            return f"fields.{i}.entity must be one of: {', '.join(FIELD_ENTITIES)}"
    for key, kind in (("metadata", dict), ("phoneParsingConfig", list)):
        if body.get(key) is not None and not isinstance(body[key], kind):
            return f"{key} must be an {'object' if kind is dict else 'array'}"
    return ""


def _value_ok(kind: str, value: Any) -> bool:
    """Simple checks, enough for a sandbox: the real service is stricter about phones and places."""
    if kind in ("string", "message"):
        return isinstance(value, str)
    if kind == "email":
        return isinstance(value, str) and bool(EMAIL.match(value))
    if kind == "phone":
        return isinstance(value, str) and bool(PHONE.match(value)) and 9 <= sum(c.isdigit() for c in value) <= 15
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "currency":
        return isinstance(value, str) and len(value) == 3 and value.isalpha() and value.isupper()
    if kind == "date":
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return False
        return True
    if kind == "location":
        if not isinstance(value, dict):
            return False
        zipcode, country = value.get("zipcode"), value.get("country")
        if not isinstance(zipcode, str) or not ZIPCODE.match(zipcode) or not isinstance(country, str):
            return False
        # An ISO 3166 alpha-2 code, or a country name (so "wd" is refused, "FR" and "France" are not).
        return country.upper() in phonenumbers.SUPPORTED_REGIONS or (
            len(country) >= 4 and bool(COUNTRY_NAME.match(country))
        )
    return True


def _schema_errors(fields: list[dict[str, Any]], data: Any) -> list[dict[str, Any]]:
    """The errors of a trashed event, shaped like the docs' trash sample: {type, field, value}."""
    if not isinstance(data, dict):
        data = {}
    errors: list[dict[str, Any]] = []
    for item in fields:
        if item.get("entity") not in ("user", "event"):  # states and statistics come later, by PATCH
            continue
        value = data.get(item.get("ingestionKey") or item["storageKey"])
        if value is None or value == "":
            if not item.get("optional"):
                errors.append({"type": "missing-field", "field": dict(item), "value": None})
        elif not _value_ok(item.get("type", "string"), value):
            errors.append({"type": "invalid-field", "field": dict(item), "value": value})
    return errors
