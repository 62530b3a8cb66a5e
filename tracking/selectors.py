"""Read queries of the console: filtered lists with keyset pages (no OFFSET: pages stay fast and stable
while new events arrive)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.expressions import RawSQL

from .models import (
    Delivery,
    Event,
    EventType,
    HourlyCount,
    LatencyCount,
    LeadChange,
    LeadDelivery,
    TrashedEvent,
    VendorConnection,
)


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
        # The `lte` bound lets the index start at the cursor instead of reading every newer row past the OR.
        queryset = queryset.filter(
            Q(**{f"{field}__lte": when}), Q(**{f"{field}__lt": when}) | Q(**{field: when, "pk__lt": pk})
        )
    rows = list(queryset.order_by(f"-{field}", "-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, cursor_encode(getattr(rows[-1], field), rows[-1].pk) if more else "")


def _indexed_text(text: str) -> bool:
    """Whether the data's text index answers a search for this text exactly as a LIKE scan would: at least
    three characters (a trigram), printable ASCII without quotes or backslashes (JSON stores those escaped)."""
    return len(text) >= 3 and text.isascii() and text.isprintable() and not {'"', "\\"} & set(text)


def data_contains(text: str) -> Q:
    """Events whose data (its JSON text) contains `text`, any case: `data__icontains` answered by the text index
    of migration 0009 (SQLite: the FTS5 trigram table; PostgreSQL: the pg_trgm index on UPPER(data::text), which
    the plain lookup uses); a scan only for a text under three characters."""
    if connection.vendor == "sqlite" and len(text) >= 3:
        phrase = '"' + text.replace('"', '""') + '"'  # one FTS5 string: trigrams in sequence, a substring
        return Q(pk__in=RawSQL("SELECT rowid FROM tracking_event_text WHERE tracking_event_text MATCH %s", [phrase]))
    return Q(data__icontains=text)


def events_filter(
    *,
    event_type: str = "",
    status: str = "",
    delivery_status: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    q: str = "",
    connection: str | int = "",
) -> QuerySet[Event]:
    """The event log filtered: by type reference, status, a delivery status and/or connection (of the same
    delivery), received window, and text (uuid, nonce, tracker id exactly; or a word of the data)."""
    events = Event.objects.select_related("source")
    if event_type:
        events = events.filter(event_type_ref=event_type)
    if status:
        events = events.filter(status=status)
    owed = {}
    if delivery_status:
        owed["status"] = delivery_status
    if str(connection).isdigit():
        owed["connection_id"] = int(connection)
    if owed:
        events = events.filter(Exists(Delivery.objects.filter(event_id=OuterRef("pk"), **owed)))
    if since:
        events = events.filter(received_at__gte=since)
    if until:
        events = events.filter(received_at__lt=until)
    if q := q.strip():
        match = Q(nonce=q) | Q(tracker_id=q) | data_contains(q)  # each term indexed: no scan of the log
        with contextlib.suppress(ValueError):
            match |= Q(uuid=uuid.UUID(q))
        events = events.filter(match)
    return events


@dataclass
class DeliveryBadge:
    """Where an event stands at one connection, for the log's compact badges."""

    connection: str
    status: str  # a Delivery status, or "trashed" (Webmarketer trashed it and nobody resolved that yet)
    label: str

    MARKS = {"delivered": "✓", "failed": "✗", "trashed": "trashed", "cancelled": "–", "suppressed": "⊘"}

    @property
    def mark(self) -> str:
        return self.MARKS.get(self.status, "…")


def event_delivery_badges(events: list[Event]) -> None:
    """Give each event `delivery_badges`: one per connection, its latest generation (a trashed one as trashed),
    read for all the events in two queries."""
    ids = [e.pk for e in events]
    latest: dict[tuple[int, int], Delivery] = {}
    deliveries = (
        Delivery.objects.filter(event_id__in=ids)
        .select_related("connection")
        .only("event_id", "connection__name", "generation", "status")
        .order_by("event_id", "connection__name", "connection_id", "generation")
    )
    for delivery in deliveries:
        latest[delivery.event_id, delivery.connection_id] = delivery  # ordered by generation: the last wins
    trashed = set(
        TrashedEvent.objects.filter(event_id__in=ids, resolved=False).values_list("event_id", "connection_id")
    )
    by_event: dict[int, list[DeliveryBadge]] = {}
    for (event_id, connection_id), delivery in latest.items():
        if (event_id, connection_id) in trashed:
            badge = DeliveryBadge(delivery.connection.name, "trashed", "in Webmarketer's trash")
        else:
            badge = DeliveryBadge(delivery.connection.name, delivery.status, delivery.get_status_display())
        by_event.setdefault(event_id, []).append(badge)
    for event in events:
        event.delivery_badges = by_event.get(event.pk, [])


# -- the lead board ------------------------------------------------------------------------------------------
# Data keys the board's text search looks in (the contact fields of the demo and Webmarketer's samples).
LEAD_CONTACT_KEYS = ("email", "phone", "first_name", "last_name")


def lead_event_types() -> list[EventType]:
    """Event types whose fields declare states: their valid events are leads."""
    return [t for t in EventType.objects.all() if t.states]


def leads_filter(
    *,
    event_type: str = "",
    state: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    q: str = "",
) -> QuerySet[Event]:
    """Leads filtered: by type, current state ("qualified", "not:qualified", or "failed" for a lead with an
    update Webmarketer refused), received window, and words all found in its contact fields."""
    types = [t.pk for t in lead_event_types()]
    if q.strip():
        # A text search: the leads the text index finds, sorted, rather than a walk of every lead in the type's
        # index testing each against them (SQLite keeps no statistics: it guesses an equality on an index matches
        # ten rows, and walked half the log). `type_id` (the type id + 0) keeps the type's index out of the plan.
        leads = Event.objects.alias(type_id=F("event_type_id") + 0).filter(status=Event.Status.OK, type_id__in=types)
    else:
        leads = Event.objects.filter(status=Event.Status.OK, event_type__in=types)
    leads = leads.select_related("event_type")
    if event_type:
        leads = leads.filter(event_type_ref=event_type)
    if since:
        leads = leads.filter(received_at__gte=since)
    if until:
        leads = leads.filter(received_at__lt=until)
    if state == "failed":
        leads = leads.filter(Exists(LeadDelivery.objects.filter(event=OuterRef("pk"), status="failed")))
    elif state:
        key = state.removeprefix("not:")
        latest = LeadChange.objects.filter(event=OuterRef("pk"), kind="state", storage_key=key).order_by("-id")
        leads = leads.annotate(state_value=Subquery(latest.values("value")[:1]))
        if state.startswith("not:"):  # never set counts as not set
            leads = leads.filter(Q(state_value__isnull=True) | ~Q(state_value=1))
        else:
            leads = leads.filter(state_value=1)
    for word in q.split():
        match = Q()
        for key in LEAD_CONTACT_KEYS:
            match |= Q(**{f"data__{key}__icontains": word})
        if _indexed_text(word):  # a word in a contact field is in the data's text: the index narrows first
            match &= data_contains(word)
        leads = leads.filter(match)
    return leads


def leads_page(*, cursor: str = "", limit: int = 50, **filters: Any) -> Page:
    """A page of the board, newest first: one keyset page per lead type (index event_type_id_log reads each in
    order, never sorting or counting all the leads), merged. Filters as leads_filter's."""
    leads = leads_filter(**filters)
    rows: list[Event] = []
    more = False
    searched = bool(str(filters.get("q", "")).strip())
    for event_type in lead_event_types():
        # A text search reads the leads its index finds (leads_filter's type_id), the others the type's index.
        typed = leads.filter(type_id=event_type.pk) if searched else leads.filter(event_type=event_type.pk)
        part = keyset_page(typed, field="received_at", cursor=cursor, limit=limit)
        rows += part.items
        more = more or bool(part.next_cursor)
    rows.sort(key=lambda e: (e.received_at, e.pk), reverse=True)
    more = more or len(rows) > limit
    rows = rows[:limit]
    return Page(rows, cursor_encode(rows[-1].received_at, rows[-1].pk) if more and rows else "")


def _data_key(event: Event, field_type: str, default: str) -> str:
    """Where the event's data holds its field of this type (its ingestion key), else the usual name."""
    fields = event.event_type.fields if event.event_type else []
    found = next((f for f in fields if f.get("type") == field_type), None)
    return (found.get("ingestionKey") or found.get("storageKey") or default) if found else default


def lead_currency(event: Event) -> str:
    """The currency of the event's amounts: its currency field's value, else a `currency` key, else ""."""
    value = event.data.get(_data_key(event, "currency", "currency"))
    return value if isinstance(value, str) else ""


def delivery_summary(change: LeadChange) -> str:
    """One word for where a change stands at Webmarketer: local (no Webmarketer connection), failed,
    pending, waiting, delivered or superseded."""
    statuses = {d.status for d in change.deliveries.all()}
    if not statuses:
        return "local"
    for status in ("failed", "retrying", "sending", "pending", "waiting"):
        if status in statuses:
            return "pending" if status in ("retrying", "sending") else status
    return "delivered" if "delivered" in statuses else "superseded"


@dataclass
class LeadValue:
    """A state or statistic of a lead: its latest change (None: never set) and where that change stands."""

    key: str
    label: str
    change: LeadChange | None = None
    typed: str = ""  # an amount typed but refused, shown again

    @property
    def on(self) -> bool:
        return bool(self.change and self.change.value == 1)

    @property
    def status(self) -> str:
        return delivery_summary(self.change) if self.change else ""


@dataclass
class LeadRow:
    """What the board shows of one lead."""

    event: Event
    name: str
    email: str
    phone: str
    currency: str
    states: list[LeadValue]
    statistics: list[LeadValue]
    failures: list[Any]  # failed LeadDeliveries, with their change
    history: list[LeadChange] | None = None  # newest first, when asked for


def lead_rows(events: list[Event], *, history: bool = False) -> list[LeadRow]:
    """Board rows for these events: contact, current states and statistics (latest change per key), failed
    updates; with the full timeline (deliveries and attempts) when `history`."""
    changes = LeadChange.objects.filter(event__in=events).select_related("user").order_by("id")
    deliveries = LeadDelivery.objects.select_related("connection").order_by("connection__name")
    if history:
        deliveries = deliveries.prefetch_related("attempt_set")
    changes = changes.prefetch_related(Prefetch("deliveries", queryset=deliveries))
    by_event: dict[int, list[LeadChange]] = {}
    for change in changes:
        by_event.setdefault(change.event_id, []).append(change)
    rows = []
    for event in events:
        own = by_event.get(event.pk, [])
        latest = {(c.kind, c.storage_key): c for c in own}  # ordered by id: the last one wins
        fields = event.event_type.fields if event.event_type else []

        def values(entity: str, fields=fields, latest=latest) -> list[LeadValue]:
            return [
                LeadValue(f["storageKey"], f.get("label") or f["storageKey"], latest.get((entity, f["storageKey"])))
                for f in fields
                if f.get("entity") == entity
            ]

        data = event.data
        first, last = data.get("first_name"), data.get("last_name")
        rows.append(
            LeadRow(
                event=event,
                name=" ".join(str(p) for p in (first, last) if p),
                email=str(data.get(_data_key(event, "email", "email")) or ""),
                phone=str(data.get(_data_key(event, "phone", "phone")) or ""),
                currency=lead_currency(event),
                states=values("state"),
                statistics=values("statistic"),
                failures=[d for c in own for d in c.deliveries.all() if d.status == "failed"],
                history=list(reversed(own)) if history else None,
            )
        )
    return rows


# -- the dashboard: charts read the rollups (services/rollups.py), never the log ---------------------------------
@dataclass
class Window:
    """The dashboard's date range: [since, until) in UTC, drawn in hourly or daily buckets."""

    since: datetime
    until: datetime
    step: str  # "hour" | "day"

    def buckets(self) -> list[datetime]:
        step = timedelta(hours=1) if self.step == "hour" else timedelta(days=1)
        start = self.since if self.step == "hour" else self.since.replace(hour=0)
        out, at = [], start
        while at < self.until:
            out.append(at)
            at += step
        return out

    def bucket_of(self, hour: datetime) -> datetime:
        return hour if self.step == "hour" else hour.replace(hour=0)

    def label(self, at: datetime) -> str:
        return f"{at:%Y-%m-%d %H:00}" if self.step == "hour" else f"{at:%Y-%m-%d}"

    @property
    def period(self) -> str:
        """The rollup grain to read: days for a chart of days over whole days, else hours."""
        whole_days = self.since.hour == 0 and self.until.hour == 0
        return HourlyCount.Period.DAY if self.step == "day" and whole_days else HourlyCount.Period.HOUR


def _series(window: Window, rows: Iterable[tuple[datetime, str, int]]) -> dict[str, list[int]]:
    """Counts per name and bucket of the window, zeros where nothing happened."""
    index = {at: i for i, at in enumerate(window.buckets())}
    series: dict[str, list[int]] = {}
    for hour, name, n in rows:
        i = index.get(window.bucket_of(hour.astimezone(UTC)))
        if i is not None:
            series.setdefault(name, [0] * len(index))[i] += int(n)
    return dict(sorted(series.items()))


def _hourly(window: Window, metric: str) -> QuerySet[HourlyCount]:
    """The rollup rows of a metric in the window, at the window's grain (index hourly_count_period_metric)."""
    return HourlyCount.objects.filter(
        period=window.period, metric=metric, hour__gte=window.since, hour__lt=window.until
    ).order_by()


def chart_events(window: Window) -> dict[str, Any]:
    """Events received per bucket: valid ones stacked by type, invalid ones in a bar beside them."""
    rows = _hourly(window, HourlyCount.Metric.EVENT).values_list("hour", "event_type_ref", "status", "count")
    valid = _series(window, ((h, ref or "(none)", n) for h, ref, status, n in rows if status == Event.Status.OK))
    invalid = _series(window, ((h, "invalid", n) for h, _, status, n in rows if status == Event.Status.INVALID))
    datasets = [{"label": ref, "data": data, "stack": "valid"} for ref, data in valid.items()]
    datasets.append(
        {"label": "invalid", "data": invalid.get("invalid", [0] * len(window.buckets())), "stack": "invalid"}
    )
    return {"labels": [window.label(at) for at in window.buckets()], "datasets": datasets}


def _connection_names(ids: Iterable[int]) -> dict[int, str]:
    ids = set(ids)
    names = dict(VendorConnection.objects.filter(pk__in=ids).values_list("pk", "name"))
    return {i: names.get(i, f"connection #{i} (deleted)") for i in sorted(ids, key=lambda i: (names.get(i, "~"), i))}


def chart_deliveries(window: Window) -> dict[str, Any]:
    """Deliveries of the events received in the window per connection, by final status."""
    rows = list(
        _hourly(window, HourlyCount.Metric.DELIVERY)
        .values_list("connection_id", "status")
        .annotate(n=Sum("count"))
        .order_by("connection_id", "status")
    )
    names = _connection_names(c for c, _, _ in rows)
    order = list(names)
    statuses = [s for s in ("delivered", "failed", "cancelled", "suppressed") if any(st == s for _, st, _ in rows)]
    datasets = []
    for status in statuses:
        data = [0] * len(order)
        for connection_id, st, n in rows:
            if st == status:
                data[order.index(connection_id)] += int(n)
        datasets.append({"label": status, "data": data})
    return {"labels": list(names.values()), "datasets": datasets}


def latency_quantile(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile of a latency histogram in seconds: the upper bound of the bucket it falls in."""
    total = sum(counts.values())
    if not total:
        return None
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= q * total:
            return round(LatencyCount.upper_ms(bucket) / 1000, 3)
    return None  # unreachable: seen reaches total


def chart_latency(window: Window) -> dict[str, Any]:
    """p50 and p95 of creation → delivered per connection (seconds), from the latency histogram."""
    rows = (
        LatencyCount.objects.filter(period=window.period, hour__gte=window.since, hour__lt=window.until)
        .order_by()
        .values_list("connection_id", "bucket")
        .annotate(n=Sum("count"))
    )
    histograms: dict[int, dict[int, int]] = {}
    for connection_id, bucket, n in rows:
        histograms.setdefault(connection_id, {})[bucket] = int(n)
    names = _connection_names(histograms)
    return {
        "labels": list(names.values()),
        "datasets": [
            {"label": label, "data": [latency_quantile(histograms[c], q) for c in names]}
            for label, q in (("p50", 0.5), ("p95", 0.95))
        ],
    }


def chart_trash(window: Window) -> dict[str, Any]:
    """Events Webmarketer trashed per day (of its processing) and reason."""
    daily = Window(window.since, window.until, "day")
    rows = _hourly(window, HourlyCount.Metric.TRASH).values_list("hour", "status", "count")
    series = _series(daily, rows)
    return {
        "labels": [daily.label(at) for at in daily.buckets()],
        "datasets": [{"label": reason, "data": data} for reason, data in series.items()],
    }


def lead_funnel(window: Window) -> dict[str, Any]:
    """Leads received in the window, how many are now in each state, and the statistics' totals (turnover): the
    current value is each lead's latest change per storageKey, as on the board; all read from the rollups."""
    types = lead_event_types()
    leads = (
        _hourly(window, HourlyCount.Metric.EVENT)
        .filter(status=Event.Status.OK, event_type_ref__in=[t.reference for t in types])
        .aggregate(n=Sum("count"))["n"]
        or 0
    )
    current = dict(_hourly(window, HourlyCount.Metric.LEAD).values_list("status").annotate(n=Sum("count")))
    states: dict[str, str] = {}
    statistics: dict[str, str] = {}
    for t in types:
        for f in t.states:
            states.setdefault(f["storageKey"], f.get("label") or f["storageKey"])
        for f in t.statistics:
            statistics.setdefault(f["storageKey"], f.get("label") or f["storageKey"])
    return {
        "labels": ["Leads", *states.values()],
        "datasets": [{"label": "leads", "data": [leads, *(int(current.get(f"state:{k}") or 0) for k in states)]}],
        "statistics": [
            {"key": k, "label": label, "total": f"{Decimal(current.get(f'statistic:{k}') or 0) / 100:.2f}"}
            for k, label in statistics.items()
        ],
    }


def dashboard_charts(window: Window) -> dict[str, Any]:
    """Every chart of the dashboard, as Chart.js labels and datasets."""
    return {
        "events": chart_events(window),
        "deliveries": chart_deliveries(window),
        "latency": chart_latency(window),
        "trash": chart_trash(window),
        "funnel": lead_funnel(window),
    }


# -- connection health ---------------------------------------------------------------------------------------
@dataclass
class ConnectionHealth:
    """How a connection did over the last hour, from its attempts, and what it still owes now."""

    attempts: int = 0
    failures: int = 0  # attempts not delivered (retry or failed)
    last_success: datetime | None = None
    p95_ms: int | None = None
    due: int = 0  # counted up to DUE_COUNT_CAP + 1

    @property
    def due_label(self) -> str:
        """The deliveries due as the pages show them: past DUE_COUNT_CAP, "1,000+"."""
        return f"{DUE_COUNT_CAP:,}+" if self.due > DUE_COUNT_CAP else str(self.due)

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None

    @property
    def error_percent(self) -> str:
        rate = self.error_rate
        return "—" if rate is None else f"{rate * 100:.0f} %"


def attempts_window_floor(since: datetime) -> int:
    """The id attempts of the window start after: the newest attempt started before `since`. Ids follow send
    order, so walking the primary key back from the newest row stops after the window's rows (Attempt has no
    index on started_at; this reads as many rows as the window holds, never the whole log)."""
    from .models import Attempt

    before = Attempt.objects.filter(started_at__lt=since).order_by("-pk").values_list("pk", flat=True).first()
    return before or 0


# Deliveries due counted up to this many per connection on the connection pages (more show as "1,000+").
DUE_COUNT_CAP = 1_000


def connections_health(connection_ids: list[int], *, now: datetime | None = None) -> dict[int, ConnectionHealth]:
    """Health of each connection: attempts, failures, last success and p95 latency of the last hour (one
    aggregate over the window's attempts, plus one indexed probe per connection for the p95), and deliveries due
    now (the delivery_due_now partial index)."""
    from django.db.models import Count, Max
    from django.utils import timezone

    from .models import Attempt, Delivery
    from .services.delivery import due_now

    now = now or timezone.now()
    since = now - timedelta(hours=1)
    health = {pk: ConnectionHealth() for pk in connection_ids}
    window = Attempt.objects.filter(
        pk__gt=attempts_window_floor(since), started_at__gte=since, delivery__connection_id__in=connection_ids
    ).order_by()
    delivered = Q(outcome=Attempt.Outcome.DELIVERED)
    for row in window.values("delivery__connection_id").annotate(
        n=Count("pk"), bad=Count("pk", filter=~delivered), last=Max("started_at", filter=delivered)
    ):
        item = health[row["delivery__connection_id"]]
        item.attempts, item.failures, item.last_success = row["n"], row["bad"], row["last"]
    for pk, item in health.items():
        if item.attempts:
            rank = max(0, -(-95 * item.attempts // 100) - 1)  # nearest-rank p95
            durations = window.filter(delivery__connection_id=pk).order_by("duration_ms")
            item.p95_ms = durations.values_list("duration_ms", flat=True)[rank : rank + 1].first()
    # Counted up to the cap, per connection: a vendor down for an hour owes 100,000 deliveries, and counting them
    # all made the connection pages 2-3x slower than without that backlog (the chaos run's back-pressure phase).
    for pk in connection_ids:
        health[pk].due = due_now(Delivery, now).filter(connection_id=pk)[: DUE_COUNT_CAP + 1].count()
    return health


# -- bulk replay ---------------------------------------------------------------------------------------------
# What a bulk replay sends again: the latest delivery of an event at a connection when it failed, was cancelled
# or waits for a retry (pending ones are about to go anyway, one being sent is left alone); delivered ones too
# when asked for explicitly.
BULK_REPLAYABLE = ("failed", "cancelled", "retrying")


def _when(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def bulk_replay_deliveries(
    *, criteria: dict, include_delivered: bool = False, _statuses: tuple[str, ...] = ()
) -> QuerySet[Delivery]:
    """The deliveries a bulk replay handles: of the ticked events (`event_ids`) or of the events the log's
    `filters` match (type, status, window as ISO datetimes, text; delivery status and connection apply to the
    delivery itself), latest generation among those up to `max_id` (what existed when the job was made)."""
    max_id = criteria.get("max_id")
    deliveries = Delivery.objects.filter(event__status=Event.Status.OK)
    if max_id:
        deliveries = deliveries.filter(pk__lte=max_id)
    if ids := criteria.get("event_ids"):
        deliveries = deliveries.filter(event_id__in=ids)
    elif (filters := criteria.get("filters")) is not None:
        events = events_filter(
            event_type=filters.get("event_type", ""),
            status=filters.get("status", ""),
            since=_when(filters.get("since")),
            until=_when(filters.get("until")),
            q=filters.get("q", ""),
        )
        deliveries = deliveries.filter(event__in=events.values("pk"))
        if filters.get("delivery_status"):
            deliveries = deliveries.filter(status=filters["delivery_status"])
        if str(filters.get("connection", "")).isdigit():
            deliveries = deliveries.filter(connection_id=int(filters["connection"]))
    else:
        return deliveries.none()
    newer = Delivery.objects.filter(
        event_id=OuterRef("event_id"), connection_id=OuterRef("connection_id"), generation__gt=OuterRef("generation")
    )
    if max_id:
        newer = newer.filter(pk__lte=max_id)
    statuses = (*BULK_REPLAYABLE, "delivered") if include_delivered else BULK_REPLAYABLE
    return deliveries.filter(status__in=_statuses or statuses).exclude(Exists(newer)).order_by()


def bulk_replay_suppressed(*, criteria: dict) -> QuerySet[Delivery]:
    """The suppressed deliveries (no consent) of a bulk replay's selection: never replayed, counted."""
    return bulk_replay_deliveries(criteria=criteria, _statuses=("suppressed",))


def bulk_replay_delivered_connections(*, criteria: dict) -> list[VendorConnection]:
    """Connections holding delivered deliveries of the selection (what include_delivered would send again)."""
    delivered = bulk_replay_deliveries(criteria=criteria, include_delivered=True).filter(status="delivered")
    return list(VendorConnection.objects.filter(pk__in=delivered.values("connection_id")).order_by("name"))


# -- audit: what was sent, who did what ------------------------------------------------------------------------
def attempt_id_at(when: datetime) -> int:
    """The id of the first attempt started at or after `when` (max id + 1 when none). Attempt has no index on
    started_at; ids follow send order, so a binary search over the primary key (a few dozen indexed point reads)
    turns a date bound into an id bound."""
    from .models import Attempt

    ids = Attempt.objects.order_by()
    low, high = (
        ids.order_by("pk").values_list("pk", flat=True).first(),
        ids.order_by("-pk").values_list("pk", flat=True).first(),
    )
    if low is None:
        return 0
    high += 1
    while low < high:
        middle = (low + high) // 2
        row = ids.filter(pk__gte=middle).order_by("pk").values_list("pk", "started_at").first()
        if row is None or row[1] >= when:
            high = middle
        else:
            low = row[0] + 1
    return low


def attempts_filter(
    *,
    connection: str | int = "",
    event_type: str = "",
    outcome: str = "",
    status_code: str | int = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet:
    """Every attempt across vendors, filtered: connection, event type, outcome, HTTP status (a number, or "none"
    for no answer), and a started window (turned into an id range)."""
    from .models import Attempt

    attempts = Attempt.objects.select_related("delivery__connection", "delivery__event").defer("delivery__event__data")
    if str(connection).isdigit():
        attempts = attempts.filter(delivery__connection_id=int(connection))
    if event_type:
        attempts = attempts.filter(delivery__event__event_type_ref=event_type)
    if outcome:
        attempts = attempts.filter(outcome=outcome)
    if str(status_code).isdigit():
        attempts = attempts.filter(response_status=int(status_code))
    elif status_code == "none":
        attempts = attempts.filter(response_status__isnull=True)
    if since:
        attempts = attempts.filter(pk__gte=attempt_id_at(since), started_at__gte=since)
    if until:
        attempts = attempts.filter(pk__lt=attempt_id_at(until) + 1, started_at__lt=until)
    return attempts


def id_page(queryset: QuerySet, *, cursor: str = "", limit: int = 50) -> Page:
    """Rows newest first by id, after the cursor (an id); `limit` of them and the next cursor."""
    if cursor.isdigit():
        queryset = queryset.filter(pk__lt=int(cursor))
    rows = list(queryset.order_by("-pk")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, str(rows[-1].pk) if more else "")


def id_chunks(queryset: QuerySet, *, size: int = 1000):
    """Every row of the queryset, newest first, read `size` at a time by id (an export never holds them all)."""
    last = None
    while True:
        chunk = queryset if last is None else queryset.filter(pk__lt=last)
        rows = list(chunk.order_by("-pk")[:size])
        yield from rows
        if len(rows) < size:
            return
        last = rows[-1].pk


def audit_entries_filter(
    *, user: str = "", action: str = "", since: datetime | None = None, until: datetime | None = None
) -> QuerySet:
    """The audit trail filtered: by who (username), what (action, or its group before the dot), and when."""
    from .models import AuditEntry

    entries = AuditEntry.objects.select_related("user")
    if user:
        entries = entries.filter(user__username=user)
    if action:
        entries = entries.filter(action=action) if "." in action else entries.filter(action__startswith=f"{action}.")
    if since:
        entries = entries.filter(at__gte=since)
    if until:
        entries = entries.filter(at__lt=until)
    return entries


# -- live stream ---------------------------------------------------------------------------------------------
@dataclass
class LiveRow:
    """One line of the live stream: an event received, or an attempt to deliver one (its outcome)."""

    kind: str  # "event" or "attempt"
    at: datetime
    event: Event
    attempt: Any = None


@dataclass
class LiveBatch:
    rows: list[LiveRow]  # newest first
    event_cursor: int
    attempt_cursor: int


def live_batch(
    *, event_cursor: int | None = None, attempt_cursor: int | None = None, event_type: str = "", connection: str = ""
) -> LiveBatch:
    """Events and attempts newer than the cursors (ids), at most LIVE_LIMIT of each, read by primary key; with no
    cursor, the latest ones. Filtered by event type and connection."""
    from .models import Attempt

    events = Event.objects.select_related("source").defer("data").order_by()
    attempts = Attempt.objects.select_related("delivery__connection", "delivery__event").defer(
        "delivery__event__data", "request_body", "response_body"
    )
    if event_type:
        events = events.filter(event_type_ref=event_type)
        attempts = attempts.filter(delivery__event__event_type_ref=event_type)
    if str(connection).isdigit():
        events = events.filter(Exists(Delivery.objects.filter(event_id=OuterRef("pk"), connection_id=int(connection))))
        attempts = attempts.filter(delivery__connection_id=int(connection))

    def newer(queryset: QuerySet, cursor: int | None) -> list:
        if cursor is None:
            return list(reversed(queryset.order_by("-pk")[:LIVE_LIMIT]))
        return list(queryset.filter(pk__gt=cursor).order_by("pk")[:LIVE_LIMIT])

    new_events, new_attempts = newer(events, event_cursor), newer(attempts, attempt_cursor)
    rows = [LiveRow("event", e.received_at, e) for e in new_events]
    rows += [LiveRow("attempt", a.started_at, a.delivery.event, a) for a in new_attempts]
    rows.sort(key=lambda r: r.at, reverse=True)

    def after(rows: list, cursor: int | None, model) -> int:
        if rows:
            return rows[-1].pk
        if cursor is None:  # nothing matches yet: from the newest row of all, never from the start of the log
            return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        return cursor

    return LiveBatch(rows, after(new_events, event_cursor, Event), after(new_attempts, attempt_cursor, Attempt))


LIVE_LIMIT = 50
