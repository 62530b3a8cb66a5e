"""Acquia CDP webtag tracker: Basic auth → token, a daily bcrypt accessKey, entity lists per call.

Reference: seeds/acquia-cdp-webtag-tracker-api.txt and VENDORS.md (auth flow and subdomains from docs.acquia.com).

Route mapping: {"events": {attribute: path}, "customers": {...}, "transactions": {...},
"transactionitems": {"@items": "data.items", attribute: "item.sku", ...}}; a flat {attribute: path} maps events.
Attribute names are sent as written (case-sensitive). Route options: send_customers, send_transactions
(transactions and their items; only when their numbers match the transaction feed, or revenue doubles).
"""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import bcrypt
import httpx

from . import base
from .base import ConfigurationError, OutgoingEvent, Token, Vendor, VendorRequest, map_fields, rfc3339

# Region → environment → (API subdomain, auth subdomain) of <subdomain>.agilone.com.
SUBDOMAINS = {
    "us-aws": {"preprod": ("cs-api6", "cs-auth"), "prod": ("api6", "auth")},
    "eu-aws": {"preprod": ("cs-api6.eu", "cs-auth.eu"), "prod": ("api6.eu", "auth.eu")},
    "us-gcp": {"preprod": ("cs-gcp-api6", "cs-gcp-auth"), "prod": ("api8", "auth8")},
}
ENTITIES = ("events", "customers", "transactions", "transactionitems")
MAX_PER_ENTITY = 10
ITEMS_KEY = "@items"
# The token's lifetime is not documented; a 401 refreshes it sooner.
TOKEN_LIFETIME = timedelta(hours=12)


def access_key(token: str, day: date) -> str:
    """bcrypt(token + yyyy-MM-dd), 10 rounds, $2a$: the query-string key of that UTC day."""
    # bcrypt only reads 72 bytes (the webtag SDK's bcryptjs truncates silently; bcrypt 5 raises instead).
    secret = (token + day.isoformat()).encode()[:72]
    return bcrypt.hashpw(secret, bcrypt.gensalt(rounds=10, prefix=b"2a")).decode()


def entity_mappings(mapping: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The mapping per entity; flat attributes belong to events."""
    out: dict[str, dict[str, Any]] = {name: {} for name in ENTITIES}
    for key, value in mapping.items():
        if key in ENTITIES and isinstance(value, dict):
            out[key].update(value)
        else:
            out["events"][key] = value
    return out


class Acquia(Vendor):
    kind = "acquia"
    label = "Acquia CDP"
    max_events_per_request = MAX_PER_ENTITY
    required_settings = ("tenant_id",)
    required_secrets = ("username", "password")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keys: dict[tuple[str, date], str] = {}  # bcrypt is slow on purpose: one key per token and day

    @property
    def tenant_id(self) -> str:
        return str(self.settings.get("tenant_id", "")).strip()

    def _subdomains(self) -> tuple[str, str]:
        region = str(self.settings.get("region", "")).strip().lower()
        environment = str(self.settings.get("environment", "")).strip().lower()
        try:
            return SUBDOMAINS[region][environment]
        except KeyError:
            raise ConfigurationError(
                f"Acquia CDP: region must be one of {', '.join(SUBDOMAINS)} and environment preprod or prod "
                f"(got {region or 'nothing'} / {environment or 'nothing'}), unless base and auth URLs are given"
            ) from None

    @property
    def api_base(self) -> str:
        # An explicit base URL (the sandbox, a proxy) wins over the region table.
        if self.base_url.strip("/"):
            return self.base_url
        return f"https://{self._subdomains()[0]}.agilone.com/"

    @property
    def token_url(self) -> str:
        if self.auth_url:
            return (
                self.auth_url if self.auth_url.rstrip("/").endswith("/token") else self.auth_url.rstrip("/") + "/token"
            )
        return f"https://{self._subdomains()[1]}.agilone.com/token"

    def check(self) -> None:
        super().check()
        if not self.tenant_id.isalnum():
            raise ConfigurationError("Acquia CDP: tenant_id must be the tenant's ID (letters and digits, e.g. 999)")
        if not (self.base_url.strip("/") and self.auth_url) or self.settings.get("region"):
            self._subdomains()

    def sensitive(self) -> tuple[str, ...]:
        return super().sensitive() + (self._basic(),)

    def _basic(self) -> str:
        pair = f"{self.secrets.get('username', '')}:{self.secrets.get('password', '')}"
        return base64.b64encode(pair.encode()).decode()

    # Reference: VENDORS.md "accessKey" (docs.acquia.com, webtag authentication): token with Basic auth.
    def token_request(self, now: datetime) -> VendorRequest:
        return VendorRequest(
            "POST",
            self.token_url,
            params={"action": "create", "scheme": "a1webtag"},
            headers={"Authorization": f"Basic {self._basic()}", "Content-Type": "application/json"},
            sensitive=(self._basic(), str(self.secrets.get("password", ""))),
        )

    def parse_token(self, response: httpx.Response, now: datetime) -> Token:
        # The answer's shape is not documented: a JSON object, a JSON string or the bare token.
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text.strip()
        if isinstance(body, dict):
            body = body.get("token") or body.get("access_token") or body.get("accessToken")
        if not isinstance(body, str) or not body.strip():
            raise ValueError("the token endpoint answered without a token")
        return Token(body.strip(), now + TOKEN_LIFETIME)

    def access_key(self, token: str) -> str:
        """Today's key (UTC): a new one after midnight, the cached one otherwise."""
        day = base.utc_now().date()
        key = self._keys.get((token, day))
        if key is None:
            self._keys = {(token, day): (key := access_key(token, day))}
        return key

    # -- events --------------------------------------------------------------------------------------
    def entities(self, event: OutgoingEvent) -> dict[str, list[dict[str, Any]]]:
        """The entity objects of one event, by JSON entity name (events always, others per route options)."""
        maps = entity_mappings(event.mapping)
        row = {"Type": event.vendor_event_name or event.event_type, "EventTimeStamp": rfc3339(event.event_date)}
        out: dict[str, list[dict[str, Any]]] = {"events": [{**row, **map_fields(event, maps["events"])}]}
        if event.options.get("send_customers") and (customer := map_fields(event, maps["customers"])):
            out["customers"] = [customer]
        if event.options.get("send_transactions"):
            if transaction := map_fields(event, maps["transactions"]):
                out["transactions"] = [transaction]
            item_map = dict(maps["transactionitems"])
            items = base.resolve_path(event, item_map.pop(ITEMS_KEY, None))
            rows = [map_fields(event, item_map, item) for item in items or [] if isinstance(item, dict)]
            if rows := [r for r in rows if r]:
                out["transactionitems"] = rows
        return out

    def refusal(self, event: OutgoingEvent) -> str:
        counts = {name: len(rows) for name, rows in self.entities(event).items()}
        if over := [f"{n} {name}" for name, n in counts.items() if n > MAX_PER_ENTITY]:
            return f"Acquia CDP takes at most {MAX_PER_ENTITY} objects per entity in one call; this event has {over[0]}"
        return ""

    def _chunks(self, events: list[OutgoingEvent]) -> list[tuple[list[int], dict[str, list[dict[str, Any]]]]]:
        """Events packed in order into bodies of at most 10 objects per entity."""
        chunks: list[tuple[list[int], dict[str, list[dict[str, Any]]]]] = []
        for event in events:
            rows = self.entities(event)
            if any(len(r) > MAX_PER_ENTITY for r in rows.values()):
                continue
            if not chunks or any(
                len(chunks[-1][1].get(name, [])) + len(r) > MAX_PER_ENTITY for name, r in rows.items()
            ):
                chunks.append(([], {}))
            keys, body = chunks[-1]
            keys.append(event.key)
            for name, r in rows.items():
                body.setdefault(name, []).extend(r)
        return chunks

    # Reference: acquia-cdp-webtag-tracker-api.txt "Endpoint and Payloads".
    def build(self, events: list[OutgoingEvent], token: str | None) -> list[VendorRequest]:
        chunks = self._chunks(events)
        if not chunks:
            return []
        key = self.access_key(token or "")
        url = f"{self.api_base}v2/{quote(self.tenant_id, safe='')}/dw/tracker"
        return [
            VendorRequest(
                "POST",
                url,
                json=body,
                params={"scheme": "a1webtag", "accessKey": key},
                keys=tuple(keys),
                sensitive=(key, token or ""),
            )
            for keys, body in chunks
        ]

    @classmethod
    def validate_mapping(
        cls, event_name: str, mapping: dict[str, Any], options: dict[str, Any] | None = None
    ) -> list[str]:
        problems: list[str] = []
        options = options or {}
        maps = entity_mappings(mapping)
        for name, attributes in maps.items():
            for attribute, path in attributes.items():
                if attribute == ITEMS_KEY and name == "transactionitems":
                    continue
                if not attribute or not attribute.replace("_", "").isalnum():
                    problems.append(f"{name}: {attribute!r} is not an attribute name (case-sensitive, e.g. Email)")
                if isinstance(path, dict | list):
                    problems.append(f"{name}.{attribute}: a path like data.email, or a constant, is expected")
        if "Email" not in maps["events"] and "SourceCustomerNumber" not in maps["events"]:
            problems.append("events: map Email or SourceCustomerNumber, or CDP will not load the events")
        if options.get("send_customers") and not maps["customers"]:
            problems.append("send_customers is on but the mapping has no customers attributes")
        if options.get("send_transactions") and not (maps["transactions"] or maps["transactionitems"]):
            problems.append("send_transactions is on but the mapping has no transactions attributes")
        if maps["transactionitems"] and ITEMS_KEY not in maps["transactionitems"]:
            problems.append(f"transactionitems: name the list of items with {ITEMS_KEY!r}, e.g. data.items")
        if event_name and not event_name[0].islower():
            problems.append("the event Type should be camelCase (e.g. productBrowsed)")
        return problems
