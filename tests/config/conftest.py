"""A staging hub with one connection of each vendor kind, routes and sources, made through the services (not the
configuration file), and the secrets an operator would hold in the environment for it."""

from __future__ import annotations

import json

import pytest

from tests.factories import CONTACT_FORM, PURCHASE, event_type_make, service_account_make
from tracking.demo import PURCHASE_ROUTES
from tracking.models import VendorConnection
from tracking.services.connections import connection_create
from tracking.services.ingest import source_create
from tracking.services.routes import route_create

SECRETS = {
    "wm-staging": {"service_account": service_account_make()},
    "acquia-eu": {"username": "webtag-user", "password": "acquia-pa55word-xyz"},
    "algonomy-us": {"client_id": "client-42", "client_secret": "algonomy-s3cret-value"},
    "tracardi-self": {},
    "tracify-shop": {"api_key": "tracify-api-key-0123456789"},
}


def staging_hub() -> dict[str, str]:
    """Builds the staging configuration; returns the environment holding its secrets (as export names them)."""
    contact, purchase = event_type_make(CONTACT_FORM), event_type_make(PURCHASE)
    connections = {
        "wm-staging": connection_create(
            kind="webmarketer",
            name="wm-staging",
            base_url="https://api.webmarketer.io/api/v1/",
            auth_url="https://oauth.webmarketer.io/oidc/token",
            settings={"project_id": "shop-staging"},
            secrets=SECRETS["wm-staging"],
        ),
        "acquia-eu": connection_create(
            kind="acquia",
            name="acquia-eu",
            base_url="https://cs-api6.eu.agilone.com/",
            auth_url="https://cs-auth.eu.agilone.com/token",
            settings={"tenant_id": "999", "region": "eu-aws", "environment": "preprod"},
            secrets=SECRETS["acquia-eu"],
        ),
        "algonomy-us": connection_create(
            kind="algonomy",
            name="algonomy-us",
            base_url="https://sandbox.algonomy.com/",
            auth_url="https://rcdp-us.algonomy.com",
            settings={"tenant_hash": "ABC123", "src_id": "WBSTR", "src_type": "Website"},
            secrets=SECRETS["algonomy-us"],
            timeout_seconds=5.0,
        ),
        "tracardi-self": connection_create(
            kind="tracardi",
            name="tracardi-self",
            base_url="https://tracardi.example.com:8686/",
            settings={"source_id": "web-source"},
            max_rate=20.0,
        ),
        "tracify-shop": connection_create(
            kind="tracify",
            name="tracify-shop",
            base_url="https://api.tracify.ai/",
            settings={"customer_site_id": "csid-1"},
            secrets=SECRETS["tracify-shop"],
            enabled=False,
        ),
    }
    route_create(event_type=contact, connection=connections["wm-staging"])
    route_create(event_type=purchase, connection=connections["wm-staging"], enabled=False)
    for kind, name in (("acquia", "acquia-eu"), ("algonomy", "algonomy-us"), ("tracardi", "tracardi-self"),
                       ("tracify", "tracify-shop")):  # fmt: skip
        vendor_event_name, mapping, options = PURCHASE_ROUTES[kind]
        route_create(
            event_type=purchase,
            connection=connections[name],
            vendor_event_name=vendor_event_name,
            mapping=mapping,
            options=options,
        )
    source_create(name="website")
    source_create(name="crm")
    return secrets_environ()


def secrets_environ() -> dict[str, str]:
    """The secrets as the export names them (CONNECTION_KEY), JSON documents as text."""
    env = {}
    for name, secrets in SECRETS.items():
        for key, value in secrets.items():
            env[f"{name}_{key}".upper().replace("-", "_")] = value if isinstance(value, str) else json.dumps(value)
    return env


@pytest.fixture
def staging(db) -> dict[str, str]:
    return staging_hub()


def stored_secrets() -> dict[str, dict]:
    return {c.name: c.secrets for c in VendorConnection.objects.order_by("name")}
