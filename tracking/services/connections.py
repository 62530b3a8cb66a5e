"""Vendor connections: create, update (settings and write-only secrets), test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import VendorConnection
from ..vendors import egress, vendor_class
from ..vendors.base import ConfigurationError, excerpt
from ..vendors.http import TokenError, VendorSession
from .audit import audit_record
from .delivery import vendor_for
from .wake import connections_wake, lead_changes_wake

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


URL_FIELDS = ("base_url", "auth_url")


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of a URL (the default port made explicit): where a secret would go."""
    try:
        parts = urlsplit(url or "")
        port = parts.port or egress.DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return ("", url or "", None)
    return (parts.scheme.lower(), (parts.hostname or "").rstrip("."), port)


def urls_problems(**urls: str) -> dict[str, str]:
    """Why the hub may not send to each of these URLs (field name → message), empty when it may."""
    problems = {}
    for name, url in urls.items():
        if url and (refusal := egress.url_refusal(url)):
            problems[name] = refusal
    return problems


def secrets_to_reenter(*, connection: VendorConnection | None, secrets: dict | None = None, **urls: str) -> list[str]:
    """The stored secrets that must be typed again because a URL now points at another scheme, host or port:
    blank keeps a secret only while it goes where it went before (never to a host someone just typed)."""
    if connection is None or not connection.secrets:
        return []
    moved = [n for n, url in urls.items() if n in URL_FIELDS and origin(url) != origin(getattr(connection, n))]
    if not moved:
        return []
    given = {k for k, v in (secrets or {}).items() if v not in ("", None)}
    return sorted(set(connection.secrets) - given)


def _reenter_message(keys: list[str]) -> str:
    return (
        f"The connection now points at another host: enter {', '.join(keys)} again (a stored secret is never sent "
        "to a new host)."
    )


def _urls_validate(connection: VendorConnection | None, secrets: dict | None, **urls: str) -> None:
    errors: dict[str, list[str]] = {name: [message] for name, message in urls_problems(**urls).items()}
    if missing := secrets_to_reenter(connection=connection, secrets=secrets, **urls):
        errors.setdefault("secrets", []).append(_reenter_message(missing))
    if errors:
        raise ValidationError(errors)


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
    _urls_validate(None, None, base_url=base_url, auth_url=auth_url)
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
    # Checked against the stored connection before anything is set on it.
    _urls_validate(
        connection,
        secrets,
        **{n: changes[n] for n in URL_FIELDS if n in changes and changes[n] != getattr(connection, n)},
    )
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
    if problems := urls_problems(base_url=connection.base_url, auth_url=connection.auth_url):
        return TestReport(False, f"Not tried: {' '.join(problems.values())}")
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
            # Redacted before it is cut: a secret echoed across the cut never shows in part.
            detail = f" ({excerpt(exc.exchange.response, 200, vendor.sensitive())})"
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


# -- operations: pause / resume, circuit reset -----------------------------------------------------------------
@transaction.atomic
def connection_pause_set(*, connection: VendorConnection, paused: bool, user=None) -> bool:
    """Pause (its deliveries stay due, nothing is sent) or resume (the dispatchers wake and drain what is due).
    Returns whether it changed; audited when it did."""
    from ..models import VendorKind

    changed = VendorConnection.objects.filter(pk=connection.pk, paused=not paused).update(paused=paused)
    connection.paused = paused
    if not changed:
        return False
    audit_record(user=user, action="connection.pause" if paused else "connection.resume", target=connection)
    if not paused:
        connections_wake([connection.pk])
        if connection.kind == VendorKind.WEBMARKETER:
            lead_changes_wake([connection.pk])
    return True


@transaction.atomic
def connection_circuit_reset(*, connection: VendorConnection, user=None) -> None:
    """Close the circuit now (staff know the vendor is back) and wake the dispatcher; audited."""

    before = {"failures": connection.circuit_failures, "open": connection.circuit_open}
    VendorConnection.objects.filter(pk=connection.pk).update(circuit_failures=0, circuit_open_until=None)
    connection.circuit_failures, connection.circuit_open_until = 0, None
    audit_record(user=user, action="connection.circuit_reset", target=connection, details={"before": before})
    connections_wake([connection.pk])


def connection_references(connection: VendorConnection) -> dict[str, int]:
    """What the hub's records hold of this connection (deliveries, lead deliveries, trashed events, offline
    interactions): the history a delete would erase. Only what it holds: zero counts are left out."""
    counts = {
        "deliveries": connection.deliveries.count(),
        "lead deliveries": connection.lead_deliveries.count(),
        "trashed events": connection.trashed_events.count(),
        "offline interactions": connection.offline_interactions.count(),
    }
    return {name: count for name, count in counts.items() if count}


@transaction.atomic
def connection_delete(*, connection: VendorConnection, user=None) -> None:
    """Delete a connection that nothing was ever sent to (its routes go too, each through route_delete);
    refused (ValidationError) while deliveries or other records reference it: disable it instead."""
    from .routes import route_delete

    if held := connection_references(connection):
        listed = ", ".join(f"{count} {name}" for name, count in held.items())
        raise ValidationError(
            f"{connection.name} is referenced by {listed}: deleting it would erase that history. Disable it instead."
        )
    target, details = str(connection), {"kind": connection.kind, "secret_keys": sorted(connection.secrets)}
    for route in connection.routes.select_related("event_type", "connection"):
        route_delete(route=route, user=user)
    connection.delete()
    audit_record(user=user, action="connection.delete", target=target, details=details)
