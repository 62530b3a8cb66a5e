"""The Algonomy rCDP module: the seed's curl examples rebuilt, required fields refused, answers classified."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import httpx
import pytest

from tracking.services.delivery import _send_all
from tracking.vendors.algonomy import REQUIRED_EVENT_DATA, Algonomy
from tracking.vendors.base import ConfigurationError, OutgoingEvent
from tracking.vendors.http import Exchange

ADDRESS = {
    "firstName": "John",
    "lastName": "Smith",
    "line1": "4/40",
    "cityCode": "Chicago",
    "stateCode": "IL",
    "zip": "60001",
    "countryCode": "IN",
    "emailAddress": "john.smith@example.com",
    "phoneNumber": "1234567890",
}
# algonomy-rcdp-direct-api.txt, "Checkout - eventCheckout", the curl body.
SEED_CHECKOUT = {
    "srcId": "WBSTR",
    "srcType": "Website",
    "requestTime": 1710000000000,
    "customer": {"email": "user@mail.com", "customerCode": "100"},
    "session": {"sessionId": "sess-abc123"},
    "page": {"url": "https://example.com/checkout"},
    "eventData": {
        "transactionId": "727",
        "tenderType": "cash",
        "checkoutType": 0,
        "totalPrice": 227.33,
        "shippingCost": 0.00,
        "discount": 0,
        "couponCode": None,
        "cartId": "cart123",
        "cartProducts": [
            {
                "productId": "814",
                "productPosition": 1,
                "action": "Checkout",
                "quantity": 1,
                "productBasePrice": 210.00,
                "tax": 17.33,
                "sku": "sku",
                "discount": 0.00,
                "couponCode": None,
            }
        ],
        "billingInfo": ADDRESS,
        "shippingInfo": ADDRESS,
    },
}
# "Transaction Complete - eventTransactionComplete", the curl body.
SEED_TRANSACTION_COMPLETE = {
    "srcId": "WBSTR",
    "srcType": "Website",
    "requestTime": 1710000000000,
    "customer": {"email": "user@mail.com", "customerCode": "100"},
    "session": {"sessionId": "sess-abc123"},
    "page": {"url": "https://example.com/order-confirmation"},
    "eventData": {
        "transactionId": "727",
        "orderId": "123",
        "tenderType": "cash",
        "checkoutType": 0,
        "totalPrice": 227.33,
        "shippingCost": 0.00,
        "discount": 0,
        "couponCode": None,
        "totalItemCount": 1,
        "cartProducts": [
            {
                "productId": "814",
                "quantity": 1,
                "productBasePrice": 210.00,
                "tax": 17.33,
                "sku": "sku",
                "discount": 0.00,
                "couponCode": None,
            }
        ],
        "billingInfo": ADDRESS,
        "shippingInfo": ADDRESS,
    },
}
CONTEXT_MAPPING = {
    "customer.email": "data.email",
    "customer.customerCode": "data.customer_code",
    "session.sessionId": "data.session",
    "page.url": "data.url",
}
WHEN = datetime(2024, 3, 9, 16, 0, tzinfo=UTC)  # 1710000000000 ms


@pytest.fixture(autouse=True)
def clock(utc_now_set):
    utc_now_set(WHEN)


@pytest.fixture
def vendor():
    return Algonomy(
        base_url="https://sandbox.algonomy.com",
        auth_url="https://rcdp-us.algonomy.com",
        settings={"tenant_hash": "ABC123", "src_id": "WBSTR", "src_type": "Website"},
        secrets={"client_id": "hub", "client_secret": "s3cret-value"},
    )


def checkout(key: int = 1, **overrides) -> OutgoingEvent:
    """A checkout as the company sends it: context fields plus the eventData object as one field."""
    values = dict(
        key=key,
        nonce="nonce-727",
        event_type="checkout",
        event_date=datetime(2024, 3, 9, 15, 59, 58, tzinfo=UTC),
        data={
            "email": "user@mail.com",
            "customer_code": "100",
            "session": "sess-abc123",
            "url": "https://example.com/checkout",
            "checkout": copy.deepcopy(SEED_CHECKOUT["eventData"]),
        },
        vendor_event_name="eventCheckout",
        mapping={**CONTEXT_MAPPING, "eventData": "data.checkout"},
    )
    return OutgoingEvent(**{**values, **overrides})


def assert_seed_fields(body: dict, seed: dict) -> None:
    for field, value in seed.items():
        assert body[field] == value, field
    # What the hub adds beyond the example: the nonce to correlate retries, and the event's own time.
    assert set(body) - set(seed) == {"clientCorrelatorId", "eventDateTime"}


def test_it_rebuilds_the_seed_checkout(vendor):
    (request,) = vendor.build([checkout()], "tok")

    assert request.method == "POST"
    assert request.url == "https://sandbox.algonomy.com/callback/rest/events/ABC123/eventCheckout"
    assert request.headers == {"Authorization": "Bearer tok"}
    assert request.keys == (1,)
    assert_seed_fields(request.json, SEED_CHECKOUT)
    assert request.json["clientCorrelatorId"] == "nonce-727"
    assert request.json["eventDateTime"] == "2024-03-09 15:59:58"


def test_it_rebuilds_the_seed_transaction_complete_field_by_field(vendor):
    seed = SEED_TRANSACTION_COMPLETE["eventData"]
    data = {
        "email": "user@mail.com",
        "customer_code": "100",
        "session": "sess-abc123",
        "url": "https://example.com/order-confirmation",
        "transaction": "727",
        "order": "123",
        "payment": "cash",
        "total": 227.33,
        "shipping": 0.0,
        "discount": 0,
        "items": seed["cartProducts"],
        "billing": ADDRESS,
        "delivery_address": ADDRESS,
    }
    mapping = {
        **CONTEXT_MAPPING,
        "eventData.transactionId": "data.transaction",
        "eventData.orderId": "data.order",
        "eventData.tenderType": "data.payment",
        "eventData.checkoutType": 0,
        "eventData.totalPrice": "data.total",
        "eventData.shippingCost": "data.shipping",
        "eventData.discount": "data.discount",
        "eventData.totalItemCount": 1,
        "eventData.cartProducts": "data.items",
        "eventData.billingInfo": "data.billing",
        "eventData.shippingInfo": "data.delivery_address",
    }
    event = checkout(data=data, mapping=mapping, vendor_event_name="eventTransactionComplete")

    (request,) = vendor.build([event], "tok")

    assert request.url.endswith("/ABC123/eventTransactionComplete")
    body = request.json
    # An absent couponCode is omitted rather than sent as null: the only difference from the example.
    assert body["eventData"] == {k: v for k, v in seed.items() if k != "couponCode"}
    assert_seed_fields({**body, "eventData": seed}, SEED_TRANSACTION_COMPLETE)


def test_it_has_the_required_fields_of_all_fifteen_events():
    assert len(REQUIRED_EVENT_DATA) == 15
    assert REQUIRED_EVENT_DATA["eventTransactionFailure"] == ("orderId", "errorCode")
    assert REQUIRED_EVENT_DATA["eventHomePage"] == () == REQUIRED_EVENT_DATA["eventLogout"]
    assert "cartProducts[].productBasePrice" in REQUIRED_EVENT_DATA["eventCartItemEdit"]


def test_it_leaves_out_an_event_missing_a_required_field_and_says_why(vendor):
    data = checkout().data
    data["checkout"].pop("billingInfo")
    data["checkout"]["tenderType"] = ""
    bad, good = checkout(key=1, data=data), checkout(key=2)

    requests = vendor.build([bad, good], "tok")

    assert [r.keys for r in requests] == [(2,)]
    assert vendor.refusals([bad, good]) == {
        1: "Algonomy eventCheckout: required eventData fields missing: tenderType, billingInfo"
    }


def test_it_checks_required_fields_inside_each_cart_product(vendor):
    event = checkout(
        vendor_event_name="eventCartItemEdit",
        mapping={**CONTEXT_MAPPING, "eventData": "data.cart"},
        data={"email": "a@b.c", "cart": {"cartId": "c1", "cartProducts": [{"productId": "1", "quantity": 1}]}},
    )

    assert vendor.build([event], "tok") == []
    assert vendor.refusal(event).endswith("cartProducts[0].action, cartProducts[0].productBasePrice")


def test_it_refuses_unknown_event_names_and_events_without_customer(vendor):
    assert "no event named 'eventBogus'" in vendor.refusal(checkout(vendor_event_name="eventBogus"))
    assert "customer is required" in vendor.refusal(checkout(mapping={"eventData": "data.checkout"}))


def test_the_event_data_is_the_events_data_when_mapped_whole(vendor):
    event = checkout(
        vendor_event_name="eventLogin",
        data={"customerCode": "100"},
        mapping={"customer.customerCode": "=100", "eventData": "data"},
    )

    (request,) = vendor.build([event], "tok")

    assert request.json["eventData"] == {"customerCode": "100"}
    assert request.json["customer"] == {"customerCode": "100"}


def test_a_route_without_an_event_data_mapping_sends_no_email(vendor):
    data = {"email": "kate@example.com", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}
    event = checkout(vendor_event_name="eventHomePage", data=data, mapping={"customer.customerCode": "=100"})

    (request,) = vendor.build([event], "tok")

    # The document's eventHomePage example sends {}: only what the route maps leaves the hub.
    assert request.json["eventData"] == {}
    assert "kate@example.com" not in request.recorded_body()
    assert "203.0.113.7" not in request.recorded_body()


def test_it_fails_a_refused_delivery_with_the_reason_instead_of_the_generic_message(vendor):
    data = checkout().data
    del data["checkout"]["shippingInfo"]

    class Session:
        def __init__(self) -> None:
            self.vendor = vendor
            self.sent: list = []

        def token(self, stale=None):
            return "tok"

        def send(self, request):
            self.sent.append(request)
            return Exchange(request, WHEN, 3, response=httpx.Response(202))

    session = Session()
    results = {s.keys: s.result for s in _send_all(session, [checkout(key=7, data=data), checkout(key=8)])}

    assert [r.keys for r in session.sent] == [(8,)]
    assert results[(8,)].outcome == "delivered"
    assert results[(7,)].outcome == "failed"
    assert results[(7,)].error == "not sent: Algonomy eventCheckout: required eventData fields missing: shippingInfo"


def test_it_asks_for_a_client_credentials_token_and_hides_the_secret(vendor):
    request = vendor.token_request(WHEN)

    assert (request.method, request.url) == ("POST", "https://rcdp-us.algonomy.com/oauth/token")
    assert request.form == {"grant_type": "client_credentials", "client_id": "hub", "client_secret": "s3cret-value"}
    assert "s3cret-value" not in request.recorded_body()
    token = vendor.parse_token(
        httpx.Response(200, json={"access_token": "eyJ", "token_type": "Bearer", "expires_in": 3600}), WHEN
    )
    assert token.value == "eyJ"
    assert 3000 < (token.expires_at - WHEN).total_seconds() < 3600


@pytest.mark.parametrize(
    ("status", "outcome", "auth_expired"),
    [
        (202, "delivered", False),
        (400, "failed", False),
        (401, "failed", True),
        (403, "failed", False),
        (404, "failed", False),
        (429, "retry", False),
        (500, "retry", False),
    ],  # fmt: skip
)
def test_it_classifies_the_documented_status_codes(vendor, status, outcome, auth_expired):
    (request,) = vendor.build([checkout()], "tok")

    result = vendor.classify(request, httpx.Response(status, json={"message": "m"}))

    assert (result.outcome, result.auth_expired) == (outcome, auth_expired)


def test_it_waits_as_long_as_a_429_says(vendor):
    (request,) = vendor.build([checkout()], "tok")

    result = vendor.classify(request, httpx.Response(429, headers={"Retry-After": "7"}))

    assert (result.outcome, result.retry_after) == ("retry", 7)


def test_it_needs_an_auth_url_and_its_settings():
    with pytest.raises(ConfigurationError, match="auth URL"):
        Algonomy(
            base_url="https://x", settings={"tenant_hash": "A", "src_id": "W", "src_type": "Website"},
            secrets={"client_id": "c", "client_secret": "s"},
        ).check()  # fmt: skip
    with pytest.raises(ConfigurationError, match="missing src_id, src_type, client_secret"):
        Algonomy(base_url="https://x", auth_url="https://a", settings={"tenant_hash": "A"},
                 secrets={"client_id": "c"}).check()  # fmt: skip


def test_it_checks_a_route_mapping_against_the_required_fields():
    assert Algonomy.validate_mapping("eventCheckout", {**CONTEXT_MAPPING, "eventData": "data.checkout"}) == []
    problems = Algonomy.validate_mapping("eventLogin", {"eventData.firstName": "data.first", "bogus": "data.x"})
    assert "eventData.customerCode is required for eventLogin but not mapped" in problems
    assert any("customer" in p for p in problems)
    assert any("'bogus'" in p for p in problems)
    assert Algonomy.validate_mapping("eventNope", {})[0].startswith("'eventNope' is not an Algonomy event name")
