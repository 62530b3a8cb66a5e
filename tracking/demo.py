"""The demo data of `make run`: roles, event types shaped like Webmarketer's, a sandbox connection."""

from __future__ import annotations


def sandbox_egress_allow(sandbox_url: str, current: list[str] | str = "") -> list[str]:
    """HUB_EGRESS_ALLOW with the demo's sandbox added (its host and port only, e.g. 127.0.0.1:8765): the
    sandbox listens on loopback, which the hub refuses to send to unless the setting names it."""
    from urllib.parse import urlsplit

    entries = [e.strip() for e in (current.split(",") if isinstance(current, str) else current) if e.strip()]
    parts = urlsplit(sandbox_url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    entry = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    return entries if entry in entries else [*entries, entry]


FIELD_DEFAULTS = {"discriminant": False, "isPii": False, "isMostProbableLocation": False, "optional": False}


def _field(key: str, type_: str, entity: str = "event", **extra) -> dict:
    return {"type": type_, "entity": entity, "storageKey": key, "ingestionKey": key, **FIELD_DEFAULTS, **extra}


PHONE_CONFIG = [{"order": 1, "countryCode": "FR"}, {"order": 2, "countryCode": "BE"}]

EVENT_TYPES = [
    {
        "reference": "contact-form",
        "name": "Generic Contact form",
        "fields": [
            _field("email", "email", "user", discriminant=True, isPii=True),
            _field("first_name", "string", "user", isPii=True, optional=True),
            _field("last_name", "string", "user", isPii=True, optional=True),
            _field("phone", "phone", "user", isPii=True, optional=True),
            _field("message", "message"),
            _field("qualified", "boolean", "state", optional=True),
            _field("converted", "boolean", "state", optional=True),
            _field("turnover", "number", "statistic", optional=True),
        ],
        "metadata": {"form": "webmarketer"},
        "phone_parsing_config": PHONE_CONFIG,
    },
    {
        "reference": "call-me-back",
        "name": "Call me back",
        "fields": [
            _field("phone", "phone", "user", discriminant=True, isPii=True),
            _field("first_name", "string", "user", isPii=True, optional=True),
            _field("location", "location", "user", isMostProbableLocation=True, optional=True),
            _field("qualified", "boolean", "state", optional=True),
            _field("converted", "boolean", "state", optional=True),
            _field("turnover", "number", "statistic", optional=True),
        ],
        "phone_parsing_config": PHONE_CONFIG,
    },
    {
        "reference": "purchase",
        "name": "Purchase",
        "fields": [
            _field("email", "email", "user", discriminant=True, isPii=True),
            _field("first_name", "string", "user", isPii=True, optional=True),
            _field("last_name", "string", "user", isPii=True, optional=True),
            _field("amount", "number"),
            _field("currency", "currency"),
        ],
    },
]

PEOPLE = [("John", "Locke"), ("Kate", "Austen"), ("Jack", "Shephard"), ("Hugo", "Reyes"), ("Sun", "Kwon")]

# -- the demo's purchase: one event type routed to all five vendors -----------------------------------------
# Route of "purchase" per vendor kind: (vendor event name, mapping, options). Checked by the vendor modules'
# validate_mapping when the demo creates them, like a route saved in the console.
PURCHASE_ROUTES: dict[str, tuple[str, dict, dict]] = {
    "acquia": (
        "purchase",
        {
            "events": {"Email": "data.email", "SourceCustomerNumber": "data.customer_number", "Cookie": "trackerId"},
            "customers": {
                "SourceCustomerNumber": "data.customer_number",
                "EmailAddress1": "data.email",
                "FirstName": "data.first_name",
                "LastName": "data.last_name",
            },
        },
        # Transactions stay off: the demo has no transaction feed for their numbers to match.
        {"send_customers": True, "send_transactions": False},
    ),
    "algonomy": (
        "eventTransactionComplete",
        {
            "customer.email": "data.email",
            "customer.customerCode": "data.customer_number",
            "session.sessionId": "data.session",
            "page.url": "data.url",
            "eventData.transactionId": "data.order_id",
            "eventData.orderId": "data.order_id",
            "eventData.tenderType": "data.payment",
            "eventData.totalPrice": "data.amount",
            "eventData.cartProducts": "data.items",
            "eventData.billingInfo": "data.address",
            "eventData.shippingInfo": "data.address",
        },
        {},
    ),
    "tracardi": (
        "",
        {
            "session_id": "data.session",
            "order_id": "data.order_id",
            "amount": "data.amount",
            "currency": "data.currency",
            "email": "data.email",
        },
        {"method": "POST"},
    ),
    # The other Tracify entries (url, email, ip, user_agent, order_id, currency, amount, items) use the defaults.
    "tracify": (
        "purchase",
        {"item_name": "item.name", "item_amount": "item.productBasePrice", "item_quantity": "item.quantity"},
        {},
    ),
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
