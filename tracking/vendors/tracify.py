"""Tracify server-side events: batched events, identities hashed with the seed's calcGroup, no raw PII.

Reference: seeds/tracify-server-side-events-api.txt and VENDORS.md.

Route mapping (each optional, default in DEFAULT_MAPPING): url, email, ip, user_agent, origin, referer,
order_id, conversion_id, currency, amount, items (a list), url_parameters (an object), and item_name,
item_amount, item_quantity (paths inside one item, e.g. "item.title").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from .base import ConfigurationError, OutgoingEvent, Result, Vendor, VendorRequest, classify_status, resolve_path

TYPES = ("pageview", "productview", "addtocart", "purchase", "conversion")
# Reference: "data" table: what purchase and conversion events require.
REQUIRED = {"purchase": ("order_id", "currency", "amount"), "conversion": ("conversion_id", "currency", "amount")}
DEFAULT_MAPPING = {
    "url": "data.url",
    "email": "data.email",
    "ip": "data.ip",
    "user_agent": "data.user_agent",
    "origin": "data.origin",
    "referer": "data.referer",
    "order_id": "data.order_id",
    "conversion_id": "data.conversion_id",
    "currency": "data.currency",
    "amount": "data.amount",
    "items": "data.items",
    "url_parameters": "data.url_parameters",
    "item_name": "item.name",
    "item_amount": "item.amount",
    "item_quantity": "item.quantity",
}
# Only campaign parameters are copied from the URL: other parameters may carry PII (?email=…).
URL_PARAMETER = re.compile(r"^(utm|trc)_[a-z0-9_]+$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


def calc_group(value: str) -> str:
    """The seed's Python calcGroup: sha256 hex, drop the last 5 characters, sha256 hex again."""
    digest = hashlib.sha256(value.encode()).hexdigest()
    return hashlib.sha256(digest[:-5].encode()).hexdigest()


def identity_data(*, email: str | None, ip: str, user_agent: str) -> dict[str, int]:
    """Hashed identities → type: 1 email, 2 session ("IP|User-Agent"), 3 IP, 4 User-Agent."""
    out: dict[str, int] = {}
    if email:
        # Normalised so that one address hashes the same whatever the case it was typed in.
        out[calc_group(email.strip().lower())] = 1
    out[calc_group(f"{ip}|{user_agent}")] = 2
    out[calc_group(ip)] = 3
    out[calc_group(user_agent)] = 4
    return out


def text(value: Any) -> str:
    """A number as the examples write them ("25", "2", "12.5"); text as it is."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
        return str(number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize())
    return str(value).strip()


def money(value: Any) -> str:
    """An amount with two decimals, as in the examples ("100.00"); kept as given when not a number."""
    try:
        return f"{Decimal(str(value).strip()):.2f}"
    except InvalidOperation:
        return str(value).strip()


class Tracify(Vendor):
    kind = "tracify"
    label = "Tracify"
    # Reference: "Supported Events": "Events may be sent individually or in batches" (the seed names no limit:
    # a hundred keeps a request well under common body limits; events_per_request lowers it per connection).
    max_events_per_request = 100
    required_settings = ("customer_site_id",)
    required_secrets = ("api_key",)

    def check(self) -> None:
        super().check()
        if not str(self.secrets["api_key"]).isprintable() or " " in str(self.secrets["api_key"]):
            raise ConfigurationError("Tracify: api_key must be the key as given, without spaces or line breaks")
        self.events_per_request()

    def events_per_request(self) -> int:
        """Events in one request: the connection's events_per_request setting (1 to max_events_per_request), for an
        account whose limit is lower; else max_events_per_request."""
        value = self.settings.get("events_per_request")
        if value in (None, ""):
            return self.max_events_per_request
        try:
            size = int(str(value).strip())
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_events_per_request:
            raise ConfigurationError(
                f"Tracify: events_per_request must be a whole number from 1 to {self.max_events_per_request}"
            )
        return size

    def values(self, event: OutgoingEvent) -> dict[str, Any]:
        """The route's mapping (over the defaults) resolved on this event; blank values left out."""
        mapping = {**DEFAULT_MAPPING, **event.mapping}
        out = {}
        for name, path in mapping.items():
            if name.startswith("item_"):
                continue
            value = resolve_path(event, path)
            if value not in (None, "", [], {}):
                out[name] = value
        return out

    def event_type(self, event: OutgoingEvent) -> str:
        return (event.vendor_event_name or event.event_type).strip().lower()

    def refusal(self, event: OutgoingEvent) -> str:
        kind = self.event_type(event)
        if kind not in TYPES:
            return f"Tracify has no event type {kind!r} (known: {', '.join(TYPES)})"
        values = self.values(event)
        missing = [n for n in ("ip", "user_agent", *REQUIRED.get(kind, ())) if n not in values]
        if "origin" not in values and not urlsplit(str(values.get("url", ""))).netloc:
            missing.append("origin (or a full url)")
        if missing:
            return f"Tracify {kind}: required values missing: {', '.join(missing)}"
        if "currency" in values and not CURRENCY.match(str(values["currency"]).strip().upper()):
            return f"Tracify {kind}: currency must be a 3-letter ISO-4217 code, not {values['currency']!r}"
        return ""

    def event_body(self, event: OutgoingEvent) -> dict[str, Any]:
        """One element of the events list (pure)."""
        kind, values = self.event_type(event), self.values(event)
        url = str(values.get("url", ""))
        parts = urlsplit(url)
        data: dict[str, Any] = {}
        if "referer" in values:
            data["Referer"] = str(values["referer"])
        data["origin"] = str(values.get("origin") or f"{parts.scheme}://{parts.netloc}")
        # "Required for first session event": the hub cannot tell which is first, so it always sends them.
        data.update({k: v for k, v in parse_qsl(parts.query) if URL_PARAMETER.match(k)})
        if isinstance(values.get("url_parameters"), dict):
            data.update({str(k): text(v) for k, v in values["url_parameters"].items()})
        if kind in REQUIRED:
            data[REQUIRED[kind][0]] = text(values[REQUIRED[kind][0]])
            data["currency"] = str(values["currency"]).strip().upper()
            data["amount"] = money(values["amount"])
        if kind == "purchase" and isinstance(values.get("items"), list):
            item_map = {**DEFAULT_MAPPING, **event.mapping}
            items = [i for i in values["items"] if isinstance(i, dict)]
            for n, item in enumerate(items, start=1):
                for prefix, name in (("ITEM", "item_name"), ("AMT", "item_amount"), ("QTY", "item_quantity")):
                    value = resolve_path(event, item_map[name], item)
                    if value not in (None, ""):
                        data[f"{prefix}{n}"] = text(value)
        body: dict[str, Any] = {}
        if url:
            body["url"] = url
        body["customer_site_id"] = str(self.settings.get("customer_site_id", ""))
        body["identity_data"] = identity_data(
            email=str(values["email"]) if "email" in values else None,
            ip=str(values["ip"]).strip(),
            user_agent=str(values["user_agent"]).strip(),
        )
        body["datetime"] = event.event_date.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        body["type"] = kind
        body["data"] = data
        return body

    # Reference: tracify-server-side-events-api.txt "Example Payloads" and "API Specification".
    def build(self, events: list[OutgoingEvent], token: str | None) -> list[VendorRequest]:
        sendable = self.sendable(events)
        size = self.events_per_request()
        api_key = str(self.secrets.get("api_key", ""))
        requests = []
        for batch in (sendable[i : i + size] for i in range(0, len(sendable), size)):
            bodies = {e.key: self.event_body(e) for e in batch}
            requests.append(
                VendorRequest(
                    "POST",
                    self.base_url + "api/v1/events",
                    json={"events": list(bodies.values())},
                    headers={"tracify-token": api_key},
                    keys=tuple(bodies),
                    sensitive=(api_key,),
                    # Each delivery's attempt records its own event, in the request's shape.
                    parts={key: {"events": [body]} for key, body in bodies.items()},
                )
            )
        return requests

    def classify(self, request: VendorRequest, response: httpx.Response) -> Result:
        # A fixed API key, no token to refresh: a 401 is final.
        return replace(classify_status(response), auth_expired=False)

    @classmethod
    def received_sources(cls, mapping: dict[str, Any]) -> list[str]:
        # The defaults fill every entry the route does not map; email, ip and user_agent leave only hashed.
        return super().received_sources({**DEFAULT_MAPPING, **mapping})

    @classmethod
    def validate_mapping(
        cls, event_name: str, mapping: dict[str, Any], options: dict[str, Any] | None = None
    ) -> list[str]:
        known = ", ".join(DEFAULT_MAPPING)
        problems = [f"{k!r} is not a Tracify mapping entry ({known})" for k in mapping if k not in DEFAULT_MAPPING]
        if event_name.strip().lower() not in TYPES:
            problems.append(f"{event_name!r} is not a Tracify event type ({', '.join(TYPES)})")
        return problems
