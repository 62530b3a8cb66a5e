"""Consent end to end over loopback: the ingest API → a real Celery worker → the vendor sandbox.

A suppressed delivery never reaches the sandbox while the allowed vendor gets the event; a withdrawal while a
delivery is retrying stops it for good (a later event at the same vendor is delivered, that one never is)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import wait_until
from tests.factories import PURCHASE, event_type_make, sandbox_vendor_connection_make
from tracking.demo import PURCHASE_ROUTES, purchase_data
from tracking.models import Delivery
from tracking.services.ingest import source_create
from tracking.services.routes import route_create

pytestmark = pytest.mark.integration

SHORT_RETRIES = {"retry_base_seconds": 0.3, "retry_max_seconds": 1.0, "timeout_seconds": 5}


@pytest.fixture
def hub(celery_worker, sandbox, sandbox_url):
    """purchase → Tracify (advertising) and Algonomy (personalisation) on the sandbox; a deny-all source."""
    purchase = event_type_make(PURCHASE)
    for kind in ("tracify", "algonomy"):
        connection = sandbox_vendor_connection_make(sandbox_url, kind, **SHORT_RETRIES)
        name, mapping, options = PURCHASE_ROUTES[kind]
        route_create(event_type=purchase, connection=connection, vendor_event_name=name, mapping=mapping)
    return source_create(name="shop")[1]


def post(client, token: str, path: str, body: dict):
    response = client.post(
        path, data=json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code in (200, 202), response.content
    return response.json()


def purchase(n: int, consent: list[str], **envelope) -> dict:
    data = purchase_data("Kate", "Austen", n)
    return {"eventType": "purchase", "nonce": f"p-{n}", "data": data, "consent": consent, **envelope}


def status_of(nonce: str, kind: str) -> Delivery:
    return Delivery.objects.get(event__nonce=nonce, connection__kind=kind)


def orders(sandbox, vendor: str) -> str:
    return json.dumps(sandbox.get(f"/__sandbox__/{vendor}/events").json())


def test_a_suppressed_delivery_never_reaches_the_vendor_and_the_allowed_one_does(client, hub, sandbox):
    post(client, hub, "/api/v1/events", purchase(1, ["personalisation"]))

    wait_until(lambda: status_of("p-1", "algonomy").status == "delivered", timeout=60, message="Algonomy")
    tracify = status_of("p-1", "tracify")
    assert (tracify.status, tracify.last_error, tracify.attempts) == (
        "suppressed",
        "suppressed: no consent for advertising",
        0,
    )
    assert not tracify.attempt_set.exists()
    # Another event Tracify may have goes through the same dispatcher: once it has landed, p-1 would have too.
    post(client, hub, "/api/v1/events", purchase(2, ["advertising", "personalisation"]))
    wait_until(lambda: status_of("p-2", "tracify").status == "delivered", timeout=60, message="Tracify")
    assert "ORD-1002" in orders(sandbox, "tracify") and "ORD-1001" not in orders(sandbox, "tracify")
    assert "ORD-1001" in orders(sandbox, "algonomy")
    assert status_of("p-1", "tracify").status == "suppressed"


def test_a_withdrawal_while_a_delivery_is_retrying_stops_it_for_good(client, hub, sandbox):
    sandbox.post("/__sandbox__/faults", json={"error_rate": 1.0, "vendors": ["tracify"]}).raise_for_status()
    post(client, hub, "/api/v1/events", purchase(3, ["advertising", "personalisation"], trackerId="trk-3"))
    wait_until(lambda: status_of("p-3", "tracify").attempts >= 2, timeout=60, message="Tracify retrying after two 5xx")

    answer = post(client, hub, "/api/v1/consent", {"trackerId": "trk-3", "consent": ["personalisation"]})

    assert answer["events"] == 1
    sandbox.post("/__sandbox__/faults", json={}).raise_for_status()  # the vendor recovers
    post(client, hub, "/api/v1/events", purchase(4, ["advertising"]))
    wait_until(lambda: status_of("p-4", "tracify").status == "delivered", timeout=60, message="the next purchase")
    withdrawn = status_of("p-3", "tracify")
    # Suppressed by the withdrawal, or (had a run claimed it at that moment) by the claim's own check.
    assert withdrawn.status == "suppressed" and withdrawn.last_error == "suppressed: no consent for advertising"
    assert "ORD-1003" not in orders(sandbox, "tracify") and "ORD-1004" in orders(sandbox, "tracify")
    assert {a.outcome for a in withdrawn.attempt_set.all()} == {"retry"}
