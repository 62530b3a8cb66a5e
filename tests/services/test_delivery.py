"""The delivery service against a respx-mocked Webmarketer: outcomes, retries, tokens, claims, sweeps."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from tests.services.conftest import EVENTS_URL, TOKEN, TOKEN_URL, contact_forms_ingest, dispatch
from tracking.models import Attempt, Delivery, VendorConnection
from tracking.services import delivery as service

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


def test_a_batch_is_sent_in_one_run(connection, vendor):
    vendor.post(EVENTS_URL).mock(side_effect=lambda request: httpx.Response(200, json=f"id-{len(vendor.calls)}"))
    contact_forms_ingest(connection, n=20)

    assert dispatch(connection) == 20
    assert Delivery.objects.filter(status="delivered").count() == 20
    assert len({d.vendor_ref for d in Delivery.objects.all()}) == 20


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
