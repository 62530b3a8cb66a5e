"""Acquia CDP webtag tracker in the sandbox: webtag users, the Basic-auth token endpoint and the tracker.

Mounted at /acquia: token endpoint POST /acquia/token?action=create&scheme=a1webtag (answers {"token": …}),
tracker POST /acquia/v2/<tenant>/dw/tracker?scheme=a1webtag&accessKey=<bcrypt(token + UTC yyyy-MM-dd)>.
Users: POST /__sandbox__/acquia/users (optional JSON {"username", "password"}) answers the credentials.
Reference: seeds/acquia-cdp-webtag-tracker-api.txt; VENDORS.md for the auth flow.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import bcrypt
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import Credentials, SandboxState, VendorSandbox, admin_body, json_error

NAME = "acquia"
ENTITIES = ("events", "customers", "transactions", "transactionitems")
MAX_PER_ENTITY = 10
TOKEN_LIFETIME = 24 * 3600


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


class Sandbox(VendorSandbox):
    name = NAME
    secret_params = ("accessKey",)  # a secret: recorded as [redacted]

    def __init__(self, state: SandboxState) -> None:
        super().__init__(state)
        self.users = Credentials(state, "acquia_users")  # username → password
        self.tokens: dict[str, float] = {}  # token → expiry (epoch seconds)
        self.keys: dict[str, tuple[str, str]] = {}  # verified accessKey → (token, day): bcrypt is slow

    def reset(self) -> None:
        self.entities: dict[str, list[dict[str, Any]]] = {}
        self.calls = 0
        self.token_requests = 0

    def routes(self) -> list[Route]:
        return [
            Route("/__sandbox__/acquia/users", self.user_create, methods=["POST"]),
            Route("/__sandbox__/acquia/events", self.inspect_events),
            Route("/__sandbox__/acquia/tokens", self.tokens_revoke, methods=["DELETE"]),
            Route("/acquia/token", self.token, methods=["POST"]),
            Route("/acquia/v2/{tenant}/dw/tracker", self.track, methods=["POST"]),
        ]

    # -- sandbox administration ---------------------------------------------------------------------
    async def user_create(self, request: Request) -> Response:
        """Like the webtag user Acquia provides: username and password (given, or generated)."""
        body = await admin_body(request)
        username = str(body.get("username") or "webtag-" + secrets.token_hex(4))
        password = str(body.get("password") or secrets.token_urlsafe(12))
        self.users.add(username, password)
        return JSONResponse({"username": username, "password": password}, status_code=201)

    async def inspect_events(self, request: Request) -> Response:
        events = self.entities.get("events", [])
        others = {name: rows for name, rows in self.entities.items() if name != "events"}
        return JSONResponse(
            {"count": len(events), "calls": self.calls, "token_requests": self.token_requests, "data": events, **others}
        )

    async def tokens_revoke(self, request: Request) -> Response:
        """Expire every token: the next call gets 401 (tests the refresh-once rule)."""
        self.tokens.clear()
        self.keys.clear()
        return JSONResponse({"ok": True})

    # -- the vendor's API ----------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        query = request.query_params
        if query.get("action") != "create" or query.get("scheme") != "a1webtag":
            return json_error(400, "action=create and scheme=a1webtag are required")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username = password = ""
        known = self.users.get(username)
        if scheme.lower() != "basic" or known is None or not secrets.compare_digest(known, password):
            return json_error(401, "invalid credentials")
        token = secrets.token_hex(16)
        self.tokens[token] = time.time() + TOKEN_LIFETIME
        return JSONResponse({"token": token})

    async def _key_valid(self, key: str) -> bool:
        """bcrypt(token + today) of a token this sandbox issued and that has not expired."""
        day, now = _today(), time.time()
        cached = self.keys.get(key)
        if cached and cached[1] == day and self.tokens.get(cached[0], 0) > now:
            return True
        if not key.startswith("$2a$10$"):
            return False
        for token, expires in list(self.tokens.items()):
            if expires > now and await run_in_threadpool(_matches, token + day, key):
                self.keys[key] = (token, day)
                return True
        return False

    async def track(self, request: Request) -> Response:
        """POST …/dw/tracker: 200; 400 without accessKey or with a bad payload; 401 bad key."""
        query = request.query_params
        if query.get("scheme") != "a1webtag":
            return self.answer(request, None, json_error(400, "scheme=a1webtag is required"))
        if not query.get("accessKey"):
            return self.answer(request, None, json_error(400, "accessKey is required"))
        if not await self._key_valid(query["accessKey"]):
            return self.answer(request, None, json_error(401, "invalid accessKey"))
        body = await self.body_read(request)
        if problem := _payload_problem(body):
            return self.answer(request, body, json_error(400, problem))
        self.calls += 1
        for name, rows in body.items():
            self.entities.setdefault(name, []).extend({**row, "_tenant": request.path_params["tenant"]} for row in rows)
        return self.answer(request, body, JSONResponse({"status": "ok"}))


def _matches(secret: str, key: str) -> bool:
    try:
        return bcrypt.checkpw(secret.encode()[:72], key.encode())
    except ValueError:
        return False


def _payload_problem(body: Any) -> str:
    if not isinstance(body, dict):
        return "the payload must be a JSON object of entity lists"
    if not isinstance(body.get("events"), list) or not body["events"]:
        return "events is required"
    for name, rows in body.items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            return f"{name} must be a list of objects"
        if len(rows) > MAX_PER_ENTITY:
            return f"{name}: at most {MAX_PER_ENTITY} objects per entity and call ({len(rows)} sent)"
        for row in rows:
            if empty := [k for k, v in row.items() if v == ""]:
                return f"{name}: empty string for {empty[0]} (send null or omit it)"
    for row in body["events"]:
        if missing := [k for k in ("Type", "EventTimeStamp") if not row.get(k)]:
            return f"events: {missing[0]} is required"
    return ""
