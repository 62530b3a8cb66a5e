"""Replay: send an event again as a new delivery generation (same nonce: the vendor still sees one event)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from ..models import Delivery, Event
from .audit import audit_record
from .delivery import connections_wake


@transaction.atomic
def event_replay(*, event: Event, user=None, connection_ids: list[int] | None = None) -> list[Delivery]:
    """A new generation of delivery for each connection the event went to (or the ones named)."""
    if event.status != Event.Status.OK:
        raise ValueError("an invalid event cannot be replayed: fix its data first")
    latest = event.deliveries.values("connection_id", "route_id").annotate(generation=Max("generation"))
    now = timezone.now()
    created = []
    for row in latest:
        if connection_ids is not None and row["connection_id"] not in connection_ids:
            continue
        created.append(
            Delivery.objects.create(
                event=event,
                connection_id=row["connection_id"],
                route_id=row["route_id"],
                generation=row["generation"] + 1,
                nonce=event.vendor_nonce,
                created_at=now,
                next_attempt_at=now,
            )
        )
    audit_record(user=user, action="event.replay", target=event, details={"deliveries": [d.pk for d in created]})
    connections_wake({d.connection_id for d in created})
    return created
