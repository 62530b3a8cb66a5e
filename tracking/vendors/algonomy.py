"""Algonomy rCDP direct API: OAuth 2.0 client credentials, one POST per event, required fields checked first.

Reference: seeds/algonomy-rcdp-direct-api.txt.

Route mapping: body path → source path, e.g. {"customer.email": "data.email", "session.sessionId":
"data.session", "page.url": "data.url", "eventData.transactionId": "data.order_id"} or whole objects
{"eventData": "data.checkout"} ({"eventData": "data"}: all of the event's data). Without any eventData entry the
eventData is {} (data minimisation: a vendor receives only what its route maps).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from . import base
from .base import (
    ConfigurationError,
    OutgoingEvent,
    Token,
    Vendor,
    VendorRequest,
    is_blank,
    map_fields,
    oauth_token,
)

# Reference: algonomy-rcdp-direct-api.txt "Complete API Event Reference": the required eventData fields
# ("list[].field": required in every element of that list).
REQUIRED_EVENT_DATA: dict[str, tuple[str, ...]] = {
    "eventHomePage": (),
    "eventSearch": ("searchFacet", "searchString", "searchResults"),
    "eventCategory": ("categoryId",),
    "eventProduct": ("productId", "price"),
    "eventAddToCart": ("productId", "price", "quantity"),
    "eventCartItemEdit": (
        "cartId",
        "cartProducts",
        "cartProducts[].productId",
        "cartProducts[].action",
        "cartProducts[].quantity",
        "cartProducts[].productBasePrice",
    ),
    "eventCheckout": ("transactionId", "tenderType", "totalPrice", "cartProducts", "billingInfo", "shippingInfo"),
    "eventTransactionComplete": (
        "transactionId",
        "orderId",
        "tenderType",
        "totalPrice",
        "cartProducts",
        "billingInfo",
        "shippingInfo",
    ),
    "eventTransactionFailure": ("orderId", "errorCode"),
    "eventCustomerCreate": ("customerCode", "customerEmailId", "firstName", "lastName"),
    "eventLogin": ("customerCode",),
    "eventUpdateProfile": ("customerCode",),
    "eventLogout": (),
    "eventForgotPassword": ("customerEmailId",),
    "eventShareWishlist": ("wishlistId",),
}
# Reference: "Common Fields": the objects and values a mapping may fill (the rest the hub sets).
MAPPABLE_ROOTS = frozenset(
    {"customer", "session", "page", "utm", "userAgent", "eventData", "storeId", "eventDateTime", "clientCorrelatorId"}
)


def missing_fields(event_name: str, event_data: dict[str, Any]) -> list[str]:
    """The required eventData fields this event lacks (the seed's tables)."""
    missing = []
    for field in REQUIRED_EVENT_DATA.get(event_name, ()):
        name, _, sub = field.partition("[].")
        if not sub:
            if is_blank(event_data.get(name)):
                missing.append(name)
            continue
        rows = event_data.get(name)
        for i, row in enumerate(rows if isinstance(rows, list) else []):
            if not isinstance(row, dict) or is_blank(row.get(sub)):
                missing.append(f"{name}[{i}].{sub}")
    return missing


def event_date_time(value: datetime) -> str:
    """ "yyyy-MM-dd HH:mm:ss" in UTC (the common fields table)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class Algonomy(Vendor):
    kind = "algonomy"
    label = "Algonomy rCDP"
    required_settings = ("tenant_hash", "src_id", "src_type")
    required_secrets = ("client_id", "client_secret")

    def check(self) -> None:
        super().check()
        if not self.auth_url:
            raise ConfigurationError(
                "Algonomy rCDP: the auth URL (e.g. https://rcdp-us.algonomy.com) is missing: tokens come from "
                "its /oauth/token"
            )
        if "/" in str(self.settings["tenant_hash"]):
            raise ConfigurationError("Algonomy rCDP: tenant_hash is the hash from onboarding, without slashes")

    @property
    def token_url(self) -> str:
        url = self.auth_url.rstrip("/")
        return url if url.endswith("/oauth/token") else url + "/oauth/token"

    # Reference: algonomy-rcdp-direct-api.txt "OAuth 2.0 Authentication".
    def token_request(self, now: datetime) -> VendorRequest:
        return VendorRequest(
            "POST",
            self.token_url,
            form={
                "grant_type": "client_credentials",
                "client_id": str(self.secrets.get("client_id", "")),
                "client_secret": str(self.secrets.get("client_secret", "")),
            },
            sensitive=(str(self.secrets.get("client_secret", "")),),
        )

    def parse_token(self, response: httpx.Response, now: datetime) -> Token:
        return oauth_token(response, now)

    # -- events --------------------------------------------------------------------------------------
    def body(self, event: OutgoingEvent) -> dict[str, Any]:
        """The request body of one event: common fields, mapped context objects and eventData."""
        mapped = map_fields(event, event.mapping)
        if not any(k == "eventData" or k.startswith("eventData.") for k in event.mapping):
            # Data minimisation: only what is mapped leaves the hub; the document's examples send {} (eventHomePage).
            mapped["eventData"] = {}
        body: dict[str, Any] = {
            "srcId": self.settings.get("src_id"),
            "srcType": self.settings.get("src_type"),
            "requestTime": int(base.utc_now().timestamp() * 1000),
            # The nonce correlates retries and replays of one event on both sides.
            "clientCorrelatorId": event.nonce,
            "eventDateTime": event_date_time(event.event_date),
        }
        for setting, name in (("site_hash", "siteHash"), ("sdk_version", "sdkVersion"), ("store_id", "storeId")):
            if self.settings.get(setting):
                body[name] = self.settings[setting]
        body.update({k: v for k, v in mapped.items() if k in MAPPABLE_ROOTS})
        body.setdefault("customer", {})
        body.setdefault("eventData", {})
        return body

    def event_name(self, event: OutgoingEvent) -> str:
        return event.vendor_event_name or event.event_type

    def refusal(self, event: OutgoingEvent) -> str:
        name = self.event_name(event)
        if name not in REQUIRED_EVENT_DATA:
            return f"Algonomy rCDP has no event named {name!r} (known: {', '.join(REQUIRED_EVENT_DATA)})"
        body = self.body(event)
        if not isinstance(body["customer"], dict) or not body["customer"]:
            return f"Algonomy {name}: customer is required (map customer.email or customer.customerCode)"
        if not isinstance(body["eventData"], dict):
            return f"Algonomy {name}: eventData must be an object"
        if missing := missing_fields(name, body["eventData"]):
            return f"Algonomy {name}: required eventData fields missing: {', '.join(missing)}"
        return ""

    # Reference: algonomy-rcdp-direct-api.txt "API Endpoint" and "Payload Structure".
    def build(self, events: list[OutgoingEvent], token: str | None) -> list[VendorRequest]:
        tenant = quote(str(self.settings.get("tenant_hash", "")), safe="")
        return [
            VendorRequest(
                "POST",
                f"{self.base_url}callback/rest/events/{tenant}/{quote(self.event_name(event), safe='')}",
                json=self.body(event),
                headers={"Authorization": f"Bearer {token}"},
                keys=(event.key,),
                sensitive=(token or "",),
            )
            for event in self.sendable(events)
        ]

    @classmethod
    def validate_mapping(
        cls, event_name: str, mapping: dict[str, Any], options: dict[str, Any] | None = None
    ) -> list[str]:
        if event_name not in REQUIRED_EVENT_DATA:
            return [f"{event_name!r} is not an Algonomy event name (known: {', '.join(REQUIRED_EVENT_DATA)})"]
        problems = [
            f"{key!r} is not a body field the hub lets routes set ({', '.join(sorted(MAPPABLE_ROOTS))})"
            for key in mapping
            if key.split(".")[0] not in MAPPABLE_ROOTS
        ]
        if not any(k == "customer" or k.startswith("customer.") for k in mapping):
            problems.append("map the customer (customer.email or customer.customerCode): Algonomy requires it")
        # A whole eventData object (or none: the event's data) is checked per event, when sent.
        if any(k.startswith("eventData.") for k in mapping) and "eventData" not in mapping:
            mapped = {k.split(".")[1] for k in mapping if k.startswith("eventData.")}
            required = {f.split("[]")[0] for f in REQUIRED_EVENT_DATA[event_name]}
            problems += [
                f"eventData.{f} is required for {event_name} but not mapped" for f in sorted(required - mapped)
            ]
        return problems
