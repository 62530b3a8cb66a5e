"""The demo data of `make run`: roles, event types shaped like Webmarketer's, a sandbox connection."""

from __future__ import annotations

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
