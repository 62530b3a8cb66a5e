"""The ingest API's OpenAPI document: valid 3.0.3, generated from the event-type mirror, served readable."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.factories import CONTACT_FORM, PURCHASE, event_type_make, source_make
from tracking.demo import EVENT_TYPES
from tracking.models import Event

pytestmark = pytest.mark.django_db


def document(client) -> dict:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_document_is_valid_openapi_3_0_3_without_event_types(client):
    spec = document(client)

    validate(spec)
    assert spec["openapi"] == "3.0.3"
    body = spec["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Event"}


def test_the_document_is_valid_with_every_demo_event_type_defined(client):
    for spec in EVENT_TYPES:
        event_type_make(spec)

    validate(document(client))


def test_the_validator_would_catch_a_broken_document(client):
    spec = document(client)
    del spec["paths"]["/api/v1/events"]["post"]["responses"]["202"]["description"]

    with pytest.raises(OpenAPIValidationError):
        validate(spec)


def test_each_event_type_has_its_schema_with_its_required_fields_and_formats(client):
    event_type_make(CONTACT_FORM)
    event_type_make(PURCHASE)

    spec = document(client)

    schemas = spec["components"]["schemas"]
    purchase = schemas["PurchaseEventData"]
    assert purchase["required"] == ["email", "amount", "currency"]
    assert purchase["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    assert purchase["properties"]["email"]["format"] == "email"
    assert purchase["properties"]["amount"]["type"] == "number"
    assert "first_name" not in purchase["required"]
    contact = schemas["ContactFormEventData"]
    # States and statistics are set on the lead board, never posted.
    assert set(contact["properties"]) == {"email", "first_name", "last_name", "phone", "message"}
    assert "FR, BE" in contact["properties"]["phone"]["description"]
    assert schemas["PurchaseEvent"]["properties"]["eventType"]["enum"] == ["purchase"]


def test_the_request_body_tells_event_types_apart_by_event_type(client):
    event_type_make(CONTACT_FORM)
    event_type_make(PURCHASE)

    spec = document(client)

    body = spec["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/AnyEvent"}
    any_event = spec["components"]["schemas"]["AnyEvent"]
    assert any_event["discriminator"] == {
        "propertyName": "eventType",
        "mapping": {
            "contact-form": "#/components/schemas/ContactFormEvent",
            "purchase": "#/components/schemas/PurchaseEvent",
        },
    }
    assert set(body["examples"]) == {"contact-form", "purchase"}
    batch = spec["paths"]["/api/v1/events/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["events"]["items"] == {"$ref": "#/components/schemas/AnyEvent"}


def test_each_example_is_an_event_the_api_accepts(client):
    for spec in EVENT_TYPES:
        event_type_make(spec)
    _, token = source_make()
    spec = document(client)
    examples = spec["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]

    for example in examples.values():
        response = client.post(
            "/api/v1/events",
            data=json.dumps(example["value"]),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 202, response.json()


def test_an_archived_event_type_is_left_out(client):
    from django.utils import timezone

    event_type_make(PURCHASE, archived_at=timezone.now())

    assert "PurchaseEvent" not in document(client)["components"]["schemas"]


def test_answers_use_the_declared_components_and_name_their_required_fields(client):
    spec = document(client)

    one = spec["paths"]["/api/v1/events"]["post"]["responses"]
    assert one["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Result"}
    assert one["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/InvalidResult"}
    assert one["405"]["headers"]["Allow"]
    schemas = spec["components"]["schemas"]
    assert "error" in schemas["InvalidResult"]["required"]
    assert schemas["Result"]["required"] == ["id", "nonce", "status"]
    batch = spec["paths"]["/api/v1/events/batch"]["post"]["responses"]
    assert batch["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchRefusal"}
    assert "duplicate" in schemas["BatchResult"]["required"]
    assert "error" in schemas["BatchRefusal"]["required"]


def test_the_servers_name_the_host_asked(client):
    spec = client.get("/api/v1/openapi.json", headers={"Host": "testserver"}).json()

    assert spec["servers"] == [{"url": "http://testserver", "description": "This hub"}]


def test_a_nonce_over_200_characters_is_answered_as_too_long_and_kept_as_invalid(client, contact_form):
    _, token = source_make()
    nonce = "n" * 201
    item = {"eventType": "contact-form", "data": {"email": "a@b.co", "message": "x"}, "nonce": nonce}

    response = client.post(
        "/api/v1/events",
        data=json.dumps(item),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 422
    body = response.json()
    assert body["nonce"] is None  # not a generated nonce the caller never sent
    assert body["errors"] == [{"field": "nonce", "message": "is longer than 200 characters (201)", "value": nonce}]
    assert "nonce is longer than 200 characters" in body["error"]
    event = Event.objects.get()
    assert event.status == "invalid" and len(event.nonce) <= 200


def test_references_that_read_alike_get_a_schema_each(client):
    event_type_make({**CONTACT_FORM, "reference": "a-1"})
    event_type_make({**PURCHASE, "reference": "a1"})

    spec = document(client)

    validate(spec)
    mapping = spec["components"]["schemas"]["AnyEvent"]["discriminator"]["mapping"]
    assert mapping == {"a-1": "#/components/schemas/A1Event", "a1": "#/components/schemas/A1Event2"}
    assert spec["components"]["schemas"]["A1Event2"]["properties"]["data"] == {
        "$ref": "#/components/schemas/A1Event2Data"
    }
    assert "currency" in spec["components"]["schemas"]["A1Event2Data"]["required"]
