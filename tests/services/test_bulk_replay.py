"""Bulk replay jobs: what they select, progress in chunks, cancel, resume after a crash, the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import event_store, event_type_make, route_make, user_make, vendor_connection_make
from tracking.models import AuditEntry, BulkReplay, Delivery
from tracking.selectors import bulk_replay_deliveries
from tracking.services import bulk_replay as service
from tracking.services import replay

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    """Jobs and dispatchers are run by hand here: what the service enqueues is only recorded."""
    queued = []
    monkeypatch.setattr("tracking.tasks.bulk_replay_task.delay", queued.append)
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", lambda pk: None)
    return queued


@pytest.fixture
def routes():
    event_type = event_type_make()
    return route_make(event_type, vendor_connection_make("tracify")), route_make(
        event_type, vendor_connection_make("algonomy")
    )


def failed_events(routes, n: int, *, delivered_at=()):
    """n events owed to both connections: failed at each, except delivered at the connections named."""
    events = [
        event_store(routes[0].event_type, {"email": f"p{i}@b.co"}, nonce=f"n-{i}", routes=routes) for i in range(n)
    ]
    Delivery.objects.update(status="failed")
    Delivery.objects.filter(connection__kind__in=delivered_at).update(status="delivered")
    return events


def test_a_job_over_a_filter_replays_only_the_failed_ones_of_that_connection(routes, no_queue):
    failed_events(routes, 5, delivered_at=("algonomy",))
    tracify = routes[0].connection

    job = service.bulk_replay_create(
        user=user_make("Marketing"), criteria={"filters": {"connection": str(tracify.pk)}}, description="tracify"
    )
    assert (job.total, job.status, no_queue) == (5, "queued", [])  # queued on commit only
    assert service.bulk_replay_run(job_id=job.pk) is False

    job.refresh_from_db()
    assert (job.status, job.done, job.failed, job.total) == ("done", 5, 0, 5)
    assert Delivery.objects.filter(generation=1, connection=tracify, status="pending").count() == 5
    assert not Delivery.objects.filter(generation=1).exclude(connection=tracify).exists()
    audit = AuditEntry.objects.get(action="bulk_replay.start")
    assert audit.details == {
        "job": job.pk,
        "what": "tracify",
        "deliveries": 5,
        "include_delivered": False,
        "suppressed_skipped": 0,
    }
    finish = AuditEntry.objects.get(action="bulk_replay.finish")
    assert finish.user == job.created_by and finish.details["replayed"] == 5


def test_delivered_ones_are_skipped_unless_included(routes):
    events = failed_events(routes, 3, delivered_at=("algonomy",))
    criteria = {"event_ids": [e.pk for e in events]}

    assert bulk_replay_deliveries(criteria=criteria).count() == 3
    job = service.bulk_replay_create(user=None, criteria=criteria, include_delivered=True)
    service.bulk_replay_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.total, job.done) == (6, 6)
    assert Delivery.objects.filter(generation=1, connection__kind="algonomy").count() == 3


def test_progress_moves_chunk_by_chunk_and_a_cancel_stops_it_halfway(routes):
    failed_events(routes, 10)
    job = service.bulk_replay_create(user=None, criteria={"filters": {}})
    assert job.total == 20

    assert service.bulk_replay_chunk(job_id=job.pk, size=5)
    assert service.bulk_replay_chunk(job_id=job.pk, size=5)
    job.refresh_from_db()
    assert (job.status, job.done, job.cursor) == (
        "running",
        10,
        sorted(Delivery.objects.values_list("pk", flat=True))[9],
    )

    service.bulk_replay_cancel(job=job, user=user_make("Marketing"))
    assert not service.bulk_replay_chunk(job_id=job.pk, size=5)

    job.refresh_from_db()
    assert (job.status, job.done) == ("cancelled", 10) and job.finished_at
    assert Delivery.objects.filter(generation=1).count() == 10
    assert AuditEntry.objects.get(action="bulk_replay.cancel").details == {"job": job.pk, "handled": 10}


def test_a_run_that_crashes_mid_chunk_resumes_from_the_cursor_without_sending_anything_twice(routes, monkeypatch):
    failed_events(routes, 10)
    job = service.bulk_replay_create(user=None, criteria={"filters": {}})
    assert service.bulk_replay_chunk(job_id=job.pk, size=8)
    real, calls = replay.delivery_replay_one, []

    def dies_on_the_fourth(**kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise SystemExit("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(service, "delivery_replay_one", dies_on_the_fourth)
    with pytest.raises(SystemExit):
        service.bulk_replay_run(job_id=job.pk, budget=60)
    job.refresh_from_db()
    assert (job.status, job.done) == ("running", 8)  # the chunk in flight was rolled back with its cursor
    assert Delivery.objects.filter(generation=1).count() == 8

    monkeypatch.setattr(service, "delivery_replay_one", real)
    service.bulk_replay_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.done, job.failed, job.total) == ("done", 20, 0, 20)
    assert Delivery.objects.filter(generation=1).count() == 20 and not Delivery.objects.filter(generation=2).exists()


def test_the_sweep_requeues_a_job_whose_run_stopped_and_only_that_one(routes, no_queue):
    failed_events(routes, 2)
    stopped = service.bulk_replay_create(user=None, criteria={"filters": {}})
    alive = service.bulk_replay_create(user=None, criteria={"filters": {}})
    long_ago = timezone.now() - timedelta(hours=1)
    BulkReplay.objects.filter(pk=stopped.pk).update(status="running", started_at=long_ago)
    BulkReplay.objects.filter(pk=alive.pk).update(status="running", started_at=timezone.now())

    assert service.bulk_replays_sweep() == {"bulk_replays_requeued": 1}
    assert no_queue == [stopped.pk]
    assert service.bulk_replays_sweep() == {"bulk_replays_requeued": 0}  # once per stale period


def test_a_delivery_replayed_meanwhile_is_not_replayed_again(routes):
    (event,) = failed_events(routes, 1)
    job = service.bulk_replay_create(user=None, criteria={"event_ids": [event.pk]})
    replay.event_replay(event=event)  # someone replays it by hand first

    service.bulk_replay_run(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.done) == ("done", 2)
    assert Delivery.objects.filter(generation=2).count() == 0
