"""Read queries of the console: filtered lists with keyset pages (no OFFSET: pages stay fast and stable
while new events arrive)."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from .models import Event


@dataclass
class Page:
    items: list[Any]
    next_cursor: str  # "" on the last page


def cursor_encode(when: datetime, pk: int) -> str:
    return f"{when.isoformat()}_{pk}"


def cursor_decode(cursor: str) -> tuple[datetime, int] | None:
    """The (time, id) a cursor points after; None for an empty or malformed one (first page)."""
    when, _, pk = cursor.rpartition("_")
    try:
        return datetime.fromisoformat(when), int(pk)
    except ValueError:
        return None


def keyset_page(queryset: QuerySet, *, field: str, cursor: str = "", limit: int = 50) -> Page:
    """Rows newest first by (field, id), after the cursor; `limit` of them and the next cursor."""
    after = cursor_decode(cursor)
    if after:
        when, pk = after
        queryset = queryset.filter(Q(**{f"{field}__lt": when}) | Q(**{field: when, "pk__lt": pk}))
    rows = list(queryset.order_by(f"-{field}", "-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, cursor_encode(getattr(rows[-1], field), rows[-1].pk) if more else "")


def events_filter(
    *,
    event_type: str = "",
    status: str = "",
    delivery_status: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    q: str = "",
) -> QuerySet[Event]:
    """The event log filtered: by type reference, status, a delivery status, received window, and text
    (uuid, nonce, tracker id exactly; or a word of the data)."""
    events = Event.objects.select_related("source")
    if event_type:
        events = events.filter(event_type_ref=event_type)
    if status:
        events = events.filter(status=status)
    if delivery_status:
        events = events.filter(deliveries__status=delivery_status).distinct()
    if since:
        events = events.filter(received_at__gte=since)
    if until:
        events = events.filter(received_at__lt=until)
    if q := q.strip():
        match = Q(nonce=q) | Q(tracker_id=q) | Q(data__icontains=q)
        with contextlib.suppress(ValueError):
            match |= Q(uuid=uuid.UUID(q))
        events = events.filter(match)
    return events
