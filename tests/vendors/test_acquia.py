"""The Acquia CDP module: entity lists built from the seed's shapes, the daily accessKey, splitting by ten."""

from __future__ import annotations

from datetime import UTC, date, datetime

import bcrypt
import httpx
import pytest

from tracking.vendors.acquia import Acquia
from tracking.vendors.base import ConfigurationError, OutgoingEvent

TOKEN = "bdaf7d09fa2067889494fb7bd1bf9c4f"
WHEN = datetime(2024, 6, 21, 12, 36, 37, tzinfo=UTC)
# acquia-cdp-webtag-tracker-api.txt, "Endpoint and Payloads": an event and the customer it concerns.
SEED_EVENTS_AND_CUSTOMERS = {
    "events": [{"Cookie": "a1cookie", "Type": "login", "SourceCustomerNumber": "C-1001"}],
    "customers": [{"SourceCustomerNumber": "C-1001", "FirstName": "John"}],
}
MAPPING = {
    "events": {"Cookie": "trackerId", "SourceCustomerNumber": "data.customer_number"},
    "customers": {"SourceCustomerNumber": "data.customer_number", "FirstName": "data.first_name"},
}


@pytest.fixture(autouse=True)
def today(utc_now_set):
    utc_now_set(WHEN)


@pytest.fixture
def vendor():
    return Acquia(
        base_url="",
        settings={"tenant_id": "999", "region": "us-aws", "environment": "preprod"},
        secrets={"username": "webtag_user", "password": "PiTa7732!9"},
    )


def login(key: int = 1, **overrides) -> OutgoingEvent:
    values = dict(
        key=key,
        nonce=f"nonce-{key}",
        event_type="login-form",
        event_date=WHEN,
        data={"customer_number": "C-1001", "first_name": "John"},
        tracker_id="a1cookie",
        vendor_event_name="login",
        mapping=MAPPING,
        options={"send_customers": True, "send_transactions": False},
    )
    return OutgoingEvent(**{**values, **overrides})


def test_it_rebuilds_the_seed_events_and_customers_payload(vendor):
    (request,) = vendor.build([login()], TOKEN)

    assert request.method == "POST"
    assert request.url == "https://cs-api6.agilone.com/v2/999/dw/tracker"
    assert request.params["scheme"] == "a1webtag"
    assert set(request.json) == {"events", "customers"}
    (event,) = request.json["events"]
    for attribute, value in SEED_EVENTS_AND_CUSTOMERS["events"][0].items():
        assert event[attribute] == value
    assert event["EventTimeStamp"] == "2024-06-21T12:36:37Z"
    assert request.json["customers"] == SEED_EVENTS_AND_CUSTOMERS["customers"]
    assert request.keys == (1,)


def test_it_omits_empty_strings_and_keeps_attribute_case(vendor):
    event = login(data={"customer_number": "C-1001", "first_name": ""})

    (request,) = vendor.build([event], TOKEN)

    assert request.json["customers"] == [{"SourceCustomerNumber": "C-1001"}]
    assert "sourcecustomernumber" not in str(request.json)
    assert "" not in request.json["events"][0].values()


def test_it_sends_transactions_only_when_the_route_says_so(vendor):
    mapping = {
        **MAPPING,
        "transactions": {"SourceTransactionNumber": "data.order_id"},
        "transactionitems": {"@items": "data.items", "SourceTransactionItemNumber": "item.id", "Quantity": "item.qty"},
    }
    data = {"customer_number": "C-1001", "order_id": "T-1", "items": [{"id": "T-1-1", "qty": 2}, {"id": "T-1-2"}]}

    (without,) = vendor.build([login(mapping=mapping, data=data)], TOKEN)
    (with_them,) = vendor.build([login(mapping=mapping, data=data, options={"send_transactions": True})], TOKEN)

    assert "transactions" not in without.json and "transactionitems" not in without.json
    assert with_them.json["transactions"] == [{"SourceTransactionNumber": "T-1"}]
    assert with_them.json["transactionitems"] == [
        {"SourceTransactionItemNumber": "T-1-1", "Quantity": 2},
        {"SourceTransactionItemNumber": "T-1-2"},
    ]
    assert "customers" not in with_them.json


def test_it_splits_acquia_events_by_ten(vendor):
    events = [login(key=k) for k in range(1, 26)]

    requests = vendor.build(events, TOKEN)

    assert [len(r.json["events"]) for r in requests] == [10, 10, 5]
    assert [len(r.json["customers"]) for r in requests] == [10, 10, 5]
    assert [k for r in requests for k in r.keys] == list(range(1, 26))
    assert len({r.params["accessKey"] for r in requests}) == 1


def test_it_counts_every_entity_when_packing_and_refuses_an_event_over_ten(vendor):
    mapping = {**MAPPING, "transactionitems": {"@items": "data.items", "SourceTransactionItemNumber": "item.id"}}
    options = {"send_transactions": True}
    six = login(key=1, mapping=mapping, options=options, data={"items": [{"id": str(i)} for i in range(6)]})
    five = login(key=2, mapping=mapping, options=options, data={"items": [{"id": str(i)} for i in range(5)]})
    eleven = login(key=3, mapping=mapping, options=options, data={"items": [{"id": str(i)} for i in range(11)]})

    requests = vendor.build([six, five, eleven], TOKEN)

    assert [r.keys for r in requests] == [(1,), (2,)]
    assert vendor.refusals([six, five, eleven]) == {
        3: "Acquia CDP takes at most 10 objects per entity in one call; this event has 11 transactionitems"
    }


def test_it_signs_with_bcrypt_of_the_token_and_the_utc_date(vendor):
    (request,) = vendor.build([login()], TOKEN)
    key = request.params["accessKey"]

    assert key.startswith("$2a$10$")
    assert bcrypt.checkpw(f"{TOKEN}2024-06-21".encode(), key.encode())
    assert not bcrypt.checkpw(f"{TOKEN}2024-06-22".encode(), key.encode())
    assert key in request.sensitive and TOKEN in request.sensitive
    assert key not in request.recorded_url() and "accessKey=[redacted]" in request.recorded_url()


def test_it_makes_a_new_access_key_after_midnight_utc(vendor, utc_now_set):
    (first,) = vendor.build([login()], TOKEN)
    utc_now_set(datetime(2024, 6, 22, 0, 0, 1, tzinfo=UTC))
    (second,) = vendor.build([login()], TOKEN)

    assert first.params["accessKey"] != second.params["accessKey"]
    assert bcrypt.checkpw(f"{TOKEN}{date(2024, 6, 22)}".encode(), second.params["accessKey"].encode())


def test_it_asks_for_a_token_with_basic_auth(vendor):
    request = vendor.token_request(WHEN)

    assert request.method == "POST"
    assert request.url == "https://cs-auth.agilone.com/token"
    assert request.params == {"action": "create", "scheme": "a1webtag"}
    assert request.headers["Authorization"] == "Basic d2VidGFnX3VzZXI6UGlUYTc3MzIhOQ=="
    assert "d2VidGFnX3VzZXI6UGlUYTc3MzIhOQ==" in request.sensitive


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"token": TOKEN}),
        httpx.Response(200, json=TOKEN),
        httpx.Response(200, text=f"{TOKEN}\n"),
    ],
)
def test_it_reads_the_token_whatever_its_wrapping(vendor, response):
    assert vendor.parse_token(response, WHEN).value == TOKEN


def test_it_refuses_a_token_answer_without_token(vendor):
    with pytest.raises(ValueError, match="without a token"):
        vendor.parse_token(httpx.Response(200, json={"error": "nope"}), WHEN)


@pytest.mark.parametrize(
    ("region", "environment", "api", "auth"),
    [
        ("us-aws", "prod", "api6", "auth"),
        ("eu-aws", "preprod", "cs-api6.eu", "cs-auth.eu"),
        ("eu-aws", "prod", "api6.eu", "auth.eu"),
        ("us-gcp", "preprod", "cs-gcp-api6", "cs-gcp-auth"),
        ("us-gcp", "prod", "api8", "auth8"),
    ],
)
def test_it_picks_the_subdomains_of_the_region_and_environment(region, environment, api, auth):
    vendor = Acquia(base_url="", settings={"tenant_id": "999", "region": region, "environment": environment})

    assert vendor.api_base == f"https://{api}.agilone.com/"
    assert vendor.token_url == f"https://{auth}.agilone.com/token"


def test_explicit_urls_win_over_the_region_table():
    vendor = Acquia(
        base_url="http://127.0.0.1:8765/acquia",
        auth_url="http://127.0.0.1:8765/acquia/",
        settings={"tenant_id": "999"},
        secrets={"username": "u", "password": "p"},
    )

    vendor.check()
    (request,) = vendor.build([login()], TOKEN)
    assert request.url == "http://127.0.0.1:8765/acquia/v2/999/dw/tracker"
    assert vendor.token_request(WHEN).url == "http://127.0.0.1:8765/acquia/token"


@pytest.mark.parametrize(
    ("settings", "secrets", "message"),
    [
        ({"region": "us-aws", "environment": "prod"}, {"username": "u", "password": "p"}, "missing tenant_id"),
        ({"tenant_id": "999", "region": "us-aws", "environment": "prod"}, {"username": "u"}, "missing password"),
        ({"tenant_id": "999", "region": "mars", "environment": "prod"}, {"username": "u", "password": "p"}, "region"),
        ({"tenant_id": "999", "region": "us-aws"}, {"username": "u", "password": "p"}, "environment preprod or prod"),
        ({"tenant_id": "9/9"}, {"username": "u", "password": "p"}, "tenant_id must be"),
    ],
)
def test_it_explains_what_is_wrong_with_the_settings(settings, secrets, message):
    with pytest.raises(ConfigurationError, match=message):
        Acquia(base_url="", settings=settings, secrets=secrets).check()


def test_it_asks_for_a_fresh_token_on_401(vendor):
    result = vendor.classify(vendor.build([login()], TOKEN)[0], httpx.Response(401, text="bad credentials"))

    assert result.outcome == "failed" and result.auth_expired


def test_it_fails_on_400_and_retries_429_after_the_vendors_delay(vendor):
    (request,) = vendor.build([login()], TOKEN)

    bad = vendor.classify(request, httpx.Response(400, json={"message": "no access key"}))
    busy = vendor.classify(request, httpx.Response(429, headers={"Retry-After": "30"}))

    assert (bad.outcome, bad.auth_expired, bad.error) == ("failed", False, "HTTP 400: no access key")
    assert (busy.outcome, busy.retry_after) == ("retry", 30)
    assert vendor.classify(request, httpx.Response(200)).outcome == "delivered"


def test_it_checks_a_route_mapping():
    assert Acquia.validate_mapping("login", MAPPING, {"send_customers": True}) == []
    problems = Acquia.validate_mapping("Login", {"Cookie": "trackerId"}, {"send_transactions": True})
    assert any("Email or SourceCustomerNumber" in p for p in problems)
    assert any("send_transactions" in p for p in problems)
    assert any("camelCase" in p for p in problems)
