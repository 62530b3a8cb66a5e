"""The ingest API: answers, errors, and that nothing posted is lost."""

from __future__ import annotations

import json

import pytest

from tests.factories import PURCHASE, event_type_make, source_make
from tracking.models import Delivery, Event

pytestmark = pytest.mark.django_db


def post(client, body, token, path="/api/v1/events", raw=None):
    return client.post(
        path,
        data=raw if raw is not None else json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )


VALID = {"eventType": "contact-form", "data": {"email": "john@example.com", "message": "Call me"}}


def test_it_accepts_a_valid_event_and_queues_one_delivery_per_route(client, token, contact_form):
    response = post(client, {**VALID, "nonce": "n-1", "trackerId": "t-1", "eventDate": "2023-08-21T19:22:17Z"}, token)

    assert response.status_code == 202
    body = response.json()
    assert body["nonce"] == "n-1" and body["status"] == "accepted"
    event = Event.objects.get(uuid=body["id"])
    assert event.status == "ok" and event.tracker_id == "t-1" and event.source.name == "website"
    assert event.event_date.isoformat() == "2023-08-21T19:22:17+00:00"
    assert list(event.deliveries.values_list("status", "nonce")) == [("pending", f"{event.source_id}:n-1")]


def test_it_generates_a_nonce_and_dates_the_event_on_receipt_when_absent(client, token, contact_form):
    body = post(client, VALID, token).json()

    event = Event.objects.get(uuid=body["id"])
    assert len(event.nonce) == 36 and event.nonce == body["nonce"]
    assert event.event_date == event.received_at


def test_the_same_nonce_twice_is_one_event(client, token, contact_form):
    first = post(client, {**VALID, "nonce": "same"}, token).json()
    second = post(client, {**VALID, "nonce": "same"}, token)

    assert second.status_code == 202
    assert second.json() == {**first, "status": "duplicate"}
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1


def test_a_schema_violation_is_kept_as_invalid_and_never_delivered(client, token, contact_form):
    response = post(client, {"eventType": "contact-form", "data": {"email": "nope"}}, token)

    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "invalid"
    assert {e["field"]: e["message"] for e in body["errors"]} == {
        "email": "is not a valid email address",
        "message": "is required",
    }
    event = Event.objects.get(uuid=body["id"])
    assert event.status == "invalid" and event.data == {"email": "nope"}
    assert not event.deliveries.exists()


def test_an_unknown_event_type_is_kept_and_named(client, token):
    response = post(client, {"eventType": "nope", "data": {"a": 1}}, token)

    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == "unknown event type 'nope'"
    assert Event.objects.get().event_type_ref == "nope"


def test_an_archived_event_type_takes_no_events(client, token, contact_form):
    from django.utils import timezone

    contact_form.archived_at = timezone.now()
    contact_form.save()

    assert post(client, VALID, token).json()["errors"][0]["message"] == "event type 'contact-form' is archived"


def test_a_bad_event_date_is_explained(client, token, contact_form):
    body = post(client, {**VALID, "eventDate": "21/08/2023"}, token).json()

    assert body["errors"][0]["field"] == "eventDate"
    assert "RFC3339" in body["errors"][0]["message"]


@pytest.mark.parametrize("auth", [None, "wrong-token"])
def test_it_refuses_a_missing_or_wrong_token(client, contact_form, auth):
    response = post(client, VALID, auth)

    assert response.status_code == 401
    assert "token" in response.json()["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Event.objects.exists()


def test_a_disabled_source_is_refused(client, contact_form):
    source, token = source_make()
    source.enabled = False
    source.save()

    assert post(client, VALID, token).status_code == 401


def test_malformed_json_gets_a_400_that_says_where(client, token):
    response = post(client, None, token, raw='{"eventType": "contact-form",')

    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")
    assert "line 1" in response.json()["error"]


def test_nan_and_infinity_are_refused_as_malformed_json(client, token, contact_form):
    raw = '{"eventType": "contact-form", "data": {"email": "a@b.co", "message": NaN}}'
    response = post(client, None, token, raw=raw)

    assert response.status_code == 400
    assert response.json()["error"] == "malformed JSON: NaN is not a JSON number"
    assert not Event.objects.exists()


def test_a_json_array_is_not_one_event(client, token):
    assert post(client, [VALID], token).status_code == 400


def test_a_body_over_one_mebibyte_gets_413(client, token, contact_form):
    big = {**VALID, "data": {**VALID["data"], "message": "x" * (1024 * 1024)}}

    response = post(client, big, token)

    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_a_batch_stores_every_event_and_says_which_were_accepted(client, token, contact_form):
    event_type_make(PURCHASE)
    items = [VALID, {"eventType": "purchase", "data": {"email": "a@b.co"}}, {**VALID, "nonce": "b"}, "junk"]

    response = post(client, {"events": items}, token, path="/api/v1/events/batch")

    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["invalid"]) == (2, 2)
    assert [e["status"] for e in body["events"]] == ["accepted", "invalid", "accepted", "invalid"]
    assert Event.objects.count() == 4
    assert Delivery.objects.count() == 2


def test_a_batch_with_nothing_valid_is_422(client, token):
    response = post(client, {"events": [{"eventType": "x", "data": {}}]}, token, path="/api/v1/events/batch")

    assert response.status_code == 422
    assert Event.objects.count() == 1


def test_a_batch_repeating_a_nonce_stores_it_once(client, token, contact_form):
    items = [{**VALID, "nonce": "r"}, {**VALID, "nonce": "r"}]

    body = post(client, {"events": items}, token, path="/api/v1/events/batch").json()

    assert [e["status"] for e in body["events"]] == ["accepted", "duplicate"]
    assert (body["accepted"], body["duplicate"], body["invalid"]) == (1, 1, 0)
    assert Event.objects.count() == 1


def test_a_batch_sent_again_is_all_duplicates_and_still_202(client, token, contact_form):
    items = [{**VALID, "nonce": "a"}, {**VALID, "nonce": "b"}]
    post(client, {"events": items}, token, path="/api/v1/events/batch")

    response = post(client, {"events": items}, token, path="/api/v1/events/batch")

    assert response.status_code == 202
    assert (response.json()["accepted"], response.json()["duplicate"]) == (0, 2)


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": "x"}])
def test_a_batch_needs_a_list_of_events(client, token, body):
    assert post(client, body, token, path="/api/v1/events/batch").status_code == 400


def test_a_batch_holds_at_most_500_events(client, token):
    response = post(client, {"events": [VALID] * 501}, token, path="/api/v1/events/batch")

    assert response.status_code == 413
    assert "at most 500" in response.json()["error"]
    assert not Event.objects.exists()


def test_get_is_not_allowed(client, token):
    response = client.get("/api/v1/events", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 405
    assert response.json() == {"error": "method GET is not allowed here; use POST"}


def test_the_openapi_document_describes_both_endpoints(client):
    spec = client.get("/api/v1/openapi.json").json()

    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {"/api/v1/events", "/api/v1/events/batch", "/api/v1/consent"}
    for name, path in spec["paths"].items():
        responses = path["post"]["responses"]
        expected = {"200", "400", "401", "405", "411", "413", "415"} if name == "/api/v1/consent" else None
        assert set(responses) == (expected or {"202", "400", "401", "405", "411", "413", "415", "422"})
        assert all(r["content"]["application/json"]["schema"] for r in responses.values())
    limits = spec["info"]["description"]
    assert "1048576 bytes" in limits and "500 events" in limits and "nesting 32 levels" in limits
    assert spec["components"]["schemas"]["Event"]["properties"]["eventType"]["maxLength"] == 200


def test_the_openapi_document_follows_the_configured_limits(client, settings):
    settings.INGEST_MAX_BATCH = 50

    spec = client.get("/api/v1/openapi.json").json()

    batch = spec["paths"]["/api/v1/events/batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["properties"]["events"]["maxItems"] == 50


def test_the_openapi_document_takes_only_get(client):
    response = client.post("/api/v1/openapi.json")

    assert response.status_code == 405 and "GET" in response.json()["error"]
