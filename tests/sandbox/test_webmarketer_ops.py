"""The Webmarketer sandbox beyond events: event types, trash, raw events, offline interactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

API = "/webmarketer/api/v1/projects/my-project"
FIELD = {"discriminant": False, "isPii": False, "isMostProbableLocation": False, "optional": False}
# The phone and location fields of the seed's trash sample ("Get Trashed events").
PHONE_FIELD = {**FIELD, "discriminant": True, "entity": "user", "storageKey": "phone", "isPii": True}
PHONE_FIELD |= {"type": "phone", "ingestionKey": "phone"}
LOCATION_FIELD = {**FIELD, "entity": "user", "storageKey": "location", "isMostProbableLocation": True}
LOCATION_FIELD |= {"type": "location", "ingestionKey": "location"}


@pytest.fixture
def client(webmarketer_client):
    """A client of a fresh sandbox holding a bearer token for the Webmarketer API."""
    return webmarketer_client


def event_type(reference: str, name: str = "", fields: list | None = None, **extra) -> dict:
    return {"reference": reference, "name": name or reference.title(), "fields": fields or [PHONE_FIELD], **extra}


def send_event(client, event_type_ref: str, data: dict, nonce: str) -> str:
    body = {"projectId": "my-project", "eventType": event_type_ref, "nonce": nonce, "data": data}
    response = client.post("/webmarketer/api/v1/events", json=body)
    assert response.status_code == 200
    return response.json()


def test_it_pages_event_types(client):
    for i in range(5):
        assert client.post(f"{API}/event-types", json=event_type(f"form-{i}")).status_code == 201

    first = client.get(f"{API}/event-types", params={"offset": 0, "limit": 2}).json()
    last = client.get(f"{API}/event-types", params={"offset": 4, "limit": 2}).json()

    assert (first["total"], first["count"], [t["reference"] for t in first["data"]]) == (5, 2, ["form-0", "form-1"])
    assert (last["total"], last["count"], [t["reference"] for t in last["data"]]) == (5, 1, ["form-4"])


def test_it_filters_and_sorts_event_types(client):
    client.post(f"{API}/event-types", json=event_type("contact-form", "Contact form"))
    client.post(
        f"{API}/event-types", json=event_type("newsletter", "Newsletter", [{**PHONE_FIELD, "storageKey": "email"}])
    )
    client.post(f"{API}/event-types", json=event_type("call-me-back", "Call me back"))
    client.patch(f"{API}/event-types/call-me-back", json={"archived": True})

    def refs(**params) -> list[str]:
        return [t["reference"] for t in client.get(f"{API}/event-types", params=params).json()["data"]]

    assert refs() == ["contact-form", "newsletter"]
    assert refs(archived="true") == ["call-me-back"]
    assert refs(search="FORM") == ["contact-form"]
    assert refs(storageKey="email") == ["newsletter"]
    assert refs(reference="newsletter") == ["newsletter"]
    assert refs(sort="-name") == ["newsletter", "contact-form"]
    assert client.get(f"{API}/event-types", params={"offset": "x"}).status_code == 400


def test_it_creates_gets_and_refuses_a_duplicate_event_type(client):
    created = client.post(f"{API}/event-types", json=event_type("contact-form", metadata={"form": "webmarketer"}))
    again = client.post(f"{API}/event-types", json=event_type("contact-form"))
    fetched = client.get(f"{API}/event-types/contact-form")

    assert created.status_code == 201
    assert len(created.json()["_id"]) == 24 and created.json()["archivedAt"] is None
    assert again.status_code == 409 and "already exists" in again.json()["message"]
    assert fetched.json() == created.json()
    assert client.get(f"{API}/event-types/unknown").status_code == 404
    assert client.post(f"{API}/event-types", json={"reference": "Bad Ref", "name": "x"}).status_code == 400


def test_it_trashes_an_event_that_breaks_its_type_and_still_answers_200(client):
    client.post(f"{API}/event-types", json=event_type("call-me-back", fields=[PHONE_FIELD, LOCATION_FIELD]))

    event_id = send_event(
        client, "call-me-back", {"phone": "0613", "location": {"zipcode": "wd", "country": "wd"}}, "n1"
    )

    (trashed,) = client.app_state.trash
    assert trashed["_id"] == event_id and trashed["eventTypeRef"] == "call-me-back"
    assert set(trashed) == {
        "_id",
        "projectId",
        "errors",
        "eventTypeId",
        "eventTypeRef",
        "processingDate",
        "rawEventDate",
    }
    assert trashed["errors"] == [
        {"type": "invalid-field", "field": PHONE_FIELD, "value": "0613"},
        {"type": "invalid-field", "field": LOCATION_FIELD, "value": {"zipcode": "wd", "country": "wd"}},
    ]


def test_it_trashes_an_event_missing_a_required_field(client):
    client.post(f"{API}/event-types", json=event_type("call-me-back"))

    send_event(client, "call-me-back", {"first_name": "John"}, "n1")

    assert client.app_state.trash[0]["errors"] == [{"type": "missing-field", "field": PHONE_FIELD, "value": None}]


def test_it_keeps_valid_events_and_events_of_unknown_types_out_of_the_trash(client):
    client.post(f"{API}/event-types", json=event_type("call-me-back", fields=[PHONE_FIELD, LOCATION_FIELD]))

    send_event(
        client,
        "call-me-back",
        {"phone": "+33 6 12 34 56 78", "location": {"zipcode": "33000", "country": "France"}},
        "n1",
    )
    send_event(client, "not-declared", {"phone": "0613"}, "n2")

    assert client.app_state.trash == []


def test_it_lists_trashed_events_by_date_window_and_page(client):
    client.post(f"{API}/event-types", json=event_type("call-me-back"))
    ids = [send_event(client, "call-me-back", {"phone": "0613"}, f"n{i}") for i in range(3)]
    client.app_state.trash[0]["processingDate"] = "2023-08-20T18:47:15.520Z"
    now = datetime.now(UTC)

    recent = client.get(f"{API}/events/trashed", params={"since": (now - timedelta(hours=1)).isoformat(), "limit": 1})
    second = client.get(f"{API}/events/trashed", params={"since": (now - timedelta(hours=1)).isoformat(), "offset": 1})
    old = client.get(f"{API}/events/trashed", params={"until": "2023-08-21T21:59:59.999Z"}).json()

    assert (recent.json()["count"], recent.json()["total"]) == (1, 2)
    assert {recent.json()["data"][0]["_id"], second.json()["data"][0]["_id"]} == set(ids[1:])
    assert [t["_id"] for t in old["data"]] == [ids[0]]
    assert client.get(f"{API}/events/trashed", params={"since": "yesterday"}).status_code == 400


def test_it_returns_a_raw_event_and_404_for_an_unknown_one(client):
    event_id = send_event(client, "purchase", {"amount": 100}, "n1")

    raw = client.get(f"{API}/events/{event_id}")

    assert raw.status_code == 200
    assert raw.json()["_id"] == event_id and raw.json()["nonce"] == "n1" and raw.json()["data"] == {"amount": 100}
    assert "sends" not in raw.json()
    missing = client.get(f"{API}/events/bbee1c25-8718-4c95-b720-b00567113233")
    assert missing.status_code == 404 and missing.json()["message"] == "Event not found"


def test_it_refuses_an_offline_interaction_without_wmktid_exactly_like_the_docs(client):
    response = client.post(
        f"{API}/interactions/offline",
        json={
            "date": "2023-08-01T22:00:00.000Z",
            "userData": {"email": "example@email.com"},
            "nodeData": {"cid": "5678"},
        },
    )

    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": "wmktId must be present in nodeData",
        "error": "Bad Request",
    }


def test_it_accepts_the_seed_offline_interaction(client):
    body = {
        "date": "2023-08-01T22:00:00.000Z",
        "userData": {"email": "example@email.com"},
        "nodeData": {"wmktId": "1234", "cid": "5678"},
    }

    response = client.post(f"{API}/interactions/offline", json=body)

    assert response.status_code == 201
    assert client.app_state.offline_interactions[0]["nodeData"] == {"wmktId": "1234", "cid": "5678"}


@pytest.mark.parametrize("path", ["/event-types", "/event-types/x", "/events/trashed", "/events/x"])
def test_the_new_endpoints_need_a_token(client, path):
    del client.headers["Authorization"]

    assert client.get(API + path).status_code == 401
