"""Routes: create, update, delete (audited), check against the vendor's rules, and preview what a vendor
would receive for a logged event (built by the vendor module, never sent).

A delivery goes out only under the route it was created for: deleting or disabling a route cancels its due
deliveries (from the console here, and from anywhere else through the Route signals below)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from ..consent import default_route_purposes, purposes_sorted
from ..models import Delivery, Event, EventType, Route, VendorConnection
from ..schema import DATA_ENTITIES, ingestion_key
from ..vendors import acquia, vendor_class
from ..vendors.base import CONTEXT_HEADS, CONTEXT_PATHS, REDACTED, ConfigurationError, OutgoingEvent, storable
from .audit import audit_record
from .delivery import vendor_for
from .rollups import deliveries_close

# Stands in for the access token in a preview: the hub never asks the vendor for one just to show a body.
TOKEN_PLACEHOLDER = "[token]"  # noqa: S105 (a placeholder, not a secret)
ROUTE_FIELDS = ("event_type", "connection", "vendor_event_name", "mapping", "options", "enabled", "purposes")


# -- sources: what a mapping may read ---------------------------------------------------------------------
# vendors/base.py resolve_path reads these beside data.<path>, item.<path> (inside a list of items) and "=text".
ENVELOPE_PATHS = ("eventDate", "eventType", "trackerId", "nonce", "vendorEventName")
# Logged events of the type looked at for the data keys they carry beyond the declared fields (ingest keeps
# extra keys, and routes to other vendors read them: order_id, items …).
SAMPLE_EVENTS = 50
SAMPLE_DEPTH = 4
LOCATION_KEYS = ("zipcode", "country")


def _walk(value: Any, prefix: str, depth: int, out: set[str]) -> None:
    """Every path of `value` under `prefix`, list elements as index 0 (resolve_path reads any index)."""
    if depth <= 0 or len(out) > 2000:
        return
    if isinstance(value, dict):
        children = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [("0", v) for v in value]
    else:
        return
    for key, child in children:
        path = f"{prefix}.{key}"
        out.add(path)
        _walk(child, path, depth - 1, out)


def event_type_data_paths(event_type: EventType) -> tuple[list[str], set[str]]:
    """(declared, seen): the data paths of the type's fields (by ingestionKey; a location's zipcode and country),
    and those its recent logged events carry."""
    declared: list[str] = []
    for spec in event_type.fields or []:
        if spec.get("entity") not in DATA_ENTITIES or not (key := ingestion_key(spec)):
            continue
        declared.append(f"data.{key}")
        if spec.get("type") == "location":
            declared += [f"data.{key}.{sub}" for sub in LOCATION_KEYS]
    seen: set[str] = set()
    # The log's (event_type_ref, received_at, id) index; read as text so that one stored row Python cannot read
    # back (nested too deeply) is skipped alone.
    recent = (
        Event.objects.filter(event_type_ref=event_type.reference)
        .order_by("-received_at", "-id")
        .annotate(data_text=Cast("data", TextField()))
        .values_list("data_text", flat=True)
    )
    for text in recent[:SAMPLE_EVENTS]:
        try:
            _walk(json.loads(text), "data", SAMPLE_DEPTH, seen)
        except (ValueError, TypeError, RecursionError):
            continue
    return declared, seen


def source_problem(path: Any, known: set[str], event_type: EventType) -> str:
    """Why a mapping source names nothing an event of this type has ("" when it is fine)."""
    if not isinstance(path, str) or path.startswith("=") or path in ENVELOPE_PATHS or path == "data":
        return ""
    head, _, rest = path.partition(".")
    if head == "item":
        return ""  # a field of the list item being mapped: the vendor module checks where item. may be used
    if head in CONTEXT_HEADS or path in CONTEXT_PATHS:
        return ""  # what a Segment call brings beside the data (context.ip, traits.email): not known in advance
    if head != "data":
        return (
            f"{path} is not a source: use data.<field>, item.<field>, context.<field>, traits.<field>, "
            f"{', '.join(ENVELOPE_PATHS + CONTEXT_PATHS)} or =text"
        )
    normal = ".".join("0" if part.isdigit() else part for part in path.split("."))
    if normal in known:
        return ""
    return (
        f"{path}: {event_type.reference} has no such field and none of its logged events carries it (check the "
        "spelling, or tick “Keep sources the event type does not declare” if its events will)"
    )


def route_source_problems(*, event_type: EventType, mapping: dict[str, Any]) -> list[str]:
    """The sources of a mapping that name nothing an event of this type has (declared field, key its logged
    events carry, envelope field, item field or constant); [] when every source exists."""
    declared, seen = event_type_data_paths(event_type)
    known = {*declared, *seen}
    sources: list[Any] = []
    for name, value in mapping.items():
        # Acquia keeps one mapping per entity; any other object is a constant.
        inner = name in acquia.ENTITIES and isinstance(value, dict)
        sources += list(value.values()) if inner else [value]
    return [problem for path in sources if (problem := source_problem(path, known, event_type))]


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
    purposes: list[str] | None = None,
    user=None,
) -> Route:
    """A new route, checked by the vendor module first (ValidationError: nothing saved). `purposes`: the consent it
    needs; None: the vendor kind's usual ones (consent.DEFAULT_ROUTE_PURPOSES)."""
    route = Route(
        event_type=event_type,
        connection=connection,
        vendor_event_name=vendor_event_name,
        mapping=mapping or {},
        options=options or {},
        enabled=enabled,
        purposes=default_route_purposes(connection.kind) if purposes is None else purposes_sorted(purposes),
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
    cancelled = 0
    if not route.enabled:
        # Before the save: its signal would cancel them too, without saying who.
        cancelled = route_deliveries_cancel(route_id=route.pk, reason=f"route disabled by {_who(user)}")
    _save(route)
    details = {**_details(route), "fields": changed}
    if cancelled:
        details["cancelled_deliveries"] = cancelled
    audit_record(user=user, action="route.update", target=route, details=details)
    return route


@transaction.atomic
def route_delete(*, route: Route, user=None) -> None:
    """Delete a route; its due deliveries are cancelled, its past deliveries stay (their route link is cleared)."""
    details, target = _details(route), str(route)
    cancelled = route_deliveries_cancel(route_id=route.pk, reason=f"route deleted by {_who(user)}", in_flight=True)
    route.delete()
    if cancelled:
        details["cancelled_deliveries"] = cancelled
    audit_record(user=user, action="route.delete", target=target, details=details)


def route_deliveries_cancel(*, route_id: int, reason: str, in_flight: bool = False) -> int:
    """Cancel the route's deliveries not sent yet (pending or retrying): a disabled route is one staff no longer
    want used, and without its route a delivery would go unmapped. `in_flight` (deletes) cancels those being
    sent too: their answer is still recorded as an attempt, but they never come back as route-less retries.
    Returns how many were cancelled; each says why in its last error."""
    statuses = [*Delivery.DUE_STATUSES, *([Delivery.Status.SENDING] if in_flight else [])]
    # Counted in the dashboard's rollups as they move (rollups.deliveries_close).
    return deliveries_close(
        Delivery.objects.filter(route_id=route_id, status__in=statuses),
        Delivery.Status.CANCELLED,
        claimed_at=None,
        last_error=f"cancelled: {reason}",
    )


def _who(user) -> str:
    return user.get_username() if getattr(user, "is_authenticated", False) else "the system"


# Deletes and edits that bypass the services (admin, cascades, the shell) cancel the same way. The receivers
# are connected when this module is imported: the admin (through services.replay), the console views and the
# route forms all import it.
@receiver(pre_delete, sender=Route, dispatch_uid="tracking.route_deleted")
def _route_deleted(sender, instance: Route, **kwargs) -> None:
    # pre_delete runs before the deliveries' route link is cleared (SET_NULL): they are still found by route.
    route_deliveries_cancel(route_id=instance.pk, reason="route deleted", in_flight=True)


@receiver(post_save, sender=Route, dispatch_uid="tracking.route_saved")
def _route_saved(sender, instance: Route, created: bool, **kwargs) -> None:
    if not created and not instance.enabled:
        route_deliveries_cancel(route_id=instance.pk, reason="route disabled")


def _details(route: Route) -> dict[str, Any]:
    return {
        "event_type": route.event_type.reference,
        "connection": route.connection.name,
        "vendor_event_name": route.vendor_event_name,
        "mapping": route.mapping,
        "options": route.options,
        "purposes": route.purposes,
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
        # Parsing turns the escapes of lone surrogates back into them: escape again for the page.
        return storable(json.dumps(json.loads(body), indent=2, ensure_ascii=False))
    except (ValueError, RecursionError):
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
        context=event.context or {},
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
