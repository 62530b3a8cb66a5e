"""The Tracify module: the seed's purchase and conversion rebuilt, identities hashed, no raw PII sent."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tracking.vendors.base import ConfigurationError, OutgoingEvent
from tracking.vendors.tracify import Tracify

SITE = "00000000-0000-0000-0000-000000000000"
URL = "https://www.yourwebsite.com/your-full-path-here"
EMAIL, IP, UA = "John.Smith@Example.com", "192.168.1.1", "Mozilla/5.0"
# tracify-server-side-events-api.txt, "Purchase Event" and "Conversion Event" (identity keys aside: the
# seed's are placeholders).
SEED_PURCHASE = {
    "url": URL,
    "customer_site_id": SITE,
    "datetime": "2024-06-21 12:36:40",
    "type": "purchase",
    "data": {
        "origin": "https://www.yourwebsite.com",
        "order_id": "123456789",
        "currency": "EUR",
        "amount": "100.00",
        "ITEM1": "Name of Product 1",
        "AMT1": "25",
        "QTY1": "2",
        "ITEM2": "Name of Product 2",
        "AMT2": "50",
        "QTY2": "1",
    },
}
SEED_CONVERSION = {
    "url": URL,
    "customer_site_id": SITE,
    "datetime": "2024-06-21 12:36:40",
    "type": "conversion",
    "data": {
        "origin": "https://www.yourwebsite.com",
        "conversion_id": "123456789",
        "currency": "EUR",
        "amount": "100.00",
    },
}


def calc_group(dt: str) -> str:
    """Written again from the seed's Python sample, independently of the module."""
    digest = hashlib.sha256(dt.encode()).hexdigest()
    group = digest[:-5]
    return hashlib.sha256(group.encode()).hexdigest()


@pytest.fixture
def vendor():
    return Tracify(base_url="https://api.tracify.ai", settings={"customer_site_id": SITE}, secrets={"api_key": "k-123"})


def visit(key: int = 1, type_: str = "purchase", **data) -> OutgoingEvent:
    return OutgoingEvent(
        key=key,
        nonce=f"n{key}",
        event_type="order",
        event_date=datetime(2024, 6, 21, 14, 36, 40, tzinfo=timezone(timedelta(hours=2))),
        data={"url": URL, "email": EMAIL, "ip": IP, "user_agent": UA, **data},
        vendor_event_name=type_,
    )


def purchase(key: int = 1) -> OutgoingEvent:
    items = [{"name": "Name of Product 1", "amount": 25, "quantity": 2}, {"name": "Name of Product 2", "amount": 50.0,
             "quantity": 1}]  # fmt: skip
    return visit(key, order_id="123456789", currency="eur", amount=100, items=items)


def test_it_rebuilds_the_seed_purchase(vendor):
    (request,) = vendor.build([purchase()], None)  # 14:36:40+02:00: sent as 12:36:40 UTC

    assert (request.method, request.url) == ("POST", "https://api.tracify.ai/api/v1/events")
    assert request.headers == {"tracify-token": "k-123"}
    (event,) = request.json["events"]
    for field, value in SEED_PURCHASE.items():
        assert event[field] == value, field
    assert set(event) == set(SEED_PURCHASE) | {"identity_data"}


def test_it_rebuilds_the_seed_conversion(vendor):
    event = visit(type_="conversion", conversion_id=123456789, currency="EUR", amount="100")

    (request,) = vendor.build([event], None)

    (body,) = request.json["events"]
    for field, value in SEED_CONVERSION.items():
        assert body[field] == value, field


def test_the_conversion_has_only_the_seeds_fields_and_calc_group_identities(vendor):
    event = visit(type_="conversion", conversion_id="123456789", currency="EUR", amount=100)

    (request,) = vendor.build([event], None)

    (body,) = request.json["events"]
    assert set(body) == set(SEED_CONVERSION) | {"identity_data"}
    assert body["identity_data"] == {
        calc_group("john.smith@example.com"): 1,
        calc_group(f"{IP}|{UA}"): 2,
        calc_group(IP): 3,
        calc_group(UA): 4,
    }
    assert EMAIL.lower() not in json.dumps(request.json).lower()


def test_it_hashes_identities_with_calc_group_and_sends_no_raw_pii(vendor):
    (request,) = vendor.build([purchase()], None)

    assert request.json["events"][0]["identity_data"] == {
        calc_group("john.smith@example.com"): 1,
        calc_group(f"{IP}|{UA}"): 2,
        calc_group(IP): 3,
        calc_group(UA): 4,
    }
    sent = json.dumps(request.json)
    assert EMAIL.lower() not in sent.lower() and IP not in sent and UA not in sent


def test_calc_group_drops_five_characters_not_four(vendor):
    (request,) = vendor.build([purchase()], None)
    drop_four = hashlib.sha256(hashlib.sha256(IP.encode()).hexdigest()[:-4].encode()).hexdigest()

    assert drop_four not in request.json["events"][0]["identity_data"]


def test_it_leaves_out_the_email_hash_when_there_is_no_email(vendor):
    event = visit(type_="pageview", email=None)

    (request,) = vendor.build([event], None)

    assert sorted(request.json["events"][0]["identity_data"].values()) == [2, 3, 4]


def test_it_copies_campaign_parameters_of_the_url_but_no_other_parameter(vendor):
    event = visit(
        type_="pageview", url=f"{URL}?utm_source=fb&trc_mag_id=222&email=a%40b.c", referer="https://r.example"
    )

    (request,) = vendor.build([event], None)

    assert request.json["events"][0]["data"] == {
        "Referer": "https://r.example",
        "origin": "https://www.yourwebsite.com",
        "utm_source": "fb",
        "trc_mag_id": "222",
    }


def test_it_batches_events_by_a_hundred(vendor):
    events = [visit(k, type_="pageview") for k in range(250)]

    requests = vendor.build(events, None)

    assert [len(r.json["events"]) for r in requests] == [100, 100, 50]
    assert [len(r.keys) for r in requests] == [100, 100, 50]
    assert requests[2].keys[0] == 200
    assert "k-123" in requests[0].sensitive
    # Each event's part, in the request's shape, for its delivery's attempt record.
    assert requests[2].parts[200] == {"events": [requests[2].json["events"][0]]}
    assert json.loads(requests[2].recorded_body(201)) == {"events": [requests[2].json["events"][1]]}


def test_a_connection_may_send_fewer_events_per_request(vendor):
    vendor.settings["events_per_request"] = "1"
    events = [visit(k, type_="pageview") for k in range(3)]

    requests = vendor.build(events, None)

    assert [r.keys for r in requests] == [(0,), (1,), (2,)]
    assert [len(r.json["events"]) for r in requests] == [1, 1, 1]


@pytest.mark.parametrize("value", ["0", "101", "ten", -1])
def test_it_refuses_an_events_per_request_out_of_range(vendor, value):
    vendor.settings["events_per_request"] = value

    with pytest.raises(ConfigurationError, match="events_per_request must be a whole number from 1 to 100"):
        vendor.check()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (visit(order_id="1", amount=10), "Tracify purchase: required values missing: currency"),
        (
            visit(type_="conversion", currency="EUR"),
            "Tracify conversion: required values missing: conversion_id, amount",
        ),
        (visit(type_="pageview", ip=None), "Tracify pageview: required values missing: ip"),
        (visit(type_="pageview", url="/relative"), "Tracify pageview: required values missing: origin (or a full url)"),
        (visit(type_="signup"), "Tracify has no event type 'signup'"),
        (visit(order_id="1", amount=10, currency="euro"), "currency must be a 3-letter ISO-4217 code"),
    ],
)
def test_it_refuses_events_missing_what_tracify_requires(vendor, event, reason):
    assert vendor.build([event], None) == []
    assert reason in vendor.refusals([event])[1]


def test_it_refuses_one_event_and_sends_the_others(vendor):
    requests = vendor.build([visit(1, order_id="1"), purchase(2)], None)

    assert [r.keys for r in requests] == [(2,)]


def test_a_401_is_final_without_a_token_to_refresh(vendor):
    (request,) = vendor.build([purchase()], None)

    result = vendor.classify(request, httpx.Response(401, json={"message": "bad key"}))

    assert (result.outcome, result.auth_expired) == ("failed", False)


def test_it_retries_429_after_the_vendors_delay_and_fails_other_4xx(vendor):
    (request,) = vendor.build([purchase()], None)

    assert vendor.classify(request, httpx.Response(429, headers={"Retry-After": "3"})).retry_after == 3
    assert vendor.classify(request, httpx.Response(422)).outcome == "failed"
    assert vendor.classify(request, httpx.Response(200)).outcome == "delivered"


def test_it_needs_a_site_id_and_a_key():
    with pytest.raises(ConfigurationError, match="missing customer_site_id, api_key"):
        Tracify(base_url="https://api.tracify.ai").check()


def test_it_checks_a_route_mapping():
    assert Tracify.validate_mapping("purchase", {"email": "data.mail"}) == []
    assert len(Tracify.validate_mapping("lead", {"mail": "data.mail"})) == 2
