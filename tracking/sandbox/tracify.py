"""Tracify server-side events in the sandbox: API keys and POST /api/v1/events.

Mounted at /tracify (base URL /tracify/): POST /tracify/api/v1/events with header tracify-token.
Keys: POST /__sandbox__/tracify/api-keys (optional JSON {"api_key", "customer_site_id"}).
A batch is checked whole: one bad event answers 400 for all. order_id / conversion_id deduplicate.
Reference: seeds/tracify-server-side-events-api.txt (status codes are not documented: 200, 400, 401 here).
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import Credentials, SandboxState, VendorSandbox, admin_body, json_error

NAME = "tracify"
TYPES = {"pageview", "productview", "addtocart", "purchase", "conversion"}
REQUIRED = {"purchase": ("order_id", "currency", "amount"), "conversion": ("conversion_id", "currency", "amount")}
HASH = re.compile(r"^[0-9a-f]{64}$")


class Sandbox(VendorSandbox):
    name = NAME

    def __init__(self, state: SandboxState) -> None:
        super().__init__(state)
        self.keys = Credentials(state, "tracify_api_keys")  # API key → customer site id

    def reset(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.dedup: set[tuple[str, str, str]] = set()  # (site, type, order_id | conversion_id)
        self.duplicates = 0

    def routes(self) -> list[Route]:
        return [
            Route("/__sandbox__/tracify/api-keys", self.key_create, methods=["POST"]),
            Route("/__sandbox__/tracify/events", self.inspect_events),
            Route("/tracify/api/v1/events", self.events_create, methods=["POST"]),
        ]

    # -- sandbox administration ---------------------------------------------------------------------
    async def key_create(self, request: Request) -> Response:
        """Like the API key and customer site id a Customer Success Manager hands out."""
        body = await admin_body(request)
        api_key = str(body.get("api_key") or secrets.token_urlsafe(24))
        site = str(body.get("customer_site_id") or uuid.uuid4())
        self.keys.add(api_key, site)
        return JSONResponse({"api_key": api_key, "customer_site_id": site}, status_code=201)

    async def inspect_events(self, request: Request) -> Response:
        return JSONResponse({"count": len(self.events), "duplicates": self.duplicates, "data": self.events})

    # -- the vendor's API ----------------------------------------------------------------------------
    async def events_create(self, request: Request) -> Response:
        site = self.keys.get(request.headers.get("tracify-token", ""))
        if site is None:
            return self.answer(request, None, json_error(401, "invalid or missing tracify-token"))
        body = await self.body_read(request)
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events:
            return self.answer(request, body, json_error(400, "events (a non-empty list) is required"))
        errors = [{"index": i, "error": e} for i, event in enumerate(events) if (e := _problem(event, site))]
        if errors:
            return self.answer(request, body, json_error(400, errors[0]["error"], errors=errors))
        for event in events:
            dedup_id = event["data"].get({"purchase": "order_id", "conversion": "conversion_id"}.get(event["type"], ""))
            key = (site, event["type"], str(dedup_id))
            if dedup_id is not None and key in self.dedup:
                self.duplicates += 1
                continue
            if dedup_id is not None:
                self.dedup.add(key)
            self.events.append(event)
        return self.answer(request, body, JSONResponse({"received": len(events)}))


def _problem(event: Any, site: str) -> str:
    if not isinstance(event, dict):
        return "an event must be an object"
    if event.get("type") not in TYPES:
        return f"type must be one of {sorted(TYPES)}"
    if event.get("customer_site_id") != site:
        return "customer_site_id does not belong to this API key"
    identity = event.get("identity_data")
    if not isinstance(identity, dict) or not identity:
        return "identity_data is required"
    if not all(isinstance(k, str) and HASH.match(k) for k in identity):
        return "identity_data keys must be calcGroup hashes (64 hex characters): raw identifiers are refused"
    if not set(identity.values()) <= {1, 2, 3, 4} or not {3, 4} <= set(identity.values()):
        return "identity_data values must be 1-4, with the IP (3) and User-Agent (4) hashes"
    try:
        datetime.strptime(str(event.get("datetime")), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "datetime must be %Y-%m-%d %H:%M:%S (UTC)"
    data = event.get("data")
    if not isinstance(data, dict) or not data.get("origin"):
        return "data.origin is required"
    if missing := [k for k in REQUIRED.get(event["type"], ()) if not data.get(k)]:
        return f"data.{missing[0]} is required for {event['type']} events"
    if "currency" in data and not re.fullmatch(r"[A-Z]{3}", str(data["currency"])):
        return "currency must be a 3-letter ISO-4217 code"
    return ""
