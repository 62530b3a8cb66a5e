"""Test data in one place."""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import Group, User
from django.utils import timezone

from tracking.demo import EVENT_TYPES
from tracking.models import Delivery, Event, EventType, Route, VendorConnection
from tracking.services.delivery import connection_dispatch
from tracking.services.ingest import source_create

CONTACT_FORM = next(e for e in EVENT_TYPES if e["reference"] == "contact-form")
PURCHASE = next(e for e in EVENT_TYPES if e["reference"] == "purchase")


def service_account_make() -> dict[str, str]:
    """A Webmarketer service account with a fresh RSA key (unknown to any sandbox)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "privateKey": pem,
        "privateKeyId": "kid-1",
        "clientId": "client-1",
        "serviceAccountEmail": "hub@example.webmarketer.io",
    }


def event_type_make(spec: dict = CONTACT_FORM, **overrides) -> EventType:
    fields = {k: v for k, v in spec.items() if k != "reference"}
    return EventType.objects.create(reference=spec["reference"], **{**fields, **overrides})


def webmarketer_connection_make(
    *,
    base_url="https://api.webmarketer.io/api/v1/",
    auth_url="https://oauth.webmarketer.io/oidc/token",
    service_account: dict | None = None,
    **options,
) -> VendorConnection:
    return VendorConnection.objects.create(
        kind="webmarketer",
        name=options.pop("name", "wm"),
        base_url=base_url,
        auth_url=auth_url,
        settings={"project_id": "my-project"},
        secrets={"service_account": service_account or service_account_make()},
        **options,
    )


def sandbox_connection_make(sandbox_url: str, **options) -> VendorConnection:
    """A Webmarketer connection to the running sandbox, with a service account the sandbox issued."""
    account = httpx.post(f"{sandbox_url}/__sandbox__/webmarketer/service-accounts").json()
    return webmarketer_connection_make(
        base_url=f"{sandbox_url}/webmarketer/api/v1/",
        auth_url=f"{sandbox_url}/webmarketer/oidc/token",
        service_account=account,
        **options,
    )


def route_make(event_type: EventType, connection: VendorConnection, **options) -> Route:
    return Route.objects.create(event_type=event_type, connection=connection, **options)


def source_make(name: str = "website"):
    return source_create(name=name)


def user_make(role: str = "", *, username: str = "", password: str = "pw", **extra) -> User:
    """A console user in one role group (Marketing, Sales, Auditor); "admin" makes a superuser."""
    username = username or (role.lower() or "nobody")
    if role == "admin":
        return User.objects.create_superuser(username, f"{username}@example.com", password)
    user = User.objects.create_user(username, f"{username}@example.com", password, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


# Plausible values per vendor kind (the seeds' examples), for connections that are never called.
VENDOR_VALUES = {
    "acquia": {
        "base_url": "https://cs-api6.agilone.com/",
        "auth_url": "https://cs-auth.agilone.com/token",
        "settings": {"tenant_id": "999", "region": "us-aws", "environment": "preprod"},
        "secrets": {"username": "webtag_user", "password": "webtag-Pa55word"},
    },
    "algonomy": {
        "base_url": "https://sandbox.algonomy.com/",
        "auth_url": "https://rcdp-us.algonomy.com",
        "settings": {"tenant_hash": "ABC123", "src_id": "WBSTR", "src_type": "Website"},
        "secrets": {"client_id": "hub-client", "client_secret": "algonomy-client-secret"},
    },
    "tracardi": {"base_url": "http://tracardi.example:8686/", "settings": {"source_id": "3b5c-source"}},
    "tracify": {
        "base_url": "https://api.tracify.ai/",
        "settings": {"customer_site_id": "00000000-0000-0000-0000-000000000000"},
        "secrets": {"api_key": "tracify-api-key-123"},
    },
}


def vendor_connection_make(kind: str, **options) -> VendorConnection:
    """A connection of any of the four other vendors, with the seeds' example values."""
    values = {"auth_url": "", "secrets": {}, **VENDOR_VALUES[kind], **options}
    return VendorConnection.objects.create(kind=kind, name=values.pop("name", kind), **values)


def sandbox_vendor_connection_make(sandbox_url: str, kind: str, **options) -> VendorConnection:
    """A connection to the running sandbox with credentials it issued (tracking/sandbox/accounts.py)."""
    from tracking.sandbox.accounts import sandbox_connection_values

    values = {**sandbox_connection_values(sandbox_url, kind), **options}
    return VendorConnection.objects.create(kind=kind, name=values.pop("name", f"{kind}-sandbox"), **values)


def sandbox_webmarketer_api(sandbox_url: str, connection: VendorConnection) -> httpx.Client:
    """A client of the sandbox's Webmarketer project API, signed in with the connection's service account: plays
    what someone does in Webmarketer's own console (create or change an event type, read the trash)."""
    from datetime import UTC, datetime

    from tracking.vendors.webmarketer import Webmarketer

    vendor = Webmarketer(base_url=connection.base_url, settings={}, secrets=connection.secrets)
    form = vendor.token_request(datetime.now(UTC)).form
    token = httpx.post(f"{sandbox_url}/webmarketer/oidc/token", data=form).raise_for_status().json()["access_token"]
    project = connection.settings["project_id"]
    return httpx.Client(
        base_url=f"{sandbox_url}/webmarketer/api/v1/projects/{project}/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def events_deliver(connection, event_type, datas: list[dict], *, nonce_prefix: str = "nonce") -> list:
    """Valid-looking events of `event_type` (set up directly, past the ingest check) sent to `connection`
    through the real delivery pipeline; every delivery must end delivered."""
    events = [
        Event.objects.create(
            nonce=f"{nonce_prefix}-{i}",
            event_type=event_type,
            event_type_ref=event_type.reference,
            data=data,
            event_date=timezone.now(),
        )
        for i, data in enumerate(datas)
    ]
    Delivery.objects.bulk_create([Delivery(event=e, connection=connection, nonce=e.nonce) for e in events])
    connection_dispatch(connection_id=connection.pk)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    return events


def event_store(event_type, data, *, nonce: str, routes=(), **fields) -> Event:
    """An event stored directly, past ingest and its checks (as a row from before a check may be), owed to each
    route's connection: one pending Delivery per route."""
    event = Event.objects.create(
        nonce=nonce,
        event_type=event_type,
        event_type_ref=event_type.reference,
        data=data,
        event_date=fields.pop("event_date", None) or timezone.now(),
        **fields,
    )
    Delivery.objects.bulk_create(
        [Delivery(event=event, connection=r.connection, route=r, nonce=event.vendor_nonce) for r in routes]
    )
    return event
