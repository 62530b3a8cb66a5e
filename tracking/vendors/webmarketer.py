"""Webmarketer: service-account JWT → bearer token, then the events API.

Reference: seeds/webmarketer-api-1.0.0.txt and VENDORS.md (auth flow from the official PHP SDK).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .base import ConfigurationError, OutgoingEvent, Result, Token, Vendor, VendorRequest, classify_status

PROJECT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
DEFAULT_AUDIENCE = "https://oauth.webmarketer.io/oidc/token"
SERVICE_ACCOUNT_KEYS = ("privateKey", "privateKeyId", "clientId", "serviceAccountEmail")
# Refresh a token this long before the vendor says it expires.
TOKEN_MARGIN = timedelta(seconds=60)


def rfc3339(value: datetime) -> str:
    """UTC with a Z suffix; milliseconds only when the date has them."""
    value = value.astimezone(UTC)
    timespec = "milliseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")


def service_account(secrets: dict[str, Any]) -> dict[str, str]:
    """The service-account JSON, given as an object or as the downloaded file's text."""
    account = secrets.get("service_account")
    if isinstance(account, str):
        try:
            account = json.loads(account)
        except ValueError:
            raise ConfigurationError("Webmarketer: service_account is not valid JSON") from None
    if not isinstance(account, dict):
        raise ConfigurationError("Webmarketer: the service_account secret (service-account JSON) is missing")
    missing = [k for k in SERVICE_ACCOUNT_KEYS if not account.get(k)]
    if missing:
        raise ConfigurationError(f"Webmarketer: the service account lacks {', '.join(missing)}")
    return account


def event_body(project_id: str, event: OutgoingEvent) -> dict[str, Any]:
    """The body of "Create an event" (pure)."""
    body: dict[str, Any] = {
        "projectId": project_id,
        "eventType": event.vendor_event_name or event.event_type,
        "eventDate": rfc3339(event.event_date),
    }
    if event.tracker_id:
        body["trackerId"] = event.tracker_id
    body["nonce"] = event.nonce
    body["data"] = event.data
    return body


class Webmarketer(Vendor):
    kind = "webmarketer"
    label = "Webmarketer"
    required_settings = ("project_id",)
    required_secrets = ("service_account",)

    @property
    def project_id(self) -> str:
        return self.settings.get("project_id", "")

    def check(self) -> None:
        super().check()
        if not (3 <= len(self.project_id) <= 64 and PROJECT_ID.match(self.project_id)):
            raise ConfigurationError("Webmarketer: project_id must be 3–64 lowercase letters, digits and single dashes")
        account = service_account(self.secrets)
        try:
            key = serialization.load_pem_private_key(account["privateKey"].encode(), password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(
                "Webmarketer: the service account's privateKey is not an RSA private key"
            ) from None

    def sensitive(self) -> tuple[str, ...]:
        try:
            extra: tuple[str, ...] = (service_account(self.secrets)["privateKey"],)
        except ConfigurationError:
            extra = ()
        return super().sensitive() + extra

    # Reference: VENDORS.md "Auth (same SDK)": RS256 JWT bearer grant.
    def token_request(self, now: datetime) -> VendorRequest:
        account = service_account(self.secrets)
        assertion = jwt.encode(
            {
                "iss": account["clientId"],
                "sub": account["serviceAccountEmail"],
                "aud": self.settings.get("token_audience") or DEFAULT_AUDIENCE,
                "scope": "full_access",
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 300,
            },
            account["privateKey"],
            algorithm="RS256",
            headers={"kid": account["privateKeyId"], "typ": "JWT"},
        )
        return VendorRequest(
            "POST",
            self.auth_url or DEFAULT_AUDIENCE,
            form={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "client_id": account["clientId"],
                "assertion": assertion,
            },
            sensitive=(assertion,),
        )

    def parse_token(self, response: httpx.Response, now: datetime) -> Token:
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ValueError("the token endpoint answered without an access_token")
        lifetime = timedelta(seconds=float(body.get("expires_in") or 300))
        return Token(body["access_token"], now + max(lifetime - TOKEN_MARGIN, lifetime / 2))

    # Reference: webmarketer-api-1.0.0.txt "Create an event".
    def build(self, events: list[OutgoingEvent], token: str | None) -> list[VendorRequest]:
        headers = {"Authorization": f"Bearer {token}"}
        return [
            VendorRequest(
                "POST",
                self.base_url + "events",
                json=event_body(self.project_id, event),
                headers=headers,
                keys=(event.key,),
                sensitive=(token or "",),
            )
            for event in events
        ]

    def classify(self, request: VendorRequest, response: httpx.Response) -> Result:
        result = classify_status(response)
        if result.outcome != "delivered":
            return result
        # Ingestion is asynchronous: 200 and the event id as a JSON string, even for an invalid event.
        try:
            event_id = response.json()
        except ValueError:
            event_id = None
        if not isinstance(event_id, str) or not event_id:
            # Not what the docs promise (a proxy page?): send again; the nonce keeps it one event.
            return Result("retry", f"HTTP {response.status_code} without the event id: {response.text[:200]}")
        return Result("delivered", vendor_ref=event_id)
