"""Tracardi webhooks in the sandbox: registered event sources and the collector.

Mounted at /tracardi (collector base URL /tracardi/): GET|POST /tracardi/collect/<event_type>/<source_id>
[/<session_id>]. Sources: POST /__sandbox__/tracardi/sources (optional JSON {"source_id", "enabled"});
a disabled source answers 406. Errors as {"detail": …}.
Reference: seeds/tracardi-webhooks.txt.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import Credentials, SandboxState, VendorSandbox, admin_body, json_body

NAME = "tracardi"


def detail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


class Sandbox(VendorSandbox):
    name = NAME

    def __init__(self, state: SandboxState) -> None:
        super().__init__(state)
        self.sources = Credentials(state, "tracardi_sources")  # source id → {"enabled"}

    def reset(self) -> None:
        self.events: list[dict[str, Any]] = []
        # (event type, property) → JSON type first seen: a later different type is a 422 (index mapping).
        self.types: dict[tuple[str, str], str] = {}

    def routes(self) -> list[Route]:
        collect = ["GET", "POST"]
        return [
            Route("/__sandbox__/tracardi/sources", self.source_create, methods=["POST"]),
            Route("/__sandbox__/tracardi/events", self.inspect_events),
            Route("/tracardi/collect/{event_type}/{source_id}", self.collect, methods=collect),
            Route("/tracardi/collect/{event_type}/{source_id}/{session_id}", self.collect, methods=collect),
        ]

    # -- sandbox administration ---------------------------------------------------------------------
    async def source_create(self, request: Request) -> Response:
        """Like creating a webhook event source in the Tracardi GUI."""
        body = await admin_body(request)
        source_id = str(body.get("source_id") or uuid.uuid4())
        if source_id.startswith("@") or "/" in source_id:
            return detail(400, "source ids must not start with @ nor contain /")
        source = {"enabled": bool(body.get("enabled", True))}
        self.sources.add(source_id, source)
        return JSONResponse({"source_id": source_id, **source}, status_code=201)

    async def inspect_events(self, request: Request) -> Response:
        return JSONResponse({"count": len(self.events), "data": self.events})

    # -- the vendor's API ----------------------------------------------------------------------------
    async def collect(self, request: Request) -> Response:
        """200 collected; 401 invalid source; 406 disabled source; 422 bad body or a property type conflict."""
        params = request.path_params
        source = self.sources.get(params["source_id"])
        if params["source_id"].startswith("@") or source is None:
            return self.answer(request, None, detail(401, f"Invalid event source {params['source_id']!r}"))
        if not source["enabled"]:
            return self.answer(request, None, detail(406, "the event source is disabled"))
        properties = await self._properties(request)
        await self.fault_check(request, properties)
        if not isinstance(properties, dict):
            return self.answer(request, properties, detail(422, "event properties must be an object"))
        for name, value in properties.items():
            seen = self.types.setdefault((params["event_type"], name), json_type(value))
            if value is not None and seen != "null" and seen != json_type(value):
                message = f"properties.{name}: type conflict ({json_type(value)} sent, {seen} indexed)"
                return self.answer(request, properties, detail(422, message))
        event_id = str(uuid.uuid4())
        self.events.append(
            {
                "id": event_id,
                "type": params["event_type"],
                "source": params["source_id"],
                "session": params.get("session_id"),
                "method": request.method,
                "properties": properties,
            }
        )
        answer = {"event": {"id": event_id}, "session": {"id": params.get("session_id")}}
        return self.answer(request, properties, JSONResponse(answer))

    async def _properties(self, request: Request) -> Any:
        """The query of a GET, the JSON body of a POST ({} when empty); raises Refusal with 422 (recorded) for a
        body that is not JSON."""
        if request.method == "GET":
            return dict(request.query_params)
        if not (await request.body()).strip():
            return {}
        return await json_body(request, lambda: self.answer(request, None, detail(422, "the body is not JSON")))
