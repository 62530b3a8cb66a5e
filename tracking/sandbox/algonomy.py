"""Algonomy rCDP in the sandbox: API clients, the client-credentials token endpoint and the events API.

Mounted at /algonomy: token endpoint POST /algonomy/oauth/token (auth URL /algonomy), events
POST /algonomy/callback/rest/events/<tenant_hash>/<event_name> (base URL /algonomy/).
Clients: POST /__sandbox__/algonomy/clients (optional JSON {"client_id", "client_secret", "tenant_hash"}).
Reference: seeds/algonomy-rcdp-direct-api.txt.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import Credentials, SandboxState, VendorSandbox, admin_body, json_error

NAME = "algonomy"
TOKEN_LIFETIME = 3600
# The seed's tables, written out again here on purpose: the sandbox checks the hub, it does not share its code.
REQUIRED: dict[str, list[str]] = {
    "eventHomePage": [],
    "eventSearch": ["searchFacet", "searchString", "searchResults"],
    "eventCategory": ["categoryId"],
    "eventProduct": ["productId", "price"],
    "eventAddToCart": ["productId", "price", "quantity"],
    "eventCartItemEdit": [
        "cartId",
        "cartProducts",
        "cartProducts[].productId",
        "cartProducts[].action",
        "cartProducts[].quantity",
        "cartProducts[].productBasePrice",
    ],  # fmt: skip
    "eventCheckout": ["transactionId", "tenderType", "totalPrice", "cartProducts", "billingInfo", "shippingInfo"],
    "eventTransactionComplete": [
        "transactionId",
        "orderId",
        "tenderType",
        "totalPrice",
        "cartProducts",
        "billingInfo",
        "shippingInfo",
    ],  # fmt: skip
    "eventTransactionFailure": ["orderId", "errorCode"],
    "eventCustomerCreate": ["customerCode", "customerEmailId", "firstName", "lastName"],
    "eventLogin": ["customerCode"],
    "eventUpdateProfile": ["customerCode"],
    "eventLogout": [],
    "eventForgotPassword": ["customerEmailId"],
    "eventShareWishlist": ["wishlistId"],
}


class Sandbox(VendorSandbox):
    name = NAME

    def __init__(self, state: SandboxState) -> None:
        super().__init__(state)
        self.clients = Credentials(state, "algonomy_clients")  # client id → {"secret", "tenant"}
        self.tokens: dict[str, tuple[float, str]] = {}  # token → (expiry, tenant hash)

    def reset(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.token_requests = 0

    def routes(self) -> list[Route]:
        return [
            Route("/__sandbox__/algonomy/clients", self.client_create, methods=["POST"]),
            Route("/__sandbox__/algonomy/events", self.inspect_events),
            Route("/__sandbox__/algonomy/tokens", self.tokens_revoke, methods=["DELETE"]),
            Route("/algonomy/oauth/token", self.token, methods=["POST"]),
            Route("/algonomy/callback/rest/events/{tenant}/{event_name}", self.event_create, methods=["POST"]),
        ]

    # -- sandbox administration ---------------------------------------------------------------------
    async def client_create(self, request: Request) -> Response:
        """Like onboarding: a client id and secret for one tenant hash (given, or generated)."""
        body = await admin_body(request)
        client = {
            "client_id": str(body.get("client_id") or "client-" + secrets.token_hex(6)),
            "client_secret": str(body.get("client_secret") or secrets.token_urlsafe(24)),
            "tenant_hash": str(body.get("tenant_hash") or secrets.token_hex(16).upper()),
        }
        self.clients.add(client["client_id"], {"secret": client["client_secret"], "tenant": client["tenant_hash"]})
        return JSONResponse(client, status_code=201)

    async def inspect_events(self, request: Request) -> Response:
        return JSONResponse({"count": len(self.events), "token_requests": self.token_requests, "data": self.events})

    async def tokens_revoke(self, request: Request) -> Response:
        """Expire every token: the next call gets 401 (tests the refresh-once rule)."""
        self.tokens.clear()
        return JSONResponse({"ok": True})

    # -- the vendor's API ----------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        client = self.clients.get(form.get("client_id", ""))
        if client is None or not secrets.compare_digest(client["secret"], form.get("client_secret", "")):
            return JSONResponse({"error": "invalid_client", "error_description": "bad client credentials"}, 401)
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (time.time() + TOKEN_LIFETIME, client["tenant"])
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME})

    async def event_create(self, request: Request) -> Response:
        """202 accepted; 401 bad token; 403 other tenant; 404 unknown tenant or event; 400 invalid payload."""
        tenant, event_name = request.path_params["tenant"], request.path_params["event_name"]
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant[0] <= time.time():
            return self.answer(request, None, json_error(401, "access token missing, expired or invalid"))
        if tenant not in {c["tenant"] for c in self.clients.values()} or event_name not in REQUIRED:
            return self.answer(request, None, json_error(404, "tenant hash or event name is incorrect"))
        if grant[1] != tenant:
            return self.answer(request, None, json_error(403, "the token has no permission for this tenant"))
        body = await self.body_read(request)
        if problems := _problems(event_name, body):
            return self.answer(request, body, json_error(400, "; ".join(problems), errors=problems))
        event_id = str(uuid.uuid4())
        self.events.append({"_id": event_id, "tenant": tenant, "eventName": event_name, **body})
        return self.answer(request, body, JSONResponse({"status": "accepted", "id": event_id}, status_code=202))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _problems(event_name: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [f"{k} is required" for k in ("srcId", "srcType") if not isinstance(body.get(k), str) or not body[k]]
    if not isinstance(body.get("requestTime"), int) or isinstance(body.get("requestTime"), bool):
        problems.append("requestTime (epoch milliseconds) is required")
    for name in ("customer", "eventData"):
        if not isinstance(body.get(name), dict):
            problems.append(f"{name} (an object) is required")
    data = body.get("eventData") if isinstance(body.get("eventData"), dict) else {}
    for field in REQUIRED[event_name]:
        name, _, sub = field.partition("[].")
        if not sub:
            if _blank(data.get(name)):
                problems.append(f"eventData.{name} is required")
        elif isinstance(data.get(name), list):
            problems += [
                f"eventData.{name}[{i}].{sub} is required"
                for i, row in enumerate(data[name])
                if not isinstance(row, dict) or _blank(row.get(sub))
            ]
    return problems
