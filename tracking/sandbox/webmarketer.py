"""Webmarketer in the sandbox: service accounts, the JWT-bearer token endpoint and create-event.

Mounted at /webmarketer: API base /webmarketer/api/v1/, token endpoint /webmarketer/oidc/token.
Reference: seeds/webmarketer-api-1.0.0.txt; VENDORS.md for the auth flow.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import SandboxState, inject_fault, json_error

NAME = "webmarketer"
AUDIENCE = "https://oauth.webmarketer.io/oidc/token"
PROJECT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
TOKEN_LIFETIME = 3600


class Sandbox:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.tokens: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}  # by Webmarketer event id
        self.by_nonce: dict[tuple[str, str], str] = {}  # (projectId, nonce) → event id
        self.token_requests = 0

    @property
    def accounts(self) -> dict[str, dict[str, str]]:
        return self.state.persisted.setdefault("webmarketer_service_accounts", {})

    def routes(self) -> list[Route]:
        return [
            Route("/__sandbox__/webmarketer/service-accounts", self.service_account_create, methods=["POST"]),
            Route("/__sandbox__/webmarketer/events", self.inspect_events),
            Route("/__sandbox__/webmarketer/tokens", self.tokens_revoke, methods=["DELETE"]),
            Route("/webmarketer/oidc/token", self.token, methods=["POST"]),
            Route("/webmarketer/api/v1/events", self.event_create, methods=["POST"]),
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
        with self.state.lock:
            self.accounts[kid] = {
                "publicKey": public_pem,
                "clientId": account["clientId"],
                "serviceAccountEmail": account["serviceAccountEmail"],
            }
            self.state.save()
        return JSONResponse(account, status_code=201)

    async def inspect_events(self, request: Request) -> Response:
        events = list(self.events.values())
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
                audience=AUDIENCE,
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
        try:
            body = await request.json()
        except ValueError:
            return json_error(400, "body is not JSON", error="Bad Request")
        fault = await inject_fault(self.state, NAME)
        if fault is not None:
            self.state.record(NAME, request, body, fault.status_code)
            return fault
        problems = _event_problems(body)
        if problems:
            self.state.record(NAME, request, body, 400)
            return json_error(400, problems, error="Bad Request")
        key = (body["projectId"], str(body["nonce"]))
        event_id = self.by_nonce.get(key)
        if event_id is None:
            event_id = str(uuid.uuid4())
            self.by_nonce[key] = event_id
            self.events[event_id] = {
                "_id": event_id,
                **body,
                "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "sends": 1,
            }
        else:
            self.events[event_id]["sends"] += 1
        self.state.record(NAME, request, body, 200)
        return JSONResponse(event_id)


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
