"""The demo data of `make run`: roles, event types shaped like Webmarketer's, a sandbox connection."""

from __future__ import annotations

from pathlib import Path

import yaml


def sandbox_egress_allow(sandbox_url: str, current: list[str] | str = "") -> list[str]:
    """HUB_EGRESS_ALLOW with the demo's sandbox added (its host and port only, e.g. 127.0.0.1:8765): the
    sandbox listens on loopback, which the hub refuses to send to unless the setting names it."""
    from urllib.parse import urlsplit

    entries = [e.strip() for e in (current.split(",") if isinstance(current, str) else current) if e.strip()]
    parts = urlsplit(sandbox_url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    entry = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    return entries if entry in entries else [*entries, entry]


# The demo's configuration is a file that seed_demo applies (demo/hub.yaml); the tests read its event types and the
# purchase routes from here.
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "demo" / "hub.yaml"
# The sandbox address the file is written for: seed_demo puts the running sandbox's in its place.
DEMO_SANDBOX_URL = "http://127.0.0.1:8765"


def _config() -> dict:
    return yaml.safe_load(DEMO_CONFIG.read_text())


EVENT_TYPES: list[dict] = [
    {k: v for k, v in item.items() if k not in ("archived", "expiration_policy") or v}
    for item in _config()["event_types"]
]
PHONE_CONFIG = next(e for e in EVENT_TYPES if e["reference"] == "contact-form")["phone_parsing_config"]

PEOPLE = [("John", "Locke"), ("Kate", "Austen"), ("Jack", "Shephard"), ("Hugo", "Reyes"), ("Sun", "Kwon")]

# -- the demo's purchase: one event type routed to all five vendors -----------------------------------------
# Route of "purchase" per vendor kind: (vendor event name, mapping, options), as demo/hub.yaml gives them.
PURCHASE_ROUTES: dict[str, tuple[str, dict, dict]] = {
    route["connection"].removesuffix("-sandbox"): (route["vendor_event_name"], route["mapping"], route["options"])
    for route in _config()["routes"]
    if route["event_type"] == "purchase" and route["connection"] != "webmarketer-sandbox"
}

PRODUCTS = [
    {"productId": "814", "name": "Trail shoes", "productBasePrice": 89.9},
    {"productId": "233", "name": "Rain jacket", "productBasePrice": 129.0},
    {"productId": "57", "name": "Wool socks", "productBasePrice": 12.5},
]


def purchase_data(first: str, last: str, n: int, quantities: tuple[int, ...] = (1, 0, 2)) -> dict:
    """A purchase as a shop backend would post it: what all five vendors need (order, buyer, visit, cart)."""
    email = f"{first}.{last}@example.com".lower()
    items = [{**p, "quantity": q} for p, q in zip(PRODUCTS, quantities, strict=False) if q]
    return {
        "email": email,
        "first_name": first,
        "last_name": last,
        "amount": round(sum(i["productBasePrice"] * i["quantity"] for i in items), 2),
        "currency": "EUR",
        "order_id": f"ORD-{1000 + n}",
        # Derived from the email, the same on every run (the built-in hash() is salted per process).
        "customer_number": f"C-{sum(ord(c) * (i + 1) for i, c in enumerate(email)) % 100000:05d}",
        "payment": "card",
        "url": "https://shop.example.com/checkout/thank-you?utm_source=newsletter&utm_medium=email",
        "ip": f"203.0.113.{n % 250 + 1}",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "session": f"sess-{n:04d}",
        "items": items,
        "address": {
            "firstName": first,
            "lastName": last,
            "line1": "4 Rue de la Paix",
            "cityCode": "Paris",
            "zip": "75002",
            "countryCode": "FR",
            "emailAddress": email,
        },
    }
