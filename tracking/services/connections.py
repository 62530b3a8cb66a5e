"""Vendor connections: create, update secrets, test."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from ..models import VendorConnection
from ..vendors import vendor_class
from ..vendors.base import ConfigurationError
from ..vendors.http import TokenError
from .audit import audit_record
from .delivery import session_for


@dataclass(frozen=True)
class TestReport:
    ok: bool
    message: str


@transaction.atomic
def connection_create(
    *,
    kind: str,
    name: str,
    base_url: str,
    auth_url: str = "",
    settings: dict | None = None,
    secrets: dict | None = None,
    user=None,
    **options,
) -> VendorConnection:
    vendor_class(kind)  # unknown kinds fail here, with a clear message
    connection = VendorConnection(
        kind=kind,
        name=name,
        base_url=base_url,
        auth_url=auth_url,
        settings=settings or {},
        secrets=secrets or {},
        **options,
    )
    connection.full_clean()
    connection.save()
    audit_record(user=user, action="connection.create", target=connection, details={"kind": kind})
    return connection


@transaction.atomic
def connection_secrets_update(*, connection: VendorConnection, secrets: dict, user=None) -> None:
    """Set (or, with an empty value, remove) secrets; the audit trail names the keys, never the values."""
    merged = {**connection.secrets, **secrets}
    connection.secrets = {k: v for k, v in merged.items() if v not in ("", None)}
    connection.save(update_fields=["secrets", "updated_at"])
    audit_record(user=user, action="connection.secrets", target=connection, details={"keys": sorted(secrets)})


def connection_test(*, connection: VendorConnection) -> TestReport:
    """Check the settings and run the vendor's auth flow; the answer says what works, in words."""
    try:
        session = session_for(connection)
        session.vendor.check()
        token = session.token()
    except (ConfigurationError, LookupError) as exc:
        return TestReport(False, f"Configuration problem: {exc}")
    except TokenError as exc:
        detail = ""
        if exc.exchange and exc.exchange.response is not None:
            detail = f" ({exc.exchange.response.text[:200]})"
        return TestReport(False, f"Authentication failed: {exc}{detail}")
    if token is None:
        return TestReport(True, "Settings are complete; this vendor has no token flow to test.")
    return TestReport(True, f"Authenticated with {connection.get_kind_display()}: an access token was issued.")
