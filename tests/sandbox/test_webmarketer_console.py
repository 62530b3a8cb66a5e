"""Changes made by hand in Webmarketer's console, played on the sandbox (no token): the demo's story uses one."""

from __future__ import annotations

from tests.sandbox.test_webmarketer_ops import API, PHONE_FIELD, event_type

CONSOLE = "/__sandbox__/webmarketer/projects/my-project/event-types"


def test_a_console_change_makes_a_field_required_and_events_without_it_are_trashed(webmarketer_client):
    client = webmarketer_client
    optional_phone = {**PHONE_FIELD, "optional": True, "discriminant": False}
    email = {**PHONE_FIELD, "storageKey": "email", "ingestionKey": "email", "type": "email"}
    client.post(f"{API}/event-types", json=event_type("contact-form", fields=[email, optional_phone]))

    changed = client.patch(
        f"{CONSOLE}/contact-form", json={"fieldChanges": {"phone": {"optional": False}}}, headers={"Authorization": ""}
    )

    assert changed.status_code == 200
    assert [f["optional"] for f in changed.json()["fields"]] == [False, False]
    assert client.get(f"{API}/event-types/contact-form").json()["updatedAt"] == changed.json()["updatedAt"]
    body = {"projectId": "my-project", "eventType": "contact-form", "nonce": "n-1", "data": {"email": "a@b.co"}}
    assert client.post("/webmarketer/api/v1/events", json=body).status_code == 200
    (trashed,) = client.get(f"{API}/events/trashed").json()["data"]
    assert [(e["type"], e["field"]["storageKey"]) for e in trashed["errors"]] == [("missing-field", "phone")]


def test_a_console_change_names_fields_that_exist(webmarketer_client):
    webmarketer_client.post(f"{API}/event-types", json=event_type("contact-form"))

    response = webmarketer_client.patch(f"{CONSOLE}/contact-form", json={"fieldChanges": {"fax": {"optional": True}}})

    assert response.status_code == 400 and "fax" in response.json()["message"]
    assert webmarketer_client.patch(f"{CONSOLE}/unknown", json={}).status_code == 404
