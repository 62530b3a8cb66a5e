"""Routes: create, update, delete (audited), check against the vendor's rules, and preview what a vendor
would receive for a logged event (built by the vendor module, never sent)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from ..models import Event, EventType, Route, VendorConnection
from ..vendors import vendor_class
from ..vendors.base import REDACTED, ConfigurationError, OutgoingEvent
from .audit import audit_record
from .delivery import vendor_for

# Stands in for the access token in a preview: the hub never asks the vendor for one just to show a body.
TOKEN_PLACEHOLDER = "[token]"  # noqa: S105 (a placeholder, not a secret)
ROUTE_FIELDS = ("event_type", "connection", "vendor_event_name", "mapping", "options", "enabled")


def route_problems(
    *, connection: VendorConnection, event_type: EventType, vendor_event_name: str, mapping: dict, options: dict
) -> list[str]:
    """What the vendor module finds wrong with this route ([] when it can be saved)."""
    try:
        vendor = vendor_class(connection.kind)
    except LookupError as exc:
        return [str(exc)]
    return vendor.validate_mapping(vendor_event_name or event_type.reference, mapping, options)


def _check(route: Route) -> None:
    problems = route_problems(
        connection=route.connection,
        event_type=route.event_type,
        vendor_event_name=route.vendor_event_name,
        mapping=route.mapping,
        options=route.options,
    )
    if problems:
        raise ValidationError({"mapping": problems})
    taken = Route.objects.filter(event_type=route.event_type, connection=route.connection).exclude(pk=route.pk)
    if taken.exists():
        raise ValidationError({"connection": [f"{route.event_type} is already routed to {route.connection.name}."]})
    route.full_clean()


def _save(route: Route) -> None:
    try:
        with transaction.atomic():
            route.save()
    except IntegrityError:
        # Two people saving the same event type → connection at once: the constraint says no.
        raise ValidationError(
            {"connection": [f"{route.event_type} is already routed to {route.connection.name}."]}
        ) from None


@transaction.atomic
def route_create(
    *,
    event_type: EventType,
    connection: VendorConnection,
    vendor_event_name: str = "",
    mapping: dict | None = None,
    options: dict | None = None,
    enabled: bool = True,
    user=None,
) -> Route:
    """A new route, checked by the vendor module first (ValidationError: nothing saved)."""
    route = Route(
        event_type=event_type,
        connection=connection,
        vendor_event_name=vendor_event_name,
        mapping=mapping or {},
        options=options or {},
        enabled=enabled,
    )
    _check(route)
    _save(route)
    audit_record(user=user, action="route.create", target=route, details=_details(route))
    return route


@transaction.atomic
def route_update(*, route: Route, user=None, **changes: Any) -> Route:
    """Change a route's fields (any of ROUTE_FIELDS), checked by the vendor module (ValidationError: nothing saved)."""
    unknown = set(changes) - set(ROUTE_FIELDS)
    if unknown:
        raise TypeError(f"route_update() got unknown fields: {', '.join(sorted(unknown))}")
    changed = [name for name, value in changes.items() if getattr(route, name) != value]
    for name, value in changes.items():
        setattr(route, name, value)
    _check(route)
    _save(route)
    audit_record(user=user, action="route.update", target=route, details={**_details(route), "fields": changed})
    return route


@transaction.atomic
def route_delete(*, route: Route, user=None) -> None:
    """Delete a route; its past deliveries stay (their route link is cleared)."""
    details, target = _details(route), str(route)
    route.delete()
    audit_record(user=user, action="route.delete", target=target, details=details)


def _details(route: Route) -> dict[str, Any]:
    return {
        "event_type": route.event_type.reference,
        "connection": route.connection.name,
        "vendor_event_name": route.vendor_event_name,
        "mapping": route.mapping,
        "options": route.options,
        "enabled": route.enabled,
    }


# -- preview ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreviewRequest:
    """One request as the vendor would receive it, secrets hidden."""

    method: str
    url: str
    body: str
    headers: list[str]


@dataclass(frozen=True)
class Preview:
    requests: list[PreviewRequest] = field(default_factory=list)
    refusal: str = ""  # why the vendor module would not send this event
    problem: str = ""  # what is wrong with the connection (the request may still be shown)


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def route_preview(
    *,
    connection: VendorConnection,
    event: Event,
    vendor_event_name: str = "",
    mapping: dict | None = None,
    options: dict | None = None,
) -> Preview:
    """The exact request(s) the connection's vendor module builds for this logged event under this route
    (saved or not), with secrets redacted; the vendor is never called."""
    if event.status != Event.Status.OK:
        return Preview(refusal="This event is invalid: invalid events are never sent to any vendor.")
    vendor = vendor_for(connection)
    problem = ""
    try:
        vendor.check()
    except ConfigurationError as exc:
        problem = str(exc)
    outgoing = OutgoingEvent(
        key=event.pk,
        nonce=event.vendor_nonce,
        event_type=event.event_type_ref,
        event_date=event.event_date,
        data=event.data,
        tracker_id=event.tracker_id,
        vendor_event_name=vendor_event_name,
        mapping=mapping or {},
        options=options or {},
    )
    try:
        refusal = vendor.refusal(outgoing)
        built = [] if refusal else vendor.build([outgoing], TOKEN_PLACEHOLDER)
    except (ValueError, TypeError) as exc:  # ConfigurationError included: settings the module cannot use
        return Preview(problem=problem or f"The vendor module cannot build this request: {exc}")
    requests = [
        PreviewRequest(
            method=r.method,
            url=r.recorded_url(),
            body=_pretty(r.recorded_body()),
            # Header values carry keys and tokens: only their names are shown.
            headers=[f"{name}: {REDACTED}" for name in r.headers],
        )
        for r in built
    ]
    if not refusal and not requests:
        refusal = vendor.refusals([outgoing]).get(outgoing.key) or "The vendor module built no request for this event."
    return Preview(requests=requests, refusal=refusal, problem=problem)
