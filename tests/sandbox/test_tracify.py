"""The Tracify sandbox (in process): the tracify-token header, whole-batch checks, hashed identities only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracking.vendors.base import OutgoingEvent
from tracking.vendors.tracify import Tracify

SITE = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def key(client) -> dict:
    return client.post("/__sandbox__/tracify/api-keys", json={"customer_site_id": SITE}).json()


@pytest.fixture
def vendor(key):
    return Tracify(base_url="http://testserver/tracify", settings={"customer_site_id": SITE},
                   secrets={"api_key": key["api_key"]})  # fmt: skip


def order(k: int, **data) -> OutgoingEvent:
    values = {"url": "https://shop.example/thanks", "ip": "10.0.0.1", "user_agent": "UA/1", "order_id": f"o{k}",
              "currency": "EUR", "amount": 10, **data}  # fmt: skip
    return OutgoingEvent(key=k, nonce=f"n{k}", event_type="purchase", event_date=datetime.now(UTC), data=values,
                         vendor_event_name="purchase")  # fmt: skip


def post(client, api_key: str | None, body: dict):
    return client.post("/tracify/api/v1/events", json=body, headers={"tracify-token": api_key} if api_key else {})


def test_the_hubs_batches_are_accepted_and_orders_deduplicated(client, vendor):
    (request,) = vendor.build([order(1), order(2)], None)

    assert post(client, vendor.secrets["api_key"], request.json).status_code == 200
    assert post(client, vendor.secrets["api_key"], request.json).status_code == 200

    stored = client.get("/__sandbox__/tracify/events").json()
    assert (stored["count"], stored["duplicates"]) == (2, 2)


def test_it_wants_a_known_tracify_token(client, vendor):
    (request,) = vendor.build([order(1)], None)

    assert post(client, None, request.json).status_code == 401
    assert post(client, "wrong", request.json).status_code == 401


def test_it_refuses_the_whole_batch_for_one_bad_event(client, vendor):
    (request,) = vendor.build([order(1), order(2)], None)
    body = {"events": [request.json["events"][0], {**request.json["events"][1], "identity_data": {"10.0.0.1": 3}}]}

    response = post(client, vendor.secrets["api_key"], body)

    assert response.status_code == 400
    assert response.json()["errors"][0]["index"] == 1 and "raw identifiers" in response.json()["message"]
    assert client.get("/__sandbox__/tracify/events").json()["count"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "signup"}, "type must be one of"),
        ({"datetime": "2024-06-21T12:36:40Z"}, "datetime must be"),
        ({"customer_site_id": "other"}, "customer_site_id"),
        ({"data": {"origin": "https://shop.example", "currency": "EUR", "amount": "1.00"}}, "data.order_id"),
    ],
)
def test_it_checks_each_event(client, vendor, change, message):
    (request,) = vendor.build([order(1)], None)

    response = post(client, vendor.secrets["api_key"], {"events": [{**request.json["events"][0], **change}]})

    assert response.status_code == 400 and message in response.json()["message"]
