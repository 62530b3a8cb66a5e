"""The ingest API's consent: posted with each event, and updated for a person (withdrawal) with a source token."""

from __future__ import annotations

import json

import pytest

from tests.factories import PURCHASE, event_type_make, vendor_connection_make
from tracking.models import AuditEntry, Delivery, Event
from tracking.services.ingest import source_create
from tracking.services.routes import route_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", lambda pk: None)


@pytest.fixture
def token():
    purchase = event_type_make(PURCHASE)
    route_create(event_type=purchase, connection=vendor_connection_make("tracify"), vendor_event_name="purchase")
    return source_create(name="shop", default_consent=["advertising"])[1]


def post(client, token: str, path: str, body) -> dict:
    response = client.post(
        path, data=json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.json()


def purchase(nonce: str, **envelope) -> dict:
    data = {"email": "kate@example.com", "amount": 10, "currency": "EUR"}
    return {"eventType": "purchase", "nonce": nonce, "data": data, **envelope}


def test_an_event_posted_with_its_consent_keeps_it(client, token):
    status, body = post(client, token, "/api/v1/events", purchase("o-1", consent=["analytics"]))

    assert (status, body["status"]) == (202, "accepted")
    event = Event.objects.get(nonce="o-1")
    assert (event.consent, event.consent_origin) == (["analytics"], "event")
    assert Delivery.objects.get(event=event).status == "suppressed"


def test_unreadable_consent_is_answered_422_with_the_reason_and_the_event_kept(client, token):
    status, body = post(client, token, "/api/v1/events", purchase("o-1", consent="yes"))

    assert status == 422 and body["errors"][0]["field"] == "consent"
    assert Event.objects.get(nonce="o-1").status == "invalid"


def test_a_consent_update_withdraws_what_is_still_owed_and_answers_the_counts(client, token):
    post(client, token, "/api/v1/events", purchase("o-1", trackerId="trk-1"))
    assert Delivery.objects.get().status == "pending"

    status, body = post(client, token, "/api/v1/consent", {"trackerId": "trk-1", "consent": {"advertising": False}})

    assert (status, body) == (200, {"consent": [], "events": 1, "suppressed": 1})
    assert Delivery.objects.get().last_error == "suppressed: no consent for advertising"
    entry = AuditEntry.objects.get(action="consent.update")
    assert entry.details["via"] == "api (source shop)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"consent": []}, "exactly one of an email or a trackerId"),
        ({"email": "a@b.co", "trackerId": "t", "consent": []}, "exactly one of"),
        ({"email": "a@b.co"}, "consent is required"),
        ({"email": "a@b.co", "consent": ["spying"]}, "unknown purpose"),
        ({"email": "a@b.co", "consent": [], "extra": 1}, "unknown keys: extra"),
        (["a@b.co"], "body must be a JSON object"),
    ],
)
def test_a_consent_update_that_names_nobody_or_nothing_is_a_400(client, token, body, message):
    status, answer = post(client, token, "/api/v1/consent", body)

    assert status == 400 and message in answer["error"]
    assert not AuditEntry.objects.filter(action="consent.update").exists()


def test_a_consent_update_needs_a_source_token(client, token):
    status, _ = post(client, "wrong", "/api/v1/consent", {"email": "a@b.co", "consent": []})

    assert status == 401
