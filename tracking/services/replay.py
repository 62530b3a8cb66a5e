"""Replay: send an event again as a new delivery generation, under the nonce of the latest generation at
that connection (the vendor still sees one event; after a fix-and-replay, that is the fixed event)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..models import Delivery, Event, Route
from .audit import audit_record
from .delivery import connections_wake
from .routes import route_deliveries_cancel  # noqa: F401 (importing routes connects its Route signals)


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


@transaction.atomic
def event_replay(*, event: Event, user=None, connection_ids: list[int] | None = None) -> list[Delivery]:
    """A new generation of delivery for each connection the event went to (or the ones named), under the
    latest generation's route and nonce. Connections without an enabled route are left out (a delivery
    never goes unmapped); ValueError when that leaves nothing to replay."""
    if event.status != Event.Status.OK:
        raise ValueError("an invalid event cannot be replayed: fix its data first")
    latest_by_connection: dict[int, Delivery] = {}
    for delivery in event.deliveries.select_related("route", "connection").order_by("connection_id", "-generation"):
        latest_by_connection.setdefault(delivery.connection_id, delivery)
    now = timezone.now()
    created, skipped = [], []
    for connection_id, latest in sorted(latest_by_connection.items()):
        if connection_ids is not None and connection_id not in connection_ids:
            continue
        route, why = _replay_route(latest, event)
        if route is None:
            skipped.append(why)
            continue
        created.append(
            Delivery.objects.create(
                event=event,
                connection_id=connection_id,
                route=route,
                generation=latest.generation + 1,
                # The latest generation's: after a fix-and-replay the event's own nonce is the trashed one's.
                nonce=latest.nonce or event.vendor_nonce,
                created_at=now,
                next_attempt_at=now,
            )
        )
    if skipped and not created:
        raise ValueError("nothing to replay: " + "; ".join(skipped))
    details: dict = {"deliveries": [d.pk for d in created]}
    if skipped:
        details["not_replayed"] = skipped
    audit_record(user=user, action="event.replay", target=event, details=details)
    connections_wake({d.connection_id for d in created})
    return created
