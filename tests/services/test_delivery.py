"""The delivery service against a respx-mocked Webmarketer: outcomes, retries, tokens, claims, sweeps."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from django.db import connection as db
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.services.conftest import EVENTS_URL, TOKEN, TOKEN_URL, contact_forms_ingest, dispatch
from tracking.models import Attempt, Delivery, VendorConnection
from tracking.services import delivery as service
from tracking.vendors.base import Result

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]


def test_a_delivered_event_keeps_the_vendor_id_and_one_attempt(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id-1"))
    (delivery,) = contact_forms_ingest(connection)

    assert dispatch(connection) == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.vendor_ref, delivery.attempts) == ("delivered", "wm-id-1", 1)
    assert delivery.delivered_at is not None
    (attempt,) = delivery.attempt_set.all()
    assert (attempt.method, attempt.url, attempt.response_status) == ("POST", EVENTS_URL, 200)
    assert attempt.response_body == '"wm-id-1"'
    assert f'"nonce": "{attempt.delivery.event.vendor_nonce}"' in attempt.request_body
    assert vendor.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_nothing_secret_reaches_the_attempt_records(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id-1"))
    contact_forms_ingest(connection)
    dispatch(connection)

    secret = connection.secrets["service_account"]["privateKey"]
    for attempt in Attempt.objects.all():
        text = " ".join([attempt.url, attempt.request_body, attempt.response_body, attempt.error])
        assert TOKEN not in text and secret[40:80] not in text


def test_a_5xx_is_retried_later_with_backoff(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503, json={"message": "down"}))
    (delivery,) = contact_forms_ingest(connection)
    before = timezone.now()

    dispatch(connection)

    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert delivery.last_error == "HTTP 503: down"
    assert before <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    # Not due yet: a second run claims nothing.
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=1))
    assert dispatch(connection) == 0


def test_retry_after_is_honoured(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "120"}))
    (delivery,) = contact_forms_ingest(connection)

    dispatch(connection)

    delivery.refresh_from_db()
    assert delivery.next_attempt_at >= timezone.now() + timedelta(seconds=115)


def test_a_connection_error_is_retried(connection, vendor):
    vendor.post(EVENTS_URL).mock(side_effect=httpx.ConnectError("refused"))
    (delivery,) = contact_forms_ingest(connection)

    dispatch(connection)

    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert delivery.last_error.startswith("connection error (ConnectError")
    assert delivery.attempt_set.get().response_status is None


def test_a_permanent_4xx_fails_at_once_with_the_answer_recorded(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(400, json={"statusCode": 400, "message": "bad"}))
    (delivery,) = contact_forms_ingest(connection)

    dispatch(connection)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("failed", "HTTP 400: bad")
    assert delivery.attempt_set.get().response_body == '{"statusCode":400,"message":"bad"}'


def test_it_gives_up_after_the_connection_window(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(500))
    (delivery,) = contact_forms_ingest(connection)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=24))

    dispatch(connection)

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.last_error.startswith("gave up after 1 attempts: HTTP 500")


def test_a_401_takes_a_fresh_token_once_and_sends_again(connection, vendor):
    tokens = iter(["old", "new"])
    vendor.post(TOKEN_URL).mock(
        side_effect=lambda request: httpx.Response(200, json={"access_token": next(tokens), "expires_in": 3600})
    )
    vendor.post(EVENTS_URL).mock(
        side_effect=lambda request: (
            httpx.Response(200, json="id-9")
            if request.headers["Authorization"] == "Bearer new"
            else httpx.Response(401)
        )
    )
    (delivery,) = contact_forms_ingest(connection)

    dispatch(connection)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert [a.response_status for a in delivery.attempt_set.order_by("id")] == [401, 200]


def test_a_second_401_fails_without_a_third_try(connection, vendor):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(401, json={"message": "Unauthorized"}))
    (delivery,) = contact_forms_ingest(connection)

    dispatch(connection)

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.attempt_set.count() == 2
    assert vendor.routes[0].call_count == 2  # two tokens: the first and the refresh


def test_a_failing_token_endpoint_keeps_the_deliveries_for_later(connection, vendor):
    vendor.post(TOKEN_URL).mock(return_value=httpx.Response(401, json={"error": "invalid_client"}))
    (delivery,) = contact_forms_ingest(connection)

    dispatch(connection)

    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert delivery.last_error == "authentication failed: token endpoint answered HTTP 401"
    attempt = delivery.attempt_set.get()
    assert attempt.url == TOKEN_URL and "assertion=[redacted]" in attempt.request_body


def test_a_misconfigured_connection_says_so_and_sends_nothing(connection, vendor):
    connection.settings = {"project_id": "Not Valid"}
    connection.save()
    (delivery,) = contact_forms_ingest(connection)

    dispatch(connection)

    delivery.refresh_from_db()
    assert delivery.status == "retrying"
    assert "project_id must be" in delivery.last_error
    assert not vendor.calls


def _id_by_nonce(request: httpx.Request) -> httpx.Response:
    """Webmarketer's answer: the event's id (here derived from its nonce, so each row's can be checked)."""
    return httpx.Response(200, json=f"id-{json.loads(request.content)['nonce']}")


def test_a_batch_is_sent_in_one_run(connection, vendor):
    vendor.post(EVENTS_URL).mock(side_effect=_id_by_nonce)
    contact_forms_ingest(connection, n=20)

    assert dispatch(connection) == 20
    assert Delivery.objects.filter(status="delivered").count() == 20
    # Each row keeps its own event's id (recorded together, one CASE over the ids).
    assert all(d.vendor_ref == f"id-{d.nonce}" for d in Delivery.objects.all())


def test_a_claimed_delivery_is_not_claimed_again(connection):
    contact_forms_ingest(connection, n=3)

    first = service.deliveries_claim(connection_id=connection.pk, limit=2)
    second = service.deliveries_claim(connection_id=connection.pk, limit=10)

    assert len(first) == 2 and len(second) == 1
    assert not {d.pk for d in first} & {d.pk for d in second}
    assert service.deliveries_claim(connection_id=connection.pk, limit=10) == []


def test_the_sweep_takes_back_deliveries_whose_worker_died(connection, settings):
    (delivery,) = contact_forms_ingest(connection)
    service.deliveries_claim(connection_id=connection.pk, limit=10)
    Delivery.objects.filter(pk=delivery.pk).update(claimed_at=timezone.now() - timedelta(hours=1))

    report = service.deliveries_sweep()

    delivery.refresh_from_db()
    assert report["recovered"] == 1
    assert delivery.status == "retrying" and delivery.claimed_at is None
    assert "worker sending it stopped" in delivery.last_error


def test_the_sweep_leaves_recent_claims_alone(connection):
    (delivery,) = contact_forms_ingest(connection)
    service.deliveries_claim(connection_id=connection.pk, limit=10)

    assert service.deliveries_sweep()["recovered"] == 0
    delivery.refresh_from_db()
    assert delivery.status == "sending"


def test_many_transient_failures_open_the_circuit_and_a_success_closes_it(connection, vendor):
    route = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503))
    contact_forms_ingest(connection, n=service.CIRCUIT_THRESHOLD)

    dispatch(connection)

    connection.refresh_from_db()
    assert connection.circuit_open
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert dispatch(connection) == 0  # an open circuit sends nothing

    VendorConnection.objects.filter(pk=connection.pk).update(circuit_open_until=timezone.now())
    route.mock(return_value=httpx.Response(200, json="ok-id"))
    dispatch(connection)
    connection.refresh_from_db()
    assert (connection.circuit_failures, connection.circuit_open_until) == (0, None)


def test_a_disabled_connection_is_not_dispatched(connection, vendor):
    contact_forms_ingest(connection)
    connection.enabled = False
    connection.save()

    assert dispatch(connection) == 0


@pytest.mark.parametrize("attempt, ceiling", [(1, 10), (2, 20), (3, 40), (10, 600), (30, 600)])
def test_backoff_is_capped_exponential_with_full_jitter(attempt, ceiling):
    delays = [service.backoff_seconds(attempt=attempt, base=10, cap=600) for _ in range(200)]

    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter spreads over the whole range


def test_backoff_never_undercuts_retry_after():
    assert service.backoff_seconds(attempt=1, base=10, cap=600, retry_after=300) >= 300


# -- a run: batches pipelined, outcomes recorded in a constant number of statements ---------------------------------
def test_a_run_goes_on_batch_after_batch_within_its_slice(connection, vendor, settings):
    settings.HUB_DISPATCH_BATCH = 2
    vendor.post(EVENTS_URL).mock(side_effect=_id_by_nonce)
    contact_forms_ingest(connection, n=5)

    assert dispatch(connection) == 5

    deliveries = list(Delivery.objects.all())
    assert {(d.status, d.attempts, d.claimed_at) for d in deliveries} == {("delivered", 1, None)}
    assert all(d.vendor_ref == f"id-{d.nonce}" for d in deliveries)
    assert Attempt.objects.count() == 5


def test_a_run_stops_at_a_failing_batch_and_gives_back_what_it_claimed_ahead_unsent(connection, vendor, settings):
    settings.HUB_DISPATCH_BATCH = 2
    answers = iter([200, 200] + [503] * 10)
    events = vendor.post(EVENTS_URL).mock(side_effect=lambda request: httpx.Response(next(answers), json="wm-id"))
    contact_forms_ingest(connection, n=6)

    assert dispatch(connection) == 4  # the third batch was claimed while the second was sent, then given back

    rows = [(d.status, d.attempts, d.claimed_at) for d in Delivery.objects.order_by("id")]
    assert rows == [("delivered", 1, None)] * 2 + [("retrying", 1, None)] * 2 + [("retrying", 0, None)] * 2
    assert Attempt.objects.count() == 4
    assert events.call_count == 4


def _mixed_answers(request: httpx.Request) -> httpx.Response:
    """200 with an id, 503 or 400, by the number in the event's email (p0@…, p1@…)."""
    n = int(json.loads(request.content)["data"]["email"][1:].split("@")[0])
    return [httpx.Response(200, json=f"id-{n}"), httpx.Response(503), httpx.Response(400, json={"message": "no"})][
        n % 3
    ]


def _updates_of_deliveries(queries) -> int:
    return sum(1 for q in queries if q["sql"].startswith('UPDATE "tracking_delivery"'))


@pytest.mark.parametrize("n", [3, 30])
def test_a_batch_is_recorded_in_a_constant_number_of_statements(connection, vendor, settings, n):
    settings.HUB_DISPATCH_BATCH = 50
    vendor.post(EVENTS_URL).mock(side_effect=_mixed_answers)
    contact_forms_ingest(connection, n=n)

    with CaptureQueriesContext(db) as queries:
        assert dispatch(connection) == n

    # The claim, then one per outcome class (delivered, retrying, failed): the same for 3 rows as for 30.
    assert _updates_of_deliveries(queries.captured_queries) == 4
    rows = {int(d.event.data["email"][1:].split("@")[0]): d for d in Delivery.objects.select_related("event")}
    for i, d in rows.items():
        expected = ["delivered", "retrying", "failed"][i % 3]
        assert (d.status, d.attempts, d.claimed_at) == (expected, 1, None)
        assert d.vendor_ref == (f"id-{i}" if expected == "delivered" else "")
        assert (d.delivered_at is not None) == (expected == "delivered")
        assert d.last_error.startswith({"delivered": "", "retrying": "HTTP 503", "failed": "HTTP 400: no"}[expected])
    retrying = [d.next_attempt_at for d in rows.values() if d.status == "retrying"]
    assert all(at > timezone.now() for at in retrying)
    assert Attempt.objects.count() == n


def test_settling_a_batch_leaves_a_row_that_is_no_longer_this_runs_alone(connection):
    first, second = contact_forms_ingest(connection, n=2)
    claimed = {d.pk: d for d in service.deliveries_claim(connection_id=connection.pk, limit=2)}
    # The sweep took the second back and another run claimed it since: its claim is not this run's any more.
    later = timezone.now() + timedelta(seconds=1)
    Delivery.objects.filter(pk=second.pk).update(claimed_at=later)
    now = timezone.now()
    items = [service.Settle(d, Result("delivered", vendor_ref="x"), 1, d.created_at) for d in claimed.values()]

    with transaction.atomic():
        moved = service.claimed_settle_many(connection, Delivery, items, now=now)

    assert [(row.pk, status) for row, status in moved] == [(first.pk, "delivered")]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.attempts, first.vendor_ref) == ("delivered", 1, "x")
    assert (second.status, second.attempts, second.claimed_at) == ("sending", 0, later)


# -- Tracify: several events per request; a request's failure is its own events' ------------------------------------
TRACIFY_EVENTS_URL = "https://api.tracify.ai/api/v1/events"
TRACIFY_MAPPING = {"ip": "=203.0.113.7", "user_agent": "=Mozilla/5.0", "url": "=https://shop.example.com/cart"}


def test_a_failing_tracify_request_retries_exactly_its_own_events(vendor):
    from tests.factories import event_type_make, route_make, source_make, vendor_connection_make
    from tracking.services.ingest import events_ingest
    from tracking.vendors.tracify import calc_group

    tracify = vendor_connection_make(
        "tracify", settings={"customer_site_id": "00000000-0000-0000-0000-000000000000", "events_per_request": "2"}
    )
    route_make(event_type_make(), tracify, vendor_event_name="pageview", mapping=TRACIFY_MAPPING)
    failing_hash = calc_group("p2@example.com")

    def answer(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        return httpx.Response(503 if any(failing_hash in e["identity_data"] for e in events) else 200, json={})

    requests = vendor.post(TRACIFY_EVENTS_URL).mock(side_effect=answer)
    source, _ = source_make()
    items = [
        {"eventType": "contact-form", "nonce": f"t-{i}", "data": {"email": f"p{i}@example.com", "message": "hi"}}
        for i in range(5)
    ]
    events_ingest(source=source, items=items)

    assert dispatch(tracify) == 5

    assert requests.call_count == 3  # [p0, p1], [p2, p3], [p4]
    by_email = {d.event.data["email"]: d for d in Delivery.objects.select_related("event")}
    assert {e: d.status for e, d in by_email.items()} == {
        "p0@example.com": "delivered",
        "p1@example.com": "delivered",
        "p2@example.com": "retrying",
        "p3@example.com": "retrying",
        "p4@example.com": "delivered",
    }
    assert all(d.attempts == 1 and d.attempt_set.count() == 1 for d in by_email.values())
    # Each attempt records its own event of the request, not the whole request once per event.
    for email, d in by_email.items():
        (recorded,) = json.loads(d.attempt_set.get().request_body)["events"]
        assert calc_group(email) in recorded["identity_data"]


def test_a_claim_may_fill_a_request_per_sending_thread_for_a_vendor_that_batches(settings):
    from tests.factories import vendor_connection_make

    settings.HUB_DISPATCH_BATCH = 50
    settings.HUB_DISPATCH_CONCURRENCY = 8
    tracify = vendor_connection_make("tracify", batch_size=1000)
    acquia = vendor_connection_make("acquia", batch_size=1000)
    tracardi = vendor_connection_make("tracardi", batch_size=1000)

    assert service.dispatch_limit(tracify) == 800  # 100 events per request, 8 requests at once
    assert service.dispatch_limit(acquia) == 80  # Acquia: 10 per request
    assert service.dispatch_limit(tracardi) == 50  # one per request: HUB_DISPATCH_BATCH
    tracify.batch_size = 300
    assert service.dispatch_limit(tracify) == 300  # the connection's batch size lowers it


def test_the_sweep_fails_due_deliveries_past_the_give_up_window_without_sending_them(connection, vendor, monkeypatch):
    monkeypatch.setattr(service, "_expire_next", 0.0)  # another test's sweep found none a moment ago
    events = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    old, recent = contact_forms_ingest(connection, n=2)
    connection.give_up_after_seconds = 3600
    connection.save()
    Delivery.objects.filter(pk=old.pk).update(status="retrying", created_at=timezone.now() - timedelta(hours=2))

    report = service.deliveries_sweep()

    assert report["expired"] == 1 and events.call_count == 0
    old.refresh_from_db()
    assert old.status == "failed" and "give-up window (3600 s)" in old.last_error
    assert Delivery.objects.get(pk=recent.pk).status == "pending"


def test_the_sweep_looks_for_deliveries_past_their_window_again_only_a_while_after_finding_none(
    connection, monkeypatch
):
    monkeypatch.setattr(service, "_expire_next", 0.0)
    (delivery,) = contact_forms_ingest(connection)
    assert service.deliveries_sweep()["expired"] == 0
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(days=2))

    assert service.deliveries_sweep()["expired"] == 0  # not yet: it found none a moment ago

    monkeypatch.setattr(service, "_expire_next", 0.0)  # a minute later
    assert service.deliveries_sweep()["expired"] == 1
