"""The Webmarketer module: requests built from the seed's samples, answers classified (no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.factories import service_account_make
from tracking.vendors.base import OutgoingEvent
from tracking.vendors.webmarketer import Webmarketer

# webmarketer-api-1.0.0.txt, "Create an event", request sample (nonce as a string: the schema says string).
SEED_CREATE_EVENT = {
    "projectId": "my-project",
    "eventType": "purchase",
    "eventDate": "1955-11-12T22:00:00Z",
    "trackerId": "23jkfs1ufeuih1fh",
    "nonce": "123456789",
    "data": {
        "first_name": "John",
        "last_name": "Locke",
        "email": "john.locke@webmarketer.io",
        "amount": 100,
        "currency": "EUR",
    },
}


@pytest.fixture
def account():
    return service_account_make()


@pytest.fixture
def vendor(account):
    return Webmarketer(
        base_url="https://api.webmarketer.io/api/v1",
        auth_url="https://oauth.webmarketer.io/oidc/token",
        settings={"project_id": "my-project"},
        secrets={"service_account": account},
    )


def seed_event(**overrides) -> OutgoingEvent:
    values = dict(
        key=1,
        nonce="123456789",
        event_type="purchase",
        event_date=datetime(1955, 11, 12, 22, 0, tzinfo=UTC),
        tracker_id="23jkfs1ufeuih1fh",
        data=SEED_CREATE_EVENT["data"],
    )
    return OutgoingEvent(**{**values, **overrides})


def test_it_builds_the_seed_create_event_body(vendor):
    (request,) = vendor.build([seed_event()], "tok")

    assert request.method == "POST"
    assert request.url == "https://api.webmarketer.io/api/v1/events"
    assert request.json == SEED_CREATE_EVENT
    assert request.headers == {"Authorization": "Bearer tok"}
    assert request.keys == (1,)


def test_it_sends_the_route_event_name_and_omits_an_empty_tracker_id(vendor):
    (request,) = vendor.build([seed_event(tracker_id="", vendor_event_name="order")], "tok")

    assert request.json["eventType"] == "order"
    assert "trackerId" not in request.json


def test_it_writes_dates_in_utc_with_a_z(vendor):
    from datetime import timedelta, timezone

    paris = timezone(timedelta(hours=1))
    (request,) = vendor.build([seed_event(event_date=datetime(2022, 4, 1, 6, 0, 0, 123000, tzinfo=paris))], "t")

    assert request.json["eventDate"] == "2022-04-01T05:00:00.123Z"


def test_it_signs_the_token_assertion_as_the_sdk_does(vendor, account):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    request = vendor.token_request(now)

    assert request.url == "https://oauth.webmarketer.io/oidc/token"
    assert request.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert request.form["client_id"] == "client-1"
    assertion = request.form["assertion"]
    assert jwt.get_unverified_header(assertion) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    public = serialization.load_pem_private_key(account["privateKey"].encode(), None).public_key()
    claims = jwt.decode(
        assertion,
        public,
        algorithms=["RS256"],
        audience="https://oauth.webmarketer.io/oidc/token",
        options={"verify_exp": False},
    )
    assert claims["iss"] == "client-1"
    assert claims["sub"] == "hub@example.webmarketer.io"
    assert claims["scope"] == "full_access"
    assert claims["exp"] == int(now.timestamp()) + 300
    # The assertion never reaches an attempt record.
    assert assertion not in request.recorded_body()
    assert "[redacted]" in request.recorded_body()


def test_it_keeps_the_token_until_shortly_before_expiry(vendor):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token = vendor.parse_token(httpx.Response(200, json={"access_token": "abc", "expires_in": 3600}), now)

    assert token.value == "abc"
    assert (token.expires_at - now).total_seconds() == 3540


def test_it_rejects_a_token_answer_without_access_token(vendor):
    with pytest.raises(ValueError, match="access_token"):
        vendor.parse_token(httpx.Response(200, json={"error": "nope"}), datetime.now(UTC))


def classify(vendor, response):
    (request,) = vendor.build([seed_event()], "tok")
    return vendor.classify(request, response)


def test_it_keeps_the_event_id_webmarketer_returns(vendor):
    result = classify(vendor, httpx.Response(200, json="da717cf8-cd33-4a6d-a052-68e2096f06b9"))

    assert result.outcome == "delivered"
    assert result.vendor_ref == "da717cf8-cd33-4a6d-a052-68e2096f06b9"


def test_it_retries_a_200_without_the_promised_event_id(vendor):
    result = classify(vendor, httpx.Response(200, text="<html>maintenance</html>"))

    assert result.outcome == "retry"
    assert "without the event id" in result.error


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
def test_it_retries_transient_statuses(vendor, status):
    assert classify(vendor, httpx.Response(status, json={"message": "busy"})).outcome == "retry"


def test_it_honours_retry_after(vendor):
    result = classify(vendor, httpx.Response(429, headers={"Retry-After": "7"}, json={"statusCode": 429}))

    assert result.retry_after == 7


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_it_fails_other_client_errors_at_once(vendor, status):
    result = classify(vendor, httpx.Response(status, json={"statusCode": status, "message": "Nope"}))

    assert result.outcome == "failed"
    assert result.error == f"HTTP {status}: Nope"


def test_it_asks_for_a_fresh_token_on_401(vendor):
    result = classify(vendor, httpx.Response(401, json={"statusCode": 401, "message": "Unauthorized"}))

    assert result.outcome == "failed" and result.auth_expired


@pytest.mark.parametrize(
    "settings, secrets, message",
    [
        ({"project_id": "My Project"}, None, "project_id must be"),
        ({}, None, "missing project_id"),
        (None, {}, "missing service_account"),
        (None, {"service_account": "{not json"}, "not valid JSON"),
        (None, {"service_account": {"privateKey": "x"}}, "lacks privateKeyId"),
    ],
)
def test_it_explains_what_is_wrong_with_a_connection(account, settings, secrets, message):
    from tracking.vendors.base import ConfigurationError

    vendor = Webmarketer(
        base_url="https://x/",
        settings={"project_id": "ok-project"} if settings is None else settings,
        secrets={"service_account": account} if secrets is None else secrets,
    )
    with pytest.raises(ConfigurationError, match=message):
        vendor.check()


def test_it_marks_the_private_key_sensitive_even_when_given_as_text(account):
    import json

    vendor = Webmarketer(base_url="https://x/", settings={}, secrets={"service_account": json.dumps(account)})

    assert account["privateKey"] in vendor.sensitive()


def test_it_parses_the_private_key_once_for_checks_and_tokens(vendor, monkeypatch):
    calls = []
    load = serialization.load_pem_private_key

    def counting_load(*args, **kwargs):
        calls.append(1)
        return load(*args, **kwargs)

    monkeypatch.setattr(serialization, "load_pem_private_key", counting_load)

    vendor.check()
    vendor.check()
    vendor.token_request(datetime.now(UTC))
    vendor.token_request(datetime.now(UTC))

    assert len(calls) == 1


def test_it_parses_the_key_again_when_the_secret_changes(vendor, monkeypatch):
    vendor.check()
    other = service_account_make()
    vendor.secrets = {"service_account": other}
    request = vendor.token_request(datetime.now(UTC))

    public = serialization.load_pem_private_key(other["privateKey"].encode(), None).public_key()
    jwt.decode(request.form["assertion"], public, algorithms=["RS256"], options={"verify_aud": False})
