"""The event page's replay: not-delivered only, one row at a time, a confirmation naming the vendors that
would hold a delivered event twice, rows swapped in place."""

from __future__ import annotations

import pytest

from tests.factories import event_store, event_type_make, route_make, user_make, vendor_connection_make
from tracking.models import Delivery

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def event():
    event_type = event_type_make()
    tracify = route_make(event_type, vendor_connection_make("tracify"))
    algonomy = route_make(event_type, vendor_connection_make("algonomy"))
    event = event_store(event_type, {"email": "a@b.co", "message": "x"}, nonce="n-1", routes=(tracify, algonomy))
    event.deliveries.filter(connection=tracify.connection).update(status="delivered")
    event.deliveries.filter(connection=algonomy.connection).update(status="failed")
    return event


def test_the_event_button_replays_only_the_failed_one_and_swaps_the_rows(client, event):
    client.force_login(user_make("Marketing"))

    response = client.post(f"/events/{event.uuid}/replay", headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and 'id="deliveries"' in html
    assert "1 deliveries queued again (same nonce): algonomy" in html
    assert list(Delivery.objects.filter(generation=1).values_list("connection__kind", flat=True)) == ["algonomy"]
    assert 'hx-trigger="every 2s"' in html  # the new generation is owed: the section follows it


def test_a_delivered_row_asks_first_naming_the_vendor_without_dedup(client, event):
    client.force_login(user_make("Marketing"))
    delivered = event.deliveries.get(status="delivered")

    asked = client.post(f"/events/{event.uuid}/replay", {"delivery": delivered.pk}, headers=HTMX).content.decode()

    assert "Send again what was already delivered?" in asked and "tracify (Tracify)" in asked and "twice" in asked
    assert Delivery.objects.count() == 2
    client.post(f"/events/{event.uuid}/replay", {"delivery": delivered.pk, "confirm": "1"}, headers=HTMX)
    assert Delivery.objects.get(generation=1).connection_id == delivered.connection_id


def test_a_failed_row_replays_that_connection_only(client, event):
    client.force_login(user_make("Marketing"))
    failed = event.deliveries.get(status="failed")
    client.post(f"/events/{event.uuid}/replay", {"delivery": failed.pk}, headers=HTMX)
    assert list(Delivery.objects.filter(generation=1).values_list("connection_id", flat=True)) == [failed.connection_id]


def test_auditors_see_no_replay_button_and_cannot_replay(client, event):
    client.force_login(user_make("Auditor"))
    assert "Replay" not in client.get(f"/events/{event.uuid}/").content.decode()
    assert client.post(f"/events/{event.uuid}/replay", headers=HTMX).status_code == 403
    assert Delivery.objects.count() == 2


def test_sales_cannot_open_the_deliveries_part(client, event):
    client.force_login(user_make("Sales"))
    assert client.get(f"/events/{event.uuid}/deliveries").status_code == 403


def test_the_admin_replay_action_leaves_delivered_ones_alone(client, event):
    client.force_login(user_make("Marketing", is_staff=True))

    response = client.post(
        "/admin/tracking/event/", {"action": "replay", "_selected_action": [event.pk], "index": 0}, follow=True
    )

    assert "1 deliveries queued again." in response.content.decode()
    assert list(Delivery.objects.filter(generation=1).values_list("connection__kind", flat=True)) == ["algonomy"]
