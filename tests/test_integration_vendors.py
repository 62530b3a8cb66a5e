"""End to end over loopback with the four other vendors: ingest API → a real Celery worker → the sandbox.

One demo purchase reaches all five vendors; Algonomy's 429 is retried after its Retry-After; a revoked
Algonomy token gives a 401, one token refresh, and the event is delivered."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from tests.conftest import wait_until
from tests.factories import PURCHASE, event_type_make, route_make, sandbox_vendor_connection_make, source_make
from tracking.demo import PURCHASE_ROUTES, purchase_data
from tracking.models import Delivery
from tracking.vendors.tracify import calc_group

pytestmark = pytest.mark.integration

SHORT_RETRIES = {"retry_base_seconds": 0.2, "retry_max_seconds": 1.0, "timeout_seconds": 5}


def post(client, token: str, body: dict):
    return client.post(
        "/api/v1/events", data=json.dumps(body), content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip


def settled(**filters):
    def check():
        deliveries = Delivery.objects.filter(**filters)
        return deliveries.exists() and not deliveries.exclude(status__in=("delivered", "failed")).exists()

    return check


def test_one_demo_purchase_is_delivered_to_all_five_vendors(client, celery_worker, sandbox, sandbox_url):
    out = io.StringIO()
    call_command("seed_demo", sandbox_url=sandbox_url, events=0, stdout=out)
    token = out.getvalue().split("TOKEN=")[1].split()[0]
    data = purchase_data("Kate", "Austen", 42)

    response = post(client, token, {"eventType": "purchase", "nonce": "demo-42", "data": data})

    assert response.status_code == 202
    wait_until(settled(event__nonce="demo-42"), timeout=60, message="five deliveries to settle")
    deliveries = Delivery.objects.filter(event__nonce="demo-42").select_related("connection")
    vendor_nonce = deliveries[0].event.vendor_nonce  # the source's id, then its nonce: unique across sources
    assert sorted((d.connection.kind, d.status) for d in deliveries) == [
        (kind, "delivered") for kind in ("acquia", "algonomy", "tracardi", "tracify", "webmarketer")
    ]

    webmarketer = sandbox.get("/__sandbox__/webmarketer/events").json()["data"]
    assert [(e["nonce"], e["eventType"], e["data"]["order_id"]) for e in webmarketer] == [
        (vendor_nonce, "purchase", "ORD-1042")
    ]

    acquia = sandbox.get("/__sandbox__/acquia/events").json()
    (event,) = acquia["data"]
    assert (event["Type"], event["Email"], event["SourceCustomerNumber"]) == (
        "purchase",
        "kate.austen@example.com",
        data["customer_number"],
    )
    (customer,) = acquia["customers"]
    assert (customer["FirstName"], customer["LastName"], customer["EmailAddress1"]) == (
        "Kate",
        "Austen",
        "kate.austen@example.com",
    )
    assert "transactions" not in acquia  # off unless the route says so

    (algonomy,) = sandbox.get("/__sandbox__/algonomy/events").json()["data"]
    assert algonomy["eventName"] == "eventTransactionComplete" and algonomy["clientCorrelatorId"] == vendor_nonce
    assert algonomy["eventData"]["orderId"] == "ORD-1042" and algonomy["eventData"]["cartProducts"] == data["items"]
    assert algonomy["customer"] == {"email": "kate.austen@example.com", "customerCode": data["customer_number"]}

    (tracardi,) = sandbox.get("/__sandbox__/tracardi/events").json()["data"]
    assert (tracardi["type"], tracardi["session"], tracardi["method"]) == ("purchase", "sess-0042", "POST")
    assert tracardi["properties"]["order_id"] == "ORD-1042"

    (tracify,) = sandbox.get("/__sandbox__/tracify/events").json()["data"]
    assert tracify["type"] == "purchase" and tracify["data"]["order_id"] == "ORD-1042"
    assert (tracify["data"]["ITEM1"], tracify["data"]["QTY1"]) == ("Trail shoes", "1")
    assert tracify["identity_data"][calc_group("kate.austen@example.com")] == 1
    assert "kate.austen@example.com" not in json.dumps(tracify)


@pytest.fixture
def algonomy_hub(celery_worker, sandbox, sandbox_url):
    """Purchases routed to an Algonomy connection on the sandbox, with short retry settings."""
    connection = sandbox_vendor_connection_make(sandbox_url, "algonomy", **SHORT_RETRIES)
    vendor_event_name, mapping, options = PURCHASE_ROUTES["algonomy"]
    route_make(event_type_make(PURCHASE), connection, vendor_event_name=vendor_event_name, mapping=mapping)
    _, token = source_make()
    return connection, token


def purchase(n: int) -> dict:
    return {"eventType": "purchase", "nonce": f"algo-{n}", "data": purchase_data("Hugo", "Reyes", n)}


def attempts_of(nonce: str) -> list:
    return list(Delivery.objects.get(event__nonce=nonce).attempt_set.order_by("started_at", "id"))


def test_an_algonomy_429_is_retried_after_its_retry_after_and_delivered(client, algonomy_hub, sandbox):
    sandbox.post("/__sandbox__/faults", json={"rate_429": 1.0, "retry_after": 2, "vendors": ["algonomy"]})

    post(client, algonomy_hub[1], purchase(1))
    wait_until(lambda: Delivery.objects.filter(status="retrying").exists(), timeout=30, message="a 429")
    sandbox.post("/__sandbox__/faults", json={}).raise_for_status()  # the vendor recovers
    wait_until(settled(event__nonce="algo-1"), timeout=30, message="the delivery after the 429")

    delivery = Delivery.objects.get()
    assert delivery.status == "delivered" and delivery.last_error == ""
    attempts = attempts_of("algo-1")
    assert [a.response_status for a in attempts[:-1]] == [429] * (len(attempts) - 1) and len(attempts) >= 2
    assert (attempts[-1].response_status, attempts[-1].outcome) == (202, "delivered")
    assert attempts[0].outcome == "retry" and attempts[0].error == "HTTP 429: Too Many Requests"
    # Retry-After: 2 honoured, though the connection's own backoff would have tried again within 0.2 s.
    gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert min(gaps) >= 1.9, gaps
    assert sandbox.get("/__sandbox__/algonomy/events").json()["count"] == 1


def test_a_revoked_algonomy_token_gives_one_refresh_and_the_event_is_delivered(client, algonomy_hub, sandbox):
    token = algonomy_hub[1]
    post(client, token, purchase(10))  # a worker process takes a token
    wait_until(settled(event__nonce="algo-10"), timeout=30, message="the first delivery")
    refreshed = False
    # The worker has two processes, each with its own token: a process that never had one takes its first
    # instead of a refresh. After two rounds at most, the event lands on a process holding a revoked token.
    for n in range(11, 15):
        sandbox.delete("/__sandbox__/algonomy/tokens").raise_for_status()
        before = sandbox.get("/__sandbox__/algonomy/events").json()["token_requests"]

        post(client, token, purchase(n))
        wait_until(settled(event__nonce=f"algo-{n}"), timeout=30, message=f"delivery {n}")

        statuses = [a.response_status for a in attempts_of(f"algo-{n}")]
        assert Delivery.objects.get(event__nonce=f"algo-{n}").status == "delivered"
        assert statuses in ([202], [401, 202])
        # Exactly one token asked for: the refresh after the 401 (or a process's first token).
        assert sandbox.get("/__sandbox__/algonomy/events").json()["token_requests"] == before + 1
        if statuses == [401, 202]:
            refreshed = True
            break
    assert refreshed, "no delivery met a revoked token"
    assert sandbox.get("/__sandbox__/algonomy/events").json()["count"] == n - 9
