"""Rollups: hourly counts the dashboard reads instead of the log, kept up to date by the services that change
the rows, in the same transaction as the change (so a count never runs ahead of or behind what committed).

Each batch adds a couple of statements: one INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count
for the counts and one for the latency histogram (SQLite 3.24+ and PostgreSQL both speak it), each writing the
hour's row and the day's row (charts of days read the daily rows: a month is 30 rows per key, not 720). The addition is
done by the database under the row's lock, so concurrent batches add up; keys are sorted so two batches take
their row locks in the same order and never deadlock. `rollups_rebuild` recomputes everything from the log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from ..models import Delivery, Event, HourlyCount, LatencyCount, LeadChange, TrashedEvent

FINAL_STATUSES = (
    Delivery.Status.DELIVERED,
    Delivery.Status.FAILED,
    Delivery.Status.CANCELLED,
    Delivery.Status.SUPPRESSED,
)
REASON_LIMIT = 200
# Ids per UPDATE … WHERE id IN (…) when closing many deliveries (SQLite allows 32,766 parameters).
CLOSE_CHUNK = 5000

CountKey = tuple[datetime, str, str, int, str]  # hour, metric, event_type_ref, connection_id, status
LatencyKey = tuple[datetime, int, int]  # hour, connection_id, bucket


def hour_of(when: datetime) -> datetime:
    """The UTC hour `when` falls in."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


# -- writing -------------------------------------------------------------------------------------------------
def _upsert(table: str, columns: tuple[str, ...], key: tuple[str, ...], rows: list[tuple]) -> None:
    """Add each row's last column (the count) to the row of the same key, creating it: one statement."""
    if not rows:
        return
    quote = db_connection.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    # Table and column names come from the models, every value is a parameter.
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({', '.join(quote(c) for c in key)}) "
        f"DO UPDATE SET {quote('count')} = {quote(table)}.{quote('count')} + excluded.{quote('count')}"
    )
    adapt = db_connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for row in rows:
        params += [adapt(v) if isinstance(v, datetime) else v for v in row]
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)


def _both_grains(counts: Counter) -> list[tuple]:
    """Rows (period, start, *key, count) for the hour and for the day of each hourly key, sorted (so concurrent
    batches lock rows in one order)."""
    rows: Counter = Counter()
    for (hour, *key), n in counts.items():
        if n:
            rows[(HourlyCount.Period.HOUR.value, hour, *key)] += n
            rows[(HourlyCount.Period.DAY.value, hour.replace(hour=0), *key)] += n
    return [(*key, n) for key, n in sorted(rows.items())]


def counts_add(counts: Counter[CountKey]) -> None:
    """Add these hourly counts to the rollup, hour and day rows (one statement)."""
    key = ("period", "hour", "metric", "event_type_ref", "connection_id", "status")
    _upsert(HourlyCount._meta.db_table, (*key, "count"), key, _both_grains(counts))


def latencies_add(counts: Counter[LatencyKey]) -> None:
    """Add these hourly counts to the latency histogram, hour and day rows (one statement)."""
    key = ("period", "hour", "connection_id", "bucket")
    _upsert(LatencyCount._meta.db_table, (*key, "count"), key, _both_grains(counts))


def events_counted(events: Iterable[Event]) -> None:
    """Count newly stored events (ingest's bulk insert), by hour received, type and status."""
    counts: Counter[CountKey] = Counter(
        (hour_of(e.received_at), HourlyCount.Metric.EVENT, e.event_type_ref, 0, e.status) for e in events
    )
    counts_add(counts)


def deliveries_finished(outcomes: Iterable[tuple[Delivery, str]], *, at: datetime) -> None:
    """Count deliveries that just reached a final status (each one once: the caller passes only the rows its
    conditional update moved), by the hour they were created; and the latency of the delivered ones."""
    counts: Counter[CountKey] = Counter()
    latencies: Counter[LatencyKey] = Counter()
    for delivery, status in outcomes:
        if status not in FINAL_STATUSES:
            continue
        hour = hour_of(delivery.created_at)
        counts[(hour, HourlyCount.Metric.DELIVERY, "", delivery.connection_id, status)] += 1
        if status == Delivery.Status.DELIVERED:
            ms = (at - delivery.created_at).total_seconds() * 1000
            latencies[(hour, delivery.connection_id, LatencyCount.bucket_of(ms))] += 1
    counts_add(counts)
    latencies_add(latencies)


def deliveries_close(deliveries: QuerySet[Delivery], status: str, **fields: Any) -> int:
    """Move these deliveries to a final `status` (with `fields`, F() allowed) and count them, in one transaction.
    For the bulk moves (a route's queue cancelled, the sweep giving up): the rows are locked first (FOR UPDATE on
    PostgreSQL; on SQLite the IMMEDIATE transaction holds the write lock), so what is counted is what moved."""
    with transaction.atomic():
        rows = list(deliveries.order_by().select_for_update().values_list("pk", "connection_id", "created_at"))
        moved = 0
        for start in range(0, len(rows), CLOSE_CHUNK):
            chunk = [pk for pk, _, _ in rows[start : start + CLOSE_CHUNK]]
            moved += Delivery.objects.filter(pk__in=chunk).update(status=status, **fields)
        closed = [(Delivery(connection_id=c, created_at=t), status) for _, c, t in rows]
        deliveries_finished(closed, at=timezone.now())
    return moved


def trash_reason(errors: Any) -> str:
    """One trashed event's reason in words: its first error's type and the field it names."""
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return "unknown"
    kind = str(first.get("type") or first.get("message") or "error")
    field = first.get("field")
    name = (field.get("storageKey") or field.get("ingestionKey")) if isinstance(field, dict) else field
    reason = f"{kind}: {name}" if isinstance(name, str) and name else kind
    return reason[:REASON_LIMIT]


def _trash_hour(item: TrashedEvent) -> datetime:
    return hour_of(item.processing_date or item.pulled_at)


def trash_counted(items: Iterable[TrashedEvent]) -> None:
    """Count newly stored trashed events by the hour Webmarketer processed them, type and reason."""
    counts: Counter[CountKey] = Counter(
        (_trash_hour(t), HourlyCount.Metric.TRASH, t.event_type_ref, 0, trash_reason(t.errors)) for t in items
    )
    counts_add(counts)


def _lead_amount(kind: str, value: Decimal | None) -> int:
    """What a lane's latest value adds to its rollup: 1 for a state set to 1, cents for a statistic."""
    if value is None:
        return 0
    if kind == LeadChange.Kind.STATE:
        return 1 if value == 1 else 0
    return int((value * 100).to_integral_value())


def lead_change_counted(change: LeadChange) -> None:
    """Move the lead rollup by what this change did to its lane's latest value (latest now − latest before).
    The lead's row is locked first (FOR NO KEY UPDATE: no deadlock with the key-share lock the insert took), so
    changes of one lead are counted one after the other and each sees the ones committed before it."""
    lane = LeadChange.objects.filter(event_id=change.event_id, kind=change.kind, storage_key=change.storage_key)
    event = Event.objects.select_for_update(no_key=True).only("received_at", "event_type_ref").get(pk=change.event_id)
    latest = list(lane.order_by("-id").values_list("id", "value")[:2])
    if not latest or latest[0][0] != change.pk:
        return  # a newer change was recorded first: the latest value did not move
    before = latest[1][1] if len(latest) > 1 else None
    delta = _lead_amount(change.kind, change.value) - _lead_amount(change.kind, before)
    key = (
        hour_of(event.received_at),
        HourlyCount.Metric.LEAD,
        event.event_type_ref,
        0,
        f"{change.kind}:{change.storage_key}",
    )
    counts_add(Counter({key: delta}))


# -- rebuilding ------------------------------------------------------------------------------------------------
def _chunks(counter: Counter, size: int = 500) -> Iterable[Counter]:
    items = list(counter.items())
    for start in range(0, len(items), size):
        yield Counter(dict(items[start : start + size]))


@transaction.atomic
def rollups_rebuild() -> dict[str, int]:
    """Recompute every rollup from the log (existing data, drift after a manual edit). Aggregates run in the
    database; only the delivered rows' two dates and the trash items' errors are read, in chunks."""
    HourlyCount.objects.all().delete()
    LatencyCount.objects.all().delete()
    counts: Counter[CountKey] = Counter()
    events = (
        Event.objects.order_by()
        .annotate(h=TruncHour("received_at", tzinfo=UTC))
        .values_list("h", "event_type_ref", "status")
        .annotate(n=Count("id"))
    )
    for hour, ref, status, n in events:
        counts[(hour_of(hour), HourlyCount.Metric.EVENT, ref, 0, status)] += n
    deliveries = (
        Delivery.objects.order_by()
        .filter(status__in=FINAL_STATUSES)
        .annotate(h=TruncHour("created_at", tzinfo=UTC))
        .values_list("h", "connection_id", "status")
        .annotate(n=Count("id"))
    )
    for hour, connection_id, status, n in deliveries:
        counts[(hour_of(hour), HourlyCount.Metric.DELIVERY, "", connection_id, status)] += n
    latencies: Counter[LatencyKey] = Counter()
    delivered = (
        Delivery.objects.order_by()
        .filter(status=Delivery.Status.DELIVERED, delivered_at__isnull=False)
        .values_list("connection_id", "created_at", "delivered_at")
    )
    for connection_id, created_at, delivered_at in delivered.iterator(chunk_size=5000):
        ms = (delivered_at - created_at).total_seconds() * 1000
        latencies[(hour_of(created_at), connection_id, LatencyCount.bucket_of(ms))] += 1
    newer = LeadChange.objects.filter(
        event=OuterRef("event"), kind=OuterRef("kind"), storage_key=OuterRef("storage_key"), id__gt=OuterRef("id")
    )
    latest = (
        LeadChange.objects.order_by()
        .exclude(Exists(newer))
        .values_list("event__received_at", "event__event_type_ref", "kind", "storage_key", "value")
    )
    for received, ref, kind, key, value in latest.iterator(chunk_size=5000):
        counts[(hour_of(received), HourlyCount.Metric.LEAD, ref, 0, f"{kind}:{key}")] += _lead_amount(kind, value)
    for item in TrashedEvent.objects.order_by().only("processing_date", "pulled_at", "event_type_ref", "errors"):
        counts[(_trash_hour(item), HourlyCount.Metric.TRASH, item.event_type_ref, 0, trash_reason(item.errors))] += 1
    for part in _chunks(counts):
        counts_add(part)
    for part in _chunks(latencies):
        latencies_add(part)
    return {"counts": len(counts), "latencies": len(latencies)}
