"""The admin shows what the hub wrote (deliveries, attempts) read-only under their parents."""

from __future__ import annotations

import pytest

from tests.factories import event_type_make, route_make, source_make, user_make, webmarketer_connection_make
from tracking.models import Attempt, Delivery
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.django_db


def test_deliveries_and_attempts_show_under_their_parents_without_add_or_edit(client):
    route_make(event_type_make(), webmarketer_connection_make())
    source, _ = source_make()
    (result,) = events_ingest(
        source=source, items=[{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "hi"}}]
    )
    delivery = Delivery.objects.get()
    Attempt.objects.create(
        delivery=delivery, method="POST", url="https://vendor.example/events", response_status=503, outcome="retry"
    )
    client.force_login(user_make("admin"))

    event_page = client.get(f"/admin/tracking/event/{result.event.pk}/change/").content.decode()
    delivery_page = client.get(f"/admin/tracking/delivery/{delivery.pk}/change/").content.decode()

    assert "wm (Webmarketer)" in event_page and "https://vendor.example/events" in delivery_page
    for html in (event_page, delivery_page):
        assert 'name="deliveries-0-status"' not in html and 'name="attempt_set-0-url"' not in html
