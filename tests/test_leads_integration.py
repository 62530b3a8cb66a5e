"""Lead changes end to end: the lead board's endpoints → a real Celery worker → the real Webmarketer sandbox."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.factories import event_type_make, route_make, sandbox_connection_make, source_make, user_make
from tracking.models import Delivery, LeadDelivery
from tracking.services.ingest import events_ingest
from tracking.services.webmarketer import event_type_push

pytestmark = pytest.mark.integration

HTMX = {"HX-Request": "true"}


@pytest.fixture
def lead(celery_worker, sandbox, sandbox_url):
    """A contact-form type known to the sandbox's project (qualified, converted, turnover), routed there."""
    connection = sandbox_connection_make(sandbox_url, retry_base_seconds=0.2, retry_max_seconds=1.0, timeout_seconds=5)
    event_type = event_type_make()
    event_type_push(event_type=event_type, connection=connection)
    route_make(event_type, connection)
    return connection, event_type


def ingest(nonce: str = "lead-1"):
    source, _ = source_make()
    item = {
        "eventType": "contact-form",
        "nonce": nonce,
        "eventDate": "2024-05-01T09:00:00Z",
        "data": {"email": "kate@example.com", "first_name": "Kate", "last_name": "Austen", "message": "Call me"},
    }
    (result,) = events_ingest(source=source, items=[item])
    return result.event


def at_sandbox(sandbox, vendor_ref: str) -> dict:
    events = sandbox.get("/__sandbox__/webmarketer/events").json()["data"]
    return next(e for e in events if e["_id"] == vendor_ref)


def settled(**filters):
    def check():
        deliveries = LeadDelivery.objects.filter(**filters)
        return deliveries.exists() and not deliveries.exclude(status__in=("delivered", "failed")).exists()

    return check


def test_a_lead_is_qualified_then_converted_with_its_turnover_at_webmarketer(client, lead, sandbox):
    event = ingest()
    wait_until(lambda: Delivery.objects.filter(status="delivered").exists(), timeout=30, message="the event")
    vendor_ref = Delivery.objects.get().vendor_ref
    client.force_login(user_make("Sales"))

    url = f"/leads/{event.uuid}/changes"
    client.post(url, {"change": "state:qualified:1", "date": "2024-05-02T10:30"}, headers=HTMX)
    wait_until(settled(storage_key="qualified"), timeout=30, message="the qualification")
    client.post(url, {"change": "state:converted:1", "date": "2024-05-09T17:00"}, headers=HTMX)
    client.post(
        url, {"change": "statistic:turnover", "amount-turnover": "4000", "date": "2024-05-09T17:00"}, headers=HTMX
    )
    wait_until(settled(), timeout=30, message="the conversion and the turnover")

    assert set(LeadDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    stored = at_sandbox(sandbox, vendor_ref)
    assert stored["states"]["qualified"]["value"] == 1
    assert stored["states"]["qualified"]["date"] == "2024-05-02T10:30:00.000Z"
    assert stored["states"]["converted"]["value"] == 1
    assert stored["states"]["converted"]["date"] == "2024-05-09T17:00:00.000Z"
    assert stored["statistics"]["turnover"] == {**stored["statistics"]["turnover"], "value": 4000}
    assert stored["statistics"]["turnover"]["date"] == "2024-05-09T17:00:00.000Z"
    assert [u["storageKey"] for u in stored["updates"]][0] == "qualified"  # the qualification went first
    board = client.get(f"/leads/{event.uuid}/?history=1", headers=HTMX).content.decode()
    assert board.count('<span class="badge delivered">Delivered to Webmarketer</span>') == 3  # one per change
    assert "wm:" not in board  # Sales read the outcome, not the connection


def test_a_change_made_while_the_event_is_still_on_its_way_goes_once_it_arrives(client, lead, sandbox):
    sandbox.post("/__sandbox__/faults", json={"error_rate": 1.0, "vendors": ["webmarketer"]}).raise_for_status()
    event = ingest("lead-late")
    wait_until(
        lambda: Delivery.objects.filter(status="retrying").exists(), timeout=30, message="a failed first attempt"
    )
    client.force_login(user_make("Sales"))

    client.post(f"/leads/{event.uuid}/changes", {"change": "state:qualified:1"}, headers=HTMX)
    change = LeadDelivery.objects.get()
    assert change.status == "waiting"  # no Webmarketer id to address yet
    sandbox.post("/__sandbox__/faults", json={}).raise_for_status()  # Webmarketer is back

    wait_until(settled(), timeout=60, message="the change after its event")
    change.refresh_from_db()
    delivery = Delivery.objects.get(status="delivered")
    assert (change.status, change.vendor_ref) == ("delivered", delivery.vendor_ref)
    assert at_sandbox(sandbox, delivery.vendor_ref)["states"]["qualified"]["value"] == 1


def test_a_state_webmarketer_does_not_know_fails_with_its_message_explained(client, lead, sandbox):
    _, event_type = lead
    # Added here after the type was pushed: Webmarketer's type has no such state.
    event_type.fields = [*event_type.fields, {**event_type.states[0], "storageKey": "rdv", "ingestionKey": "rdv"}]
    event_type.save()
    event = ingest("lead-rdv")
    wait_until(lambda: Delivery.objects.filter(status="delivered").exists(), timeout=30, message="the event")
    client.force_login(user_make("Sales"))

    client.post(f"/leads/{event.uuid}/changes", {"change": "state:rdv:1"}, headers=HTMX)

    wait_until(settled(), timeout=30, message="the refused change")
    change = LeadDelivery.objects.get()
    assert change.status == "failed"
    assert change.last_error.startswith("HTTP 404: No storageKey matching field in this eventType — ")
    board = client.get("/leads/").content.decode()
    assert "Webmarketer has no state &quot;rdv&quot;" in board and "Retry" in board
