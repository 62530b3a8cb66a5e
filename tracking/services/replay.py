"""Replay: send an event again as a new delivery generation, under the nonce of the latest generation at
that connection (the vendor still sees one event; after a fix-and-replay, that is the fixed event).

Replay never duplicates by accident: it targets the connections whose latest delivery is not `delivered`.
Sending a delivered one again is an explicit choice (include_delivered), which the console confirms naming
the vendors that do not drop a nonce they already hold. A latest delivery still due (pending, retrying) is
superseded (cancelled) by the new generation, so the event is never owed twice; one being sent is left alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from ..consent import missing_purposes
from ..models import Delivery, Event, Route, VendorConnection
from ..vendors import vendor_class
from .audit import audit_record
from .rollups import deliveries_finished
from .routes import route_deliveries_cancel  # noqa: F401 (importing routes connects its Route signals)
from .wake import connections_wake

# The reason a replay gives when the person's consent no longer allows the route (bulk replay counts these).
CONSENT_SKIP = "not replayed, no consent for"


def dedups_by_nonce(kind: str) -> bool:
    """Whether the vendor of this kind drops an event whose nonce it already holds."""
    try:
        return vendor_class(kind).dedups_by_nonce
    except LookupError:
        return False


def vendors_without_dedup(connections) -> list[str]:
    """Names of the connections (with their vendor) that would hold a re-sent event twice, sorted."""
    names = set()
    for connection in connections:
        if not dedups_by_nonce(connection.kind):
            names.add(f"{connection.name} ({connection.get_kind_display()})")
    return sorted(names)


@dataclass
class ReplayPlan:
    """What a replay of one event would do: per connection, replay it or why not."""

    replay: list[Delivery] = field(default_factory=list)  # the latest delivery at each connection to replay
    skipped: list[str] = field(default_factory=list)


def _replay_route(latest: Delivery, event: Event) -> tuple[Route | None, str]:
    """The route a new generation goes under: the latest one's, or the type's current route to that connection
    when that one was deleted; none when the route is disabled or gone (with why)."""
    route = latest.route
    if route is None:
        route = Route.objects.filter(event_type_id=event.event_type_id, connection_id=latest.connection_id).first()
    if route is None:
        return None, f"{latest.connection.name}: its route was deleted"
    if not route.enabled:
        return None, f"{latest.connection.name}: its route is disabled"
    return route, ""


def latest_deliveries(event: Event) -> dict[int, Delivery]:
    """The latest generation of the event's delivery at each connection, by connection id."""
    latest: dict[int, Delivery] = {}
    for delivery in event.deliveries.select_related("route", "connection").order_by("connection_id", "-generation"):
        latest.setdefault(delivery.connection_id, delivery)
    return latest


def delivery_replay_one(*, latest: Delivery, include_delivered: bool = False) -> tuple[Delivery | None, str]:
    """A new generation after `latest` (the latest delivery of its event at its connection), or None and why
    not. Call inside a transaction; the caller wakes the connection after commit."""
    event = latest.event
    name = latest.connection.name
    if event.status != Event.Status.OK:
        return None, f"{name}: an invalid event cannot be replayed (fix its data first)"
    if latest.status == Delivery.Status.DELIVERED and not include_delivered:
        return None, f"{name}: already delivered"
    if latest.status == Delivery.Status.SENDING:
        return None, f"{name}: being sent right now"
    route, why = _replay_route(latest, event)
    if route is None:
        return None, why
    # Consent as it stands now (read again: a withdrawal may have come since the caller loaded the event).
    consent = Event.objects.filter(pk=event.pk).values_list("consent", flat=True).first()
    if missing := missing_purposes(route.purposes, consent):
        # A person who withdrew their consent is never sent to again, replay or not.
        return None, f"{name}: {CONSENT_SKIP} {', '.join(missing)}"
    if latest.status in Delivery.DUE_STATUSES:
        # Still owed: the new generation takes its place. Conditional, so a run that claimed it meanwhile wins.
        superseded = Delivery.objects.filter(pk=latest.pk, status__in=Delivery.DUE_STATUSES).update(
            status=Delivery.Status.CANCELLED,
            last_error=f"superseded by generation {latest.generation + 1} (replay)",
        )
        if not superseded:
            return None, f"{name}: being sent right now"
        deliveries_finished([(latest, Delivery.Status.CANCELLED)], at=timezone.now())  # rollups (dashboard)
    now = timezone.now()
    created = Delivery.objects.create(
        event=event,
        connection_id=latest.connection_id,
        route=route,
        generation=latest.generation + 1,
        # The latest generation's: after a fix-and-replay the event's own nonce is the trashed one's.
        nonce=latest.nonce or event.vendor_nonce,
        created_at=now,
        next_attempt_at=now,
    )
    return created, ""


@transaction.atomic
def event_replay(
    *, event: Event, user=None, connection_ids: list[int] | None = None, include_delivered: bool = False
) -> list[Delivery]:
    """A new generation of delivery for each connection the event went to (or the ones named) whose latest
    delivery is not delivered (delivered ones too with include_delivered), under the latest generation's
    route and nonce. ValueError when that leaves nothing to replay (with why)."""
    if event.status != Event.Status.OK:
        raise ValueError("an invalid event cannot be replayed: fix its data first")
    created, skipped = [], []
    for connection_id, latest in sorted(latest_deliveries(event).items()):
        if connection_ids is not None and connection_id not in connection_ids:
            continue
        latest.event = event
        new, why = delivery_replay_one(latest=latest, include_delivered=include_delivered)
        if new is None:
            skipped.append(why)
        else:
            created.append(new)
    if not created:
        raise ValueError("nothing to replay: " + ("; ".join(skipped) or "no delivery"))
    details: dict = {"deliveries": [d.pk for d in created]}
    resent = [d.connection.name for d in created if d.generation and _was_delivered(d)]
    if resent:
        details["delivered_sent_again"] = sorted(resent)
    if skipped:
        details["not_replayed"] = skipped
    audit_record(user=user, action="event.replay", target=event, details=details)
    connections_wake({d.connection_id for d in created})
    return created


def _was_delivered(new: Delivery) -> bool:
    return Delivery.objects.filter(
        event_id=new.event_id,
        connection_id=new.connection_id,
        generation=new.generation - 1,
        status=Delivery.Status.DELIVERED,
    ).exists()


def delivered_connections(event: Event, connection_ids: list[int] | None = None) -> list[VendorConnection]:
    """Connections where the event's latest delivery is delivered (what include_delivered would send again)."""
    return [
        d.connection
        for cid, d in sorted(latest_deliveries(event).items())
        if d.status == Delivery.Status.DELIVERED and (connection_ids is None or cid in connection_ids)
    ]
