"""Tracardi webhooks: one call per event to the collector, properties as a JSON body or a query string.

Reference: seeds/tracardi-webhooks.txt.

Route mapping: {"session_id": "data.session"} puts the event on that session (profile recreated); other
entries (property → path) choose the properties, and only those are sent ({"*": "data"}: all of the event's data).
Route options:
{"method": "POST" | "GET"} (POST by default).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

from .base import ConfigurationError, OutgoingEvent, Result, Vendor, VendorRequest, classify_status, map_fields
from .base import resolve_path as resolve

SESSION_KEY = "session_id"
# {"*": "data"}: every key of the event's data as a property (what routes without a mapping sent before issue 15).
ALL_KEY = "*"
METHODS = ("POST", "GET")


def query_value(value: Any) -> str:
    """A property as query text: strings as they are, booleans as true/false, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Tracardi(Vendor):
    kind = "tracardi"
    label = "Tracardi"
    required_settings = ("source_id",)

    @property
    def source_id(self) -> str:
        return str(self.settings.get("source_id", "")).strip()

    def check(self) -> None:
        super().check()
        if self.source_id.startswith("@"):
            raise ConfigurationError("Tracardi: source ids starting with @ are internal and rejected by the collector")
        if "/" in self.source_id:
            raise ConfigurationError("Tracardi: source_id must not contain a slash")

    def method(self, event: OutgoingEvent) -> str:
        return str(event.options.get("method") or "POST").upper()

    def properties(self, event: OutgoingEvent) -> dict[str, Any]:
        """The mapped properties only (data minimisation); "*" spreads an object of the event (e.g. "data")."""
        mapping = {k: v for k, v in event.mapping.items() if k not in (SESSION_KEY, ALL_KEY)}
        spread = resolve(event, event.mapping[ALL_KEY]) if ALL_KEY in event.mapping else None
        return {**(spread if isinstance(spread, dict) else {}), **map_fields(event, mapping)}

    def refusal(self, event: OutgoingEvent) -> str:
        if self.method(event) not in METHODS:
            return f"Tracardi: the route's method must be GET or POST, not {event.options.get('method')!r}"
        return ""

    # Reference: tracardi-webhooks.txt "Available Webhooks".
    def build(self, events: list[OutgoingEvent], token: str | None) -> list[VendorRequest]:
        requests = []
        for event in self.sendable(events):
            event_type = event.vendor_event_name or event.event_type
            url = f"{self.base_url}collect/{quote(event_type, safe='')}/{quote(self.source_id, safe='')}"
            session = resolve(event, event.mapping.get(SESSION_KEY)) if SESSION_KEY in event.mapping else None
            if session not in (None, ""):
                url += "/" + quote(str(session), safe="")
            properties = self.properties(event)
            if self.method(event) == "GET":
                params = {k: query_value(v) for k, v in properties.items()}
                requests.append(VendorRequest("GET", url, params=params, keys=(event.key,)))
            else:
                requests.append(VendorRequest("POST", url, json=properties, keys=(event.key,)))
        return requests

    def classify(self, request: VendorRequest, response: httpx.Response) -> Result:
        # Errors come as {"detail": ...}: 401 invalid source, 406, 422 permanent; 500 retried. No token to
        # refresh: a 401 is final.
        return replace(classify_status(response), auth_expired=False)

    @classmethod
    def validate_mapping(
        cls, event_name: str, mapping: dict[str, Any], options: dict[str, Any] | None = None
    ) -> list[str]:
        problems = []
        method = str((options or {}).get("method") or "POST").upper()
        if method not in METHODS:
            problems.append(f"option method must be GET or POST, not {method!r}")
        if "/" in event_name:
            problems.append("the event type must not contain a slash (it is a path segment)")
        session = mapping.get(SESSION_KEY)
        if session is not None and (not isinstance(session, str) or session.startswith("=")):
            problems.append("session_id must name a path of the event, e.g. data.session")
        return problems
