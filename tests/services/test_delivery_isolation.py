"""Isolation of a failing connection (respx): a probe instead of a batch, a run stopped by its failures after one
round of its threads, no immediate re-queue after a run that only failed; nothing left in sending."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from tests.services.conftest import EVENTS_URL, contact_forms_ingest, dispatch
from tracking import tasks
from tracking.models import Attempt, Delivery, VendorConnection
from tracking.services import delivery as service

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]


def failing(connection, *, failures=3, open_until=None):
    VendorConnection.objects.filter(pk=connection.pk).update(circuit_failures=failures, circuit_open_until=open_until)
    connection.refresh_from_db()


def hanging(request):
    time.sleep(0.05)
    raise httpx.ReadTimeout("timed out", request=request)


def test_a_failing_connection_gets_one_probe_request_not_a_batch(connection, vendor):
    events = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503))
    contact_forms_ingest(connection, n=5)
    failing(connection)

    assert dispatch(connection) == 1

    assert events.call_count == 1
    assert Attempt.objects.count() == 1
    assert Delivery.objects.filter(status="pending").count() == 4
    connection.refresh_from_db()
    assert connection.circuit_open  # a failed probe: no more probes until the cooldown is over


def test_a_delivered_probe_closes_the_circuit_and_the_next_run_takes_a_full_batch(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    contact_forms_ingest(connection, n=5)
    failing(connection, failures=12, open_until=timezone.now() - timedelta(seconds=1))  # half-open

    assert dispatch(connection) == 1
    connection.refresh_from_db()
    assert (connection.circuit_failures, connection.circuit_open_until) == (0, None)

    assert dispatch(connection) == 4
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_failed_probe_of_a_half_open_circuit_opens_it_again(connection, vendor):
    events = vendor.post(EVENTS_URL).mock(side_effect=hanging)
    contact_forms_ingest(connection, n=5)
    failing(connection, failures=service.CIRCUIT_THRESHOLD, open_until=timezone.now() - timedelta(seconds=1))

    assert dispatch(connection) == 1

    connection.refresh_from_db()
    assert events.call_count == 1 and connection.circuit_open


def test_a_hanging_vendor_stops_the_run_after_one_round_of_its_threads(connection, vendor, settings):
    settings.HUB_DISPATCH_CONCURRENCY = 4
    events = vendor.post(EVENTS_URL).mock(side_effect=hanging)
    contact_forms_ingest(connection, n=20)

    assert dispatch(connection) == 20

    assert events.call_count == 4  # one round, not the batch
    statuses = list(Delivery.objects.values_list("status", "attempts"))
    assert sorted(statuses).count(("retrying", 1)) == 4
    # The rest went back to due, no attempt counted; nothing stays in sending.
    released = Delivery.objects.filter(attempts=0)
    assert released.count() == 16 and set(released.values_list("status", flat=True)) == {"retrying"}
    assert not released.filter(next_attempt_at__gt=timezone.now()).exists()
    connection.refresh_from_db()
    assert connection.circuit_open


def test_one_failure_among_deliveries_does_not_stop_the_run(connection, vendor, settings):
    settings.HUB_DISPATCH_CONCURRENCY = 1
    answers = iter([httpx.Response(200, json="wm-1"), httpx.Response(503)] + [httpx.Response(200, json="wm-2")] * 8)
    events = vendor.post(EVENTS_URL).mock(side_effect=lambda request: next(answers))
    contact_forms_ingest(connection, n=10)

    assert dispatch(connection) == 10

    assert events.call_count == 10
    assert Delivery.objects.filter(status="delivered").count() == 9
    connection.refresh_from_db()
    assert (connection.circuit_failures, connection.circuit_open) == (0, False)


def test_the_dispatch_does_not_go_again_at_once_after_a_run_that_only_failed(connection, vendor, monkeypatch):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503))
    contact_forms_ingest(connection, n=3)
    again = []
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", again.append)

    assert tasks.dispatch_connection(connection.pk) == 3

    assert again == []  # the next wake, the sweep or the backoff brings the probe
    assert not Delivery.objects.filter(status="sending").exists()


def test_the_dispatch_goes_again_after_a_run_that_delivered(connection, vendor, monkeypatch, settings):
    settings.HUB_DISPATCH_BATCH = 2
    settings.HUB_RUN_SLICE_SECONDS = 0  # one batch per run
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    contact_forms_ingest(connection, n=3)
    again = []
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", again.append)

    assert tasks.dispatch_connection(connection.pk) == 2

    assert again == [connection.pk]


@pytest.fixture
def two_runs(settings, monkeypatch):
    """Two runs per connection while 2 batches of 2 are due; one batch per run; the wakes it queues, recorded."""
    settings.HUB_RUNS_PER_CONNECTION = 2
    settings.HUB_BACKLOG_BATCHES = 2
    settings.HUB_DISPATCH_BATCH = 2
    settings.HUB_RUN_SLICE_SECONDS = 0
    woken: list[list[int]] = []
    monkeypatch.setattr(service, "connections_wake", lambda ids, committed=False: woken.append(list(ids)))
    return woken


def test_a_healthy_connection_with_a_long_queue_gets_a_second_run(connection, vendor, two_runs):
    events = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    contact_forms_ingest(connection, n=6)
    service.deliveries_claim(connection_id=connection.pk, limit=2)  # another run is sending; 4 due

    assert dispatch(connection) == 2  # claims are row-level: the two runs never share a row

    assert events.call_count == 2
    assert two_runs == []  # two runs already: no third
    assert dispatch(connection) == 0  # 2 due now: one run (the one in flight) is enough


def test_a_run_with_room_for_another_beside_it_queues_it(connection, vendor, two_runs):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    contact_forms_ingest(connection, n=6)

    assert dispatch(connection) == 2

    assert two_runs == [[connection.pk]]


def test_a_failing_connection_keeps_one_run_however_long_its_queue(connection, vendor, two_runs):
    events = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    contact_forms_ingest(connection, n=8)
    service.deliveries_claim(connection_id=connection.pk, limit=1)  # another run is sending
    failing(connection)

    assert dispatch(connection) == 0

    assert events.call_count == 0 and two_runs == []


def test_a_connection_has_one_run_at_a_time(connection, vendor):
    events = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    contact_forms_ingest(connection, n=3)
    service.deliveries_claim(connection_id=connection.pk, limit=1)  # another run is sending

    assert dispatch(connection) == 0  # it holds no second worker process

    assert events.call_count == 0
    Delivery.objects.filter(status="sending").update(status="delivered", claimed_at=None)
    assert dispatch(connection) == 2


def test_the_circuit_cooldown_doubles_per_failure_up_to_its_cap():
    cooldowns = [service.circuit_cooldown(n).total_seconds() for n in (1, 2, 3, 5, 6, 40, 10**6)]

    assert cooldowns == [1, 2, 4, 16, 30, 30, 30]


def test_a_probe_failed_once_opens_the_circuit_briefly_and_a_vendor_that_keeps_failing_for_long(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503))
    contact_forms_ingest(connection, n=3)
    started = timezone.now()

    failing(connection, failures=1)  # failing since one failure: the probe's makes two
    assert dispatch(connection) == 1
    connection.refresh_from_db()
    assert connection.circuit_open_until - started < timedelta(seconds=5)

    failing(connection, failures=service.CIRCUIT_THRESHOLD)
    assert dispatch(connection) == 1
    connection.refresh_from_db()
    assert connection.circuit_open_until - started >= service.CIRCUIT_COOLDOWN


def test_the_circuit_stays_open_ten_times_as_long_as_the_failed_run_held_its_worker():
    assert service.circuit_cooldown(1, busy=0.5).total_seconds() == 5
    assert service.circuit_cooldown(1, busy=0.01).total_seconds() == 1
    assert service.circuit_cooldown(1, busy=60) == service.CIRCUIT_COOLDOWN


def test_a_hanging_probe_opens_the_circuit_for_ten_times_its_wait(connection, vendor):
    def slow_timeout(request):
        time.sleep(0.3)
        raise httpx.ReadTimeout("timed out", request=request)

    vendor.post(EVENTS_URL).mock(side_effect=slow_timeout)
    contact_forms_ingest(connection, n=2)
    failing(connection, failures=1)  # the probe's failure makes two: 2 s by count alone
    started = timezone.now()

    assert dispatch(connection) == 1

    connection.refresh_from_db()
    assert connection.circuit_open_until - started >= timedelta(seconds=3)  # ten times the 0.3 s it held
    assert connection.circuit_open_until - started < service.CIRCUIT_COOLDOWN


def test_a_rate_limited_connection_sends_a_slice_per_run_and_goes_again_after_it(
    connection, vendor, monkeypatch, settings
):
    settings.HUB_DISPATCH_BATCH = 50
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    VendorConnection.objects.filter(pk=connection.pk).update(max_rate=5)
    contact_forms_ingest(connection, n=8)
    later = []
    monkeypatch.setattr(
        "tracking.tasks.dispatch_connection.apply_async", lambda args, countdown: later.append(countdown)
    )

    assert tasks.dispatch_connection(connection.pk) == 5  # one second of its rate, not the batch

    assert later == [service.RATE_SLICE]  # the next slice, without holding the worker meanwhile
    assert Delivery.objects.filter(status="delivered").count() == 5


def test_a_rate_limiter_lets_a_burst_go_at_once_then_keeps_the_rate(monkeypatch):
    from tracking.vendors import http

    clock = [100.0]
    slept = []
    monkeypatch.setattr(http.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(http.time, "sleep", slept.append)
    limiter = http.RateLimiter(20, burst=5)

    for _ in range(5):
        limiter.wait()
    assert slept == []  # the bucket's five go at once
    for _ in range(2):
        limiter.wait()
    assert slept == pytest.approx([0.05, 0.10])  # then one every 1/20 s
    clock[0] += 10  # a pause refills the bucket
    slept.clear()
    for _ in range(5):
        limiter.wait()
    assert slept == []


def test_a_rate_limited_connection_claims_only_what_its_last_second_of_requests_left(connection, vendor, settings):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    VendorConnection.objects.filter(pk=connection.pk).update(max_rate=5)
    connection.refresh_from_db()
    first, *_ = contact_forms_ingest(connection, n=8)
    now = timezone.now()
    Attempt.objects.create(delivery=first, started_at=now - timedelta(seconds=5), duration_ms=5, outcome="retry")
    Attempt.objects.bulk_create(  # three requests another process sent half a second ago (ids follow send order)
        Attempt(delivery=first, started_at=now - timedelta(seconds=0.5, milliseconds=i), duration_ms=5, outcome="retry")
        for i in range(3)
    )

    assert service.dispatch_limit(connection) == 2  # 5 a second, 3 of them sent
