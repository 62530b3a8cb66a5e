"""Sandbox application: shared state, fault injection, inspection endpoints, and what every vendor's API does
with a call (VendorSandbox: read the JSON body, inject faults, record the answer; Credentials: what the
credential-issuing admin endpoints hand out, kept in the state file)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Callable, ValuesView
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Faults:
    """Faults injected into vendor API calls (not into auth or inspection endpoints)."""

    error_rate: float = 0.0  # share of calls answered with one of error_statuses
    error_statuses: list[int] = field(default_factory=lambda: [500, 502, 503])
    rate_429: float = 0.0  # share of calls answered 429 with Retry-After
    retry_after: int = 1
    latency_ms: int = 0  # added to every call
    timeout_rate: float = 0.0  # share of calls that hang for hang_seconds (clients time out)
    hang_seconds: float = 30.0
    fail_status: int | None = None  # every call answered with this status (e.g. 400): permanent failures
    fail_message: str = "injected permanent failure"  # what a fail_status answer says
    vendors: list[str] = field(default_factory=list)  # empty: all vendors


class SandboxState:
    def __init__(self, state_file: Path | None = None, log_file: Path | None = None) -> None:
        self.lock = threading.Lock()
        self.state_file = state_file
        self.faults = Faults()
        self.received: list[dict[str, Any]] = []
        self.vendors: dict[str, Any] = {}
        self.persisted: dict[str, Any] = {}
        if state_file and state_file.exists():
            self.persisted = json.loads(state_file.read_text())
        # The request log (one JSON line per vendor call, written as it is answered): what was received outlives a
        # restart of the sandbox (a chaos run restarts it and then counts every request it ever got).
        self.log_file = log_file
        self._log = None
        if log_file:
            if log_file.exists():
                with log_file.open() as lines:
                    self.received = [json.loads(line) for line in lines if line.endswith("\n")]
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = log_file.open("a", buffering=1)  # line-buffered: a killed sandbox loses no whole line

    def save(self) -> None:
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.persisted, indent=1))
            tmp.replace(self.state_file)

    def record(
        self, vendor: str, request: Request, body: Any, status: int, *, secret_params: tuple[str, ...] = ()
    ) -> None:
        """Keep one call and the status it got; the `secret_params` of its query are kept as [redacted]."""
        query = dict(request.query_params)
        for name in secret_params:
            if name in query:
                query[name] = "[redacted]"
        item = {
            "vendor": vendor,
            "method": request.method,
            "path": request.url.path,
            "query": query,
            "body": body,
            "status": status,
            "at": datetime.now(UTC).isoformat(),
        }
        self.received.append(item)
        if self._log is not None:
            self._log.write(json.dumps(item) + "\n")

    def forget(self) -> None:
        """Forget what was received (the log file too)."""
        self.received.clear()
        if self._log is not None and self.log_file is not None:
            self._log.close()
            self._log = self.log_file.open("w", buffering=1)


def json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message, **extra}, status_code=status)


async def inject_fault(state: SandboxState, vendor: str) -> Response | None:
    """Apply the configured faults to one vendor call: a response to answer instead, or None to go on."""
    faults = state.faults
    if faults.vendors and vendor not in faults.vendors:
        return None
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.fail_status:
        return json_error(faults.fail_status, faults.fail_message)
    roll = random.random()
    if roll < faults.timeout_rate:
        await asyncio.sleep(faults.hang_seconds)
        return json_error(504, "injected timeout")
    roll -= faults.timeout_rate
    if roll < faults.rate_429:
        return JSONResponse(
            {"statusCode": 429, "message": "Too Many Requests"},
            status_code=429,
            headers={"Retry-After": str(faults.retry_after)},
        )
    roll -= faults.rate_429
    if roll < faults.error_rate:
        status = random.choice(faults.error_statuses)
        return json_error(status, "injected server error")
    return None


class Refusal(Exception):
    """An answer given instead of going on with a call (raised by the steps below and by vendor guards): the app
    answers with its response, so a handler reads as the vendor's own checks only."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def json_body(request: Request, refused: Callable[[], Response]) -> Any:
    """The call's JSON body; raises Refusal with `refused()` when it is not JSON."""
    try:
        return await request.json()
    except ValueError:
        raise Refusal(refused()) from None


async def admin_body(request: Request) -> dict[str, Any]:
    """The optional JSON object of a sandbox admin call ({} when empty, not JSON or not an object)."""
    try:
        body = await request.json() if (await request.body()).strip() else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class Credentials:
    """What one vendor's onboarding handed out (key → what calls are checked against), issued by a sandbox admin
    endpoint and kept in the state file, so that connections made with them outlive a restart."""

    def __init__(self, state: SandboxState, name: str) -> None:
        self.state = state
        self.items: dict[str, Any] = state.persisted.setdefault(name, {})

    def get(self, key: str) -> Any:
        return self.items.get(key)

    def values(self) -> ValuesView[Any]:
        return self.items.values()

    def add(self, key: str, value: Any) -> None:
        """Keep one credential (replacing the one with that key) and write the state file."""
        with self.state.lock:
            self.items[key] = value
            self.state.save()


class VendorSandbox:
    """One vendor's API in the sandbox (a subclass per vendor module adds its routes, state and checks), with the
    steps every vendor takes with a call to its API: read the JSON body, inject faults, record the answer."""

    name: str  # the vendor in /__sandbox__/received and in Faults.vendors
    secret_params: tuple[str, ...] = ()  # query parameters recorded as [redacted]

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.reset()

    def reset(self) -> None:
        """Forget what was received (POST /__sandbox__/reset); issued credentials and tokens stay."""

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def restore(self, received: list[dict[str, Any]]) -> None:
        """Take back what the request log says was received before a restart (the vendors that dedup need it)."""

    def answer(self, request: Request, body: Any, response: Response) -> Response:
        """Record the call, its body and the status of `response`, and answer with it."""
        self.state.record(self.name, request, body, response.status_code, secret_params=self.secret_params)
        return response

    async def fault_check(self, request: Request, body: Any) -> None:
        """Raises Refusal with an injected fault (recorded) when the configured faults hit this call."""
        fault = await inject_fault(self.state, self.name)
        if fault is not None:
            raise Refusal(self.answer(request, body, fault))

    async def body_read(self, request: Request) -> Any:
        """The call's JSON body once past the injected faults; else raises Refusal with the answer (recorded): 400
        "body is not JSON", or the fault."""
        body = await json_body(request, lambda: self.answer(request, None, json_error(400, "body is not JSON")))
        await self.fault_check(request, body)
        return body


async def refusal_answer(request: Request, exc: Exception) -> Response:
    """The response a Refusal carries (the app's handler for Refusal)."""
    return cast(Refusal, exc).response


def create_app(state_file: Path | None = None, log_file: Path | None = None) -> Starlette:
    """The sandbox app; `log_file`: the request log, read back at start (what was received survives a restart)."""
    from . import acquia, algonomy, tracardi, tracify, webmarketer

    state = SandboxState(state_file, log_file)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def faults(request: Request) -> Response:
        """GET the fault set; POST replaces it (what is not named is off); PATCH changes only what it names."""
        if request.method in ("POST", "PATCH"):
            body = await request.json()
            if not isinstance(body, dict):
                return JSONResponse({"error": "body must be an object of fault settings"}, status_code=400)
            unknown = set(body) - set(asdict(Faults()))
            if unknown:
                return JSONResponse({"error": f"unknown fault settings: {sorted(unknown)}"}, status_code=400)
            base = asdict(state.faults) if request.method == "PATCH" else asdict(Faults())
            state.faults = Faults(**{**base, **body})
        return JSONResponse(asdict(state.faults))

    async def reset(request: Request) -> Response:
        state.faults = Faults()
        state.forget()
        for vendor in state.vendors.values():
            vendor.reset()
        return JSONResponse({"ok": True})

    async def received(request: Request) -> Response:
        vendor = request.query_params.get("vendor")
        items = [r for r in state.received if not vendor or r["vendor"] == vendor]
        return JSONResponse({"count": len(items), "data": items})

    routes = [
        Route("/__sandbox__/health", health),
        Route("/__sandbox__/faults", faults, methods=["GET", "POST", "PATCH"]),
        Route("/__sandbox__/reset", reset, methods=["POST"]),
        Route("/__sandbox__/received", received),
    ]
    for module in (webmarketer, acquia, algonomy, tracardi, tracify):
        vendor = module.Sandbox(state)
        state.vendors[vendor.name] = vendor
        routes += vendor.routes()
        vendor.restore(state.received)
    app = Starlette(routes=routes, exception_handlers={Refusal: refusal_answer})
    app.state.sandbox = state
    return app
