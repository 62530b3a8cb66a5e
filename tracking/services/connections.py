"""Vendor connections: create, update (settings and write-only secrets), test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction

from ..models import VendorConnection
from ..vendors import vendor_class
from ..vendors.base import ConfigurationError, redact
from ..vendors.http import TokenError, VendorSession
from .audit import audit_record
from .delivery import vendor_for

# What connection_update may change (kind never changes: its settings and routes are the vendor's).
UPDATABLE_FIELDS = (
    "name",
    "enabled",
    "base_url",
    "auth_url",
    "settings",
    "timeout_seconds",
    "max_rate",
    "batch_size",
    "retry_base_seconds",
    "retry_max_seconds",
    "give_up_after_seconds",
)


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
    audit_record(
        user=user,
        action="connection.create",
        target=connection,
        details={"kind": kind, "secret_keys": sorted(connection.secrets)},
    )
    return connection


def secrets_merge(current: dict, changes: dict) -> dict:
    """Set the secrets named; an empty value removes one; the others keep their value."""
    merged = {**current, **changes}
    return {k: v for k, v in merged.items() if v not in ("", None)}


@transaction.atomic
def connection_update(
    *, connection: VendorConnection, secrets: dict | None = None, user=None, **changes: Any
) -> VendorConnection:
    """Change a connection's fields and set secrets (full_clean first: ValidationError, nothing saved).
    The audit trail names the fields and secret keys changed, never a secret's value."""
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise TypeError(f"connection_update() got unknown fields: {', '.join(sorted(unknown))}")
    changed = [name for name, value in changes.items() if getattr(connection, name) != value]
    for name, value in changes.items():
        setattr(connection, name, value)
    secrets = secrets or {}
    if secrets:
        connection.secrets = secrets_merge(connection.secrets, secrets)
    connection.full_clean()
    connection.save()
    audit_record(
        user=user,
        action="connection.update",
        target=connection,
        details={"fields": changed, "secret_keys": sorted(secrets)},
    )
    return connection


def connection_problem(
    *, kind: str, base_url: str, auth_url: str = "", settings: dict | None = None, secrets: dict | None = None
) -> str:
    """Why the vendor module could not work with these values ("" when it can), without calling the vendor."""
    try:
        vendor = vendor_class(kind)(base_url=base_url, auth_url=auth_url, settings=settings, secrets=secrets)
        vendor.check()
    except (ConfigurationError, LookupError) as exc:
        return str(exc)
    return ""


@transaction.atomic
def connection_secrets_update(*, connection: VendorConnection, secrets: dict, user=None) -> None:
    """Set (or, with an empty value, remove) secrets; the audit trail names the keys, never the values."""
    connection.secrets = secrets_merge(connection.secrets, secrets)
    connection.save(update_fields=["secrets", "updated_at"])
    audit_record(user=user, action="connection.secrets", target=connection, details={"keys": sorted(secrets)})


def connection_test(*, connection: VendorConnection, user=None) -> TestReport:
    """Check the settings and run the vendor's auth flow; the answer says what works, in words.

    A session of its own, so the flow really runs (the delivery sessions may hold a cached token);
    audited when a console user asked for it."""
    report = _test(connection)
    if user is not None:
        audit_record(user=user, action="connection.test", target=connection, details={"ok": report.ok})
    return report


def _test(connection: VendorConnection) -> TestReport:
    try:
        vendor = vendor_for(connection)
        vendor.check()
    except (ConfigurationError, LookupError) as exc:
        return TestReport(False, f"Configuration problem: {exc}")
    session = VendorSession(
        vendor,
        timeout=connection.timeout_seconds,
        max_rate=None,
        max_connections=min(2, django_settings.HUB_DISPATCH_CONCURRENCY),
    )
    try:
        token = session.token()
    except (ConfigurationError, LookupError) as exc:
        return TestReport(False, f"Configuration problem: {exc}")
    except TokenError as exc:
        detail = ""
        if exc.exchange and exc.exchange.response is not None:
            detail = f" ({redact(exc.exchange.response.text[:200], vendor.sensitive())})"
        return TestReport(False, f"Authentication failed: {exc}{detail}")
    finally:
        session.close()
    label = connection.get_kind_display()
    if token is None:
        return TestReport(
            True,
            f"Settings are complete. {label} has no sign-in step to try: the first delivery shows whether it "
            "accepts them.",
        )
    return TestReport(True, f"Authenticated with {label}: an access token was issued.")
