"""The Webmarketer sandbox answers state and statistic updates like the docs say, keeping their history."""

from __future__ import annotations

import pytest

from tracking.demo import EVENT_TYPES

API = "/webmarketer/api/v1/projects/my-project"
CONTACT_FORM = next(e for e in EVENT_TYPES if e["reference"] == "contact-form")
MISSING = {"statusCode": 404, "message": "No storageKey matching field in this eventType", "error": "Not Found"}


@pytest.fixture
def client(webmarketer_client):
    """A client of a fresh sandbox holding a bearer token, with the demo contact-form type declared."""
    created = webmarketer_client.post(
        f"{API}/event-types",
        json={"reference": "contact-form", "name": CONTACT_FORM["name"], "fields": CONTACT_FORM["fields"]},
    )
    assert created.status_code == 201
    return webmarketer_client


def send_event(client, event_type: str = "contact-form", nonce: str = "n-1") -> str:
    body = {
        "projectId": "my-project",
        "eventType": event_type,
        "nonce": nonce,
        "data": {"email": "kate@example.com", "message": "Call me"},
    }
    return client.post("/webmarketer/api/v1/events", json=body).json()


def stored(client, event_id: str) -> dict:
    events = client.get("/__sandbox__/webmarketer/events").json()["data"]
    return next(e for e in events if e["_id"] == event_id)


def test_it_keeps_states_and_statistics_with_their_dates_and_history(client):
    event_id = send_event(client)

    qualified = client.patch(
        f"{API}/events/{event_id}/states/qualified", json={"value": 1, "date": "2023-08-10T14:30:00.000Z"}
    )
    converted = client.patch(
        f"{API}/events/{event_id}/states/converted", json={"value": 1, "date": "2023-08-18T17:30:00.000Z"}
    )
    turnover = client.patch(f"{API}/events/{event_id}/statistics/turnover", json={"value": 4000})
    undone = client.patch(
        f"{API}/events/{event_id}/states/qualified", json={"value": 0, "date": "2023-08-19T08:00:00Z"}
    )

    assert [r.status_code for r in (qualified, converted, turnover, undone)] == [200, 200, 200, 200]
    event = stored(client, event_id)
    assert event["states"]["qualified"]["value"] == 0
    assert event["states"]["qualified"]["date"] == "2023-08-19T08:00:00Z"
    assert event["states"]["converted"] == {
        **event["states"]["converted"],
        "value": 1,
        "date": "2023-08-18T17:30:00.000Z",
    }
    assert event["statistics"]["turnover"]["value"] == 4000
    assert [(u["kind"], u["storageKey"], u["value"]) for u in event["updates"]] == [
        ("state", "qualified", 1),
        ("state", "converted", 1),
        ("statistic", "turnover", 4000),
        ("state", "qualified", 0),
    ]
    # The raw event stays as it was sent.
    raw = client.get(f"{API}/events/{event_id}").json()
    assert "states" not in raw and "updates" not in raw


def test_an_unknown_storage_key_gets_the_documented_404(client):
    event_id = send_event(client)

    typo = client.patch(f"{API}/events/{event_id}/states/convertd", json={"value": 1})
    statistic_as_state = client.patch(f"{API}/events/{event_id}/states/turnover", json={"value": 1})

    assert (typo.status_code, typo.json()) == (404, MISSING)
    assert (statistic_as_state.status_code, statistic_as_state.json()) == (404, MISSING)
    assert stored(client, event_id)["updates"] == []


def test_a_state_added_after_the_event_was_created_is_unknown_to_that_event(client):
    before = send_event(client, nonce="before")
    fields = [*CONTACT_FORM["fields"], {**CONTACT_FORM["fields"][-2], "storageKey": "rdv", "ingestionKey": "rdv"}]
    assert client.patch(f"{API}/event-types/contact-form", json={"fields": fields}).status_code == 200
    after = send_event(client, nonce="after")

    assert client.patch(f"{API}/events/{before}/states/rdv", json={"value": 1}).status_code == 404
    assert client.patch(f"{API}/events/{after}/states/rdv", json={"value": 1}).status_code == 200


def test_events_of_a_type_it_never_saw_take_any_key(client):
    event_id = send_event(client, event_type="unknown-form")

    assert client.patch(f"{API}/events/{event_id}/states/anything", json={"value": 1}).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("states/qualified", {"value": 2}, "value must be 0 or 1"),
        ("states/qualified", {"value": True}, "value must be a number"),
        ("statistics/turnover", {"value": "4000"}, "value must be a number"),
        ("statistics/turnover", {}, "value must be a number"),
        ("states/qualified", {"value": 1, "date": "yesterday"}, "date must be a valid ISO 8601 date string"),
        ("states/qualified", [1], "body must be an object"),
    ],
)
def test_it_refuses_bad_bodies_with_400(client, path, body, message):
    event_id = send_event(client)

    response = client.patch(f"{API}/events/{event_id}/{path}", json=body)

    assert (response.status_code, response.json()["message"]) == (400, message)


def test_an_unknown_event_is_404_and_no_token_is_401(client):
    event_id = send_event(client)

    unknown = client.patch(f"{API}/events/0c7f9d8e-0000-4000-8000-000000000000/states/qualified", json={"value": 1})
    other_project = client.patch(
        f"/webmarketer/api/v1/projects/other-project/events/{event_id}/states/qualified", json={"value": 1}
    )
    anonymous = client.patch(
        f"{API}/events/{event_id}/states/qualified", json={"value": 1}, headers={"Authorization": ""}
    )

    assert (unknown.status_code, unknown.json()["message"]) == (404, "Event not found")
    assert other_project.status_code == 404
    assert (anonymous.status_code, anonymous.json()) == (401, {"statusCode": 401, "message": "Unauthorized"})


def test_injected_faults_apply_to_updates(client):
    event_id = send_event(client)
    client.post("/__sandbox__/faults", json={"rate_429": 1.0, "retry_after": 3})

    response = client.patch(f"{API}/events/{event_id}/states/qualified", json={"value": 1})

    assert (response.status_code, response.headers["retry-after"]) == (429, "3")
