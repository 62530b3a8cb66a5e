"""Rollups: the hourly counts and the latency histogram follow ingest, delivery outcomes and trash pulls, and a
rebuild from the log gives the same rows (runs on SQLite and on PostgreSQL: the upsert is raw SQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import event_type_make, route_make, source_make
from tests.services.conftest import EVENTS_URL
from tracking.models import Delivery, Event, HourlyCount, LatencyCount, TrashedEvent
from tracking.services import rollups
from tracking.services.delivery import connection_dispatch
from tracking.services.ingest import events_ingest
from tracking.services.leads import lead_change_record

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]


def items(n: int, *, prefix: str = "n", valid: bool = True) -> list[dict]:
    data = {"email": "p@example.com", "message": "hi"} if valid else {"email": "not an email"}
    return [{"eventType": "contact-form", "nonce": f"{prefix}-{i}", "data": data} for i in range(n)]


def counts(metric: str, period: str = "h") -> dict[tuple, int]:
    return {
        (row.hour, row.event_type_ref, row.connection_id, row.status): row.count
        for row in HourlyCount.objects.filter(metric=metric, period=period)
    }


def snapshot() -> tuple[dict, dict]:
    # Rows an incremental update brought back to 0 (a state set, then unset) are not rows a rebuild writes.
    hourly = {
        (r.period, r.hour, r.metric, r.event_type_ref, r.connection_id, r.status): r.count
        for r in HourlyCount.objects.exclude(count=0)
    }
    latency = {(r.period, r.hour, r.connection_id, r.bucket): r.count for r in LatencyCount.objects.exclude(count=0)}
    return hourly, latency


@pytest.fixture
def routed(connection):
    event_type = event_type_make()
    route_make(event_type, connection)
    source, _ = source_make()
    return source


def test_ingest_counts_events_by_hour_type_and_status(routed):
    events_ingest(source=routed, items=items(3) + items(2, prefix="bad", valid=False))
    events_ingest(source=routed, items=items(1, prefix="more") + items(1))  # the second one is a duplicate

    hour = rollups.hour_of(timezone.now())
    assert counts("event") == {(hour, "contact-form", 0, "ok"): 4, (hour, "contact-form", 0, "invalid"): 2}
    day = hour.replace(hour=0)
    assert counts("event", "d") == {(day, "contact-form", 0, "ok"): 4, (day, "contact-form", 0, "invalid"): 2}


def test_an_ingest_rolled_back_counts_nothing(routed, monkeypatch):
    def broken(events):
        raise RuntimeError("after the insert")

    monkeypatch.setattr("tracking.services.ingest._deliveries_create", broken)
    with pytest.raises(RuntimeError):
        events_ingest(source=routed, items=items(2))

    assert HourlyCount.objects.count() == 0 and Event.objects.count() == 0


def test_delivery_outcomes_are_counted_once_with_their_latency(routed, connection, vendor):
    vendor.post(EVENTS_URL).mock(
        side_effect=[httpx.Response(200, json="wm-1"), httpx.Response(400, json={"message": "bad"})]
        + [httpx.Response(503)] * 5
    )
    connection.batch_size = 1
    connection.save()
    events_ingest(source=routed, items=items(3))

    connection_dispatch(connection_id=connection.pk)  # delivered
    connection_dispatch(connection_id=connection.pk)  # failed (400)
    connection_dispatch(connection_id=connection.pk)  # 503: retrying, not final, not counted

    hour = rollups.hour_of(timezone.now())
    assert counts("delivery") == {(hour, "", connection.pk, "delivered"): 1, (hour, "", connection.pk, "failed"): 1}
    (latency,) = LatencyCount.objects.filter(period="h")
    assert LatencyCount.objects.get(period="d").count == 1
    assert (latency.hour, latency.connection_id, latency.count) == (hour, connection.pk, 1)
    delivered = Delivery.objects.get(status="delivered")
    ms = (delivered.delivered_at - delivered.created_at).total_seconds() * 1000
    assert latency.bucket == LatencyCount.bucket_of(ms)


def test_a_route_disabled_in_flight_counts_the_delivery_cancelled(routed, connection, vendor):
    events_ingest(source=routed, items=items(1))
    connection.routes.update(enabled=False)

    connection_dispatch(connection_id=connection.pk)

    assert list(counts("delivery").values()) == [1]
    assert next(iter(counts("delivery")))[3] == "cancelled"


def test_the_rollup_adds_to_existing_rows_of_the_hour_and_the_day(db):
    hour, later = datetime(2026, 11, 30, 10, tzinfo=UTC), datetime(2026, 11, 30, 15, tzinfo=UTC)
    key = (hour, "event", "contact-form", 0, "ok")
    rollups.counts_add({key: 2})
    rollups.counts_add({key: 3, (hour, "event", "contact-form", 0, "invalid"): 1, (later, *key[1:]): 4})

    assert counts("event") == {
        (hour, "contact-form", 0, "ok"): 5,
        (hour, "contact-form", 0, "invalid"): 1,
        (later, "contact-form", 0, "ok"): 4,
    }
    day = hour.replace(hour=0)
    assert counts("event", "d") == {(day, "contact-form", 0, "ok"): 9, (day, "contact-form", 0, "invalid"): 1}


def test_rebuild_equals_the_incremental_rollups(routed, connection, vendor):
    vendor.post(EVENTS_URL).mock(
        side_effect=[httpx.Response(200, json=f"wm-{i}") for i in range(3)] + [httpx.Response(422)] * 2
    )
    events_ingest(source=routed, items=items(5) + items(2, prefix="bad", valid=False))
    connection_dispatch(connection_id=connection.pk)
    TrashedEvent.objects.bulk_create(
        [
            TrashedEvent(
                wm_id=f"t-{i}",
                connection=connection,
                event_type_ref="contact-form",
                errors=[{"type": "invalid-field", "field": {"storageKey": "phone"}, "value": "0613"}],
                processing_date=timezone.now() - timedelta(days=i),
            )
            for i in range(2)
        ]
    )
    rollups.trash_counted(TrashedEvent.objects.all())
    first, second = Event.objects.filter(status="ok").order_by("id")[:2]
    for event, key, kind, value in [
        (first, "qualified", "state", 1),
        (first, "qualified", "state", 0),
        (second, "qualified", "state", 1),
        (second, "turnover", "statistic", "99.90"),
    ]:
        lead_change_record(event=event, kind=kind, storage_key=key, value=value)
    incremental = snapshot()
    assert incremental[0] and incremental[1]

    call_command("rollups_rebuild", stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert snapshot() == incremental


def test_rebuild_replaces_drifted_rows(routed):
    events_ingest(source=routed, items=items(2))
    HourlyCount.objects.update(count=99)
    HourlyCount.objects.create(hour=datetime(2020, 1, 1, tzinfo=UTC), metric="event", event_type_ref="gone", count=1)

    rollups.rollups_rebuild()

    assert list(counts("event").values()) == [2]


def test_trash_reasons_read_the_first_error():
    assert rollups.trash_reason([{"type": "invalid-field", "field": {"storageKey": "phone"}}]) == "invalid-field: phone"
    assert rollups.trash_reason([{"type": "missing-field", "field": "email"}]) == "missing-field: email"
    assert rollups.trash_reason([]) == "unknown"
    assert rollups.trash_reason("not a list") == "unknown"


@pytest.mark.parametrize(
    ("ms", "bucket"), [(0, 0), (9.9, 0), (10, 1), (14.1, 1), (14.2, 2), (20, 3), (1000, 14), (10**12, 49)]
)
def test_latency_buckets_are_log_spaced(ms, bucket):
    assert LatencyCount.bucket_of(ms) == bucket
    if 0 < bucket < LatencyCount.BUCKETS - 1:
        assert ms < LatencyCount.upper_ms(bucket)


def test_lead_changes_move_the_rollup_by_the_latest_value(routed):
    (result,) = events_ingest(source=routed, items=items(1))
    lead = result.event
    hour = rollups.hour_of(lead.received_at)

    def leads() -> dict[str, int]:
        return {status: n for (_, _, _, status), n in counts("lead").items()}

    lead_change_record(event=lead, kind="state", storage_key="qualified", value=1)
    lead_change_record(event=lead, kind="state", storage_key="qualified", value=1)  # the same again: no move
    lead_change_record(event=lead, kind="statistic", storage_key="turnover", value="100")
    assert leads() == {"state:qualified": 1, "statistic:turnover": 10000}

    lead_change_record(event=lead, kind="state", storage_key="qualified", value=0)
    lead_change_record(event=lead, kind="statistic", storage_key="turnover", value="250.50")
    assert leads() == {"state:qualified": 0, "statistic:turnover": 25050}
    assert next(iter(counts("lead")))[0] == hour  # the hour the lead came in, not the hour of the change


@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_add_up():
    """Four requests at once, each in its own transaction and database connection: no count is lost."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    event_type_make()
    source, _ = source_make()

    def ingest(part: int) -> int:
        try:
            return len(events_ingest(source=source, items=items(25, prefix=f"t{part}")))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sum(pool.map(ingest, range(4))) == 100

    assert sum(counts("event").values()) == 100 and sum(counts("event", "d").values()) == 100


def test_a_replay_counts_the_generation_it_supersedes_as_cancelled(routed, connection, vendor):
    from tracking.services.replay import event_replay

    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503))
    (result,) = events_ingest(source=routed, items=items(1))
    connection_dispatch(connection_id=connection.pk)  # retrying: not final yet
    assert counts("delivery") == {}

    event_replay(event=result.event)

    assert [status for (_, _, _, status) in counts("delivery")] == ["cancelled"]
    incremental = snapshot()
    rollups.rollups_rebuild()
    assert snapshot() == incremental


def test_a_routes_queue_cancelled_is_counted(routed, connection):
    from tracking.services.routes import route_deliveries_cancel

    events_ingest(source=routed, items=items(3))
    Delivery.objects.filter(pk=Delivery.objects.first().pk).update(status="delivered")  # not due: left alone

    assert route_deliveries_cancel(route_id=connection.routes.get().pk, reason="route disabled") == 2

    assert [(status, n) for (_, _, _, status), n in counts("delivery").items()] == [("cancelled", 2)]


def test_the_sweep_giving_up_is_counted(routed, settings):
    from tracking.services.delivery import sending_take_back

    events_ingest(source=routed, items=items(2))
    long_ago = timezone.now() - timedelta(hours=2)
    Delivery.objects.update(status="sending", claimed_at=long_ago)
    Delivery.objects.filter(pk=Delivery.objects.first().pk).update(take_backs=settings.HUB_MAX_TAKE_BACKS - 1)

    assert sending_take_back(Delivery, now=timezone.now()) == 2  # one failed, one due again

    assert [(status, n) for (_, _, _, status), n in counts("delivery").items()] == [("failed", 1)]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"failed", "retrying"}
