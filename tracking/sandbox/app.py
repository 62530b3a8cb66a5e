"""Sandbox application: shared state, fault injection and inspection endpoints."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    vendors: list[str] = field(default_factory=list)  # empty: all vendors


class SandboxState:
    def __init__(self, state_file: Path | None = None) -> None:
        self.lock = threading.Lock()
        self.state_file = state_file
        self.faults = Faults()
        self.received: list[dict[str, Any]] = []
        self.vendors: dict[str, Any] = {}
        self.persisted: dict[str, Any] = {}
        if state_file and state_file.exists():
            self.persisted = json.loads(state_file.read_text())

    def save(self) -> None:
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.persisted, indent=1))
            tmp.replace(self.state_file)

    def record(self, vendor: str, request: Request, body: Any, status: int) -> None:
        self.received.append(
            {
                "vendor": vendor,
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "body": body,
                "status": status,
                "at": datetime.now(UTC).isoformat(),
            }
        )


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
        return json_error(faults.fail_status, "injected permanent failure")
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


def create_app(state_file: Path | None = None) -> Starlette:
    from . import acquia, algonomy, tracardi, tracify, webmarketer

    state = SandboxState(state_file)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            unknown = set(body) - set(asdict(Faults()))
            if unknown:
                return JSONResponse({"error": f"unknown fault settings: {sorted(unknown)}"}, status_code=400)
            state.faults = Faults(**{**asdict(Faults()), **body})
        return JSONResponse(asdict(state.faults))

    async def reset(request: Request) -> Response:
        state.faults = Faults()
        state.received.clear()
        for vendor in state.vendors.values():
            vendor.reset()
        return JSONResponse({"ok": True})

    async def received(request: Request) -> Response:
        vendor = request.query_params.get("vendor")
        items = [r for r in state.received if not vendor or r["vendor"] == vendor]
        return JSONResponse({"count": len(items), "data": items})

    routes = [
        Route("/__sandbox__/health", health),
        Route("/__sandbox__/faults", faults, methods=["GET", "POST"]),
        Route("/__sandbox__/reset", reset, methods=["POST"]),
        Route("/__sandbox__/received", received),
    ]
    for module in (webmarketer, acquia, algonomy, tracardi, tracify):
        vendor = module.Sandbox(state)
        state.vendors[module.NAME] = vendor
        routes += vendor.routes()
    app = Starlette(routes=routes)
    app.state.sandbox = state
    return app
