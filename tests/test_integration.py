"""End to end over loopback: ingest API → outbox → a real Celery worker → the real vendor sandbox."""

from __future__ import annotations

import json

import pytest

from tests.conftest import wait_until
from tests.factories import event_type_make, route_make, sandbox_connection_make, source_make
from tracking.models import Attempt, Delivery

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(celery_worker, sandbox, sandbox_url):
    """An event type routed to a Webmarketer connection on the sandbox, and a source token."""
    connection = sandbox_connection_make(sandbox_url, retry_base_seconds=0.2, retry_max_seconds=1.0, timeout_seconds=5)
    route_make(event_type_make(), connection)
    _, token = source_make()
    return connection, token


def post(client, token, body, path="/api/v1/events"):
    return client.post(
        path, data=json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )


def event(i: int) -> dict:
    return {"eventType": "contact-form", "nonce": f"it-{i}", "data": {"email": f"p{i}@example.com", "message": "hi"}}


def settled(statuses=("delivered", "failed")):
    return lambda: Delivery.objects.exists() and not Delivery.objects.exclude(status__in=statuses).exists()


def test_an_event_is_delivered_once_with_its_attempt_recorded(client, hub, sandbox):
    connection, token = hub

    response = post(client, token, {**event(1), "trackerId": "trk-1"})

    assert response.status_code == 202
    wait_until(settled(), timeout=30, message="the delivery to settle")
    delivery = Delivery.objects.get()
    assert delivery.status == "delivered"
    received = sandbox.get("/__sandbox__/webmarketer/events").json()
    assert received["count"] == 1
    stored = received["data"][0]
    # The vendor sees the source-qualified nonce (unique across sources), the same on every retry.
    assert (stored["_id"], stored["nonce"], stored["sends"]) == (delivery.vendor_ref, delivery.nonce, 1)
    assert delivery.nonce.endswith(":it-1")
    assert stored["projectId"] == "my-project" and stored["trackerId"] == "trk-1"
    attempt = Attempt.objects.get()
    assert attempt.response_status == 200 and attempt.response_body == json.dumps(delivery.vendor_ref)
    secret = connection.secrets["service_account"]["privateKey"]
    assert secret[50:90] not in attempt.request_body + attempt.url


def test_with_30_percent_faults_every_event_ends_delivered_once(client, hub, sandbox):
    sandbox.post(
        "/__sandbox__/faults", json={"error_rate": 0.15, "rate_429": 0.15, "retry_after": 1}
    ).raise_for_status()
    events = [event(i) for i in range(40)]

    assert post(client, hub[1], {"events": events}, path="/api/v1/events/batch").status_code == 202

    wait_until(settled(), timeout=120, interval=0.5, message="40 deliveries through injected faults")
    assert Delivery.objects.filter(status="delivered").count() == 40
    received = sandbox.get("/__sandbox__/webmarketer/events").json()
    assert received["count"] == 40
    assert sorted(e["nonce"] for e in received["data"]) == sorted(Delivery.objects.values_list("nonce", flat=True))
    assert {d.vendor_ref for d in Delivery.objects.all()} == {e["_id"] for e in received["data"]}
    # The faults really happened and were retried.
    statuses = [r["status"] for r in sandbox.get("/__sandbox__/received").json()["data"]]
    assert any(s in (429, 500, 502, 503) for s in statuses)
    assert Attempt.objects.filter(outcome="retry").exists()


def test_a_permanent_4xx_ends_failed_with_the_answer_recorded(client, hub, sandbox):
    sandbox.post("/__sandbox__/faults", json={"fail_status": 400}).raise_for_status()

    post(client, hub[1], event(2))

    wait_until(settled(), timeout=30, message="the delivery to fail")
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.last_error == "HTTP 400: injected permanent failure"
    attempt = delivery.attempt_set.get()
    assert attempt.response_status == 400 and "injected permanent failure" in attempt.response_body


def test_deliveries_go_on_after_the_vendor_revokes_its_tokens(client, hub, sandbox):
    post(client, hub[1], {"events": [event(i) for i in range(10, 14)]}, path="/api/v1/events/batch")
    wait_until(settled(), timeout=30, message="the first deliveries")
    sandbox.delete("/__sandbox__/webmarketer/tokens").raise_for_status()
    tokens_before = sandbox.get("/__sandbox__/webmarketer/events").json()["token_requests"]

    post(client, hub[1], {"events": [event(i) for i in range(20, 26)]}, path="/api/v1/events/batch")

    wait_until(
        lambda: Delivery.objects.filter(status="delivered").count() == 10,
        timeout=30,
        message="the deliveries after revocation",
    )
    # A worker process holding a revoked token got a 401, took a new token once and sent again.
    for delivery in Delivery.objects.filter(event__nonce__in=[f"it-{i}" for i in range(20, 26)]):
        statuses = [a.response_status for a in delivery.attempt_set.order_by("id")]
        assert statuses in ([200], [401, 200])
    assert sandbox.get("/__sandbox__/webmarketer/events").json()["token_requests"] > tokens_before


def test_events_posted_faster_than_the_wake_interval_are_all_delivered_once(client, hub, sandbox, settings):
    settings.HUB_WAKE_DEBOUNCE_SECONDS = 0.5  # most of these wakes are left out, covered by a run queued for later
    _, token = hub

    for i in range(15):
        assert post(client, token, event(100 + i)).status_code == 202

    wait_until(lambda: Delivery.objects.filter(status="delivered").count() == 15, timeout=60, message="15 delivered")
    assert sandbox.get("/__sandbox__/webmarketer/events").json()["count"] == 15
