"""Event log and event detail pages: filters, keyset pages, replay, raw event, permissions."""

from __future__ import annotations

import re

import pytest
import respx
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from httpx import Response

from tests.factories import (
    event_type_make,
    route_make,
    source_make,
    user_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.models import Attempt, Delivery, TrashedEvent
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def routed():
    connection = webmarketer_connection_make()
    route_make(event_type_make(), connection)
    source, _ = source_make()
    return connection, source


def ingest(source, n: int):
    items = [
        {
            "eventType": "contact-form",
            "nonce": f"n-{i}",
            "data": {"email": f"p{i}@example.com", "message": "hi"},
        }
        for i in range(n)
    ]
    return events_ingest(source=source, items=items)


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/events/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_sales_users_cannot_open_the_event_log(client):
    client.force_login(user_make("Sales"))
    assert client.get("/events/").status_code == 403


def test_the_event_log_pages_by_keyset_newest_first(client, routed):
    _, source = routed
    ingest(source, 55)
    client.force_login(user_make("Auditor"))

    first = client.get("/events/")
    assert first.status_code == 200
    assert len(first.context["page"].items) == 50
    assert first.context["page"].items[0].nonce == "n-54"
    cursor = first.context["page"].next_cursor
    second = client.get("/events/", {"after": cursor}, headers={"HX-Request": "true"})
    nonces = [e.nonce for e in second.context["page"].items]
    assert len(nonces) == 5 and "n-0" in nonces and second.context["page"].next_cursor == ""
    assert b"<html" not in second.content  # only rows, for the "Load more" swap


def test_the_event_log_filters_by_status_and_text(client, routed):
    _, source = routed
    ingest(source, 3)
    events_ingest(source=source, items=[{"eventType": "contact-form", "data": {"email": "nope", "message": "x"}}])
    client.force_login(user_make("Marketing"))

    invalid = client.get("/events/", {"status": "invalid"}).context["page"].items
    assert [e.status for e in invalid] == ["invalid"]
    found = client.get("/events/", {"q": "p1@example.com"}).context["page"].items
    assert [e.nonce for e in found] == ["n-1"]


def test_the_event_detail_shows_errors_deliveries_and_attempts(client, routed):
    _, source = routed
    (bad,) = events_ingest(source=source, items=[{"eventType": "contact-form", "data": {"email": "nope"}}])
    client.force_login(user_make("Auditor"))

    html = client.get(f"/events/{bad.event.uuid}/").content.decode()

    assert "Why it is invalid" in html and "nope" in html
    assert "invalid events are not sent" in html
    assert "Replay" not in html  # auditors change nothing


def test_marketing_replays_an_event_with_the_same_nonce(client, routed):
    _, source = routed
    (result,) = ingest(source, 1)
    client.force_login(user_make("Marketing"))

    response = client.post(f"/events/{result.event.uuid}/replay", follow=True)

    assert "1 deliveries queued again" in response.content.decode()
    nonce = result.event.vendor_nonce
    assert list(Delivery.objects.order_by("generation").values_list("generation", "nonce")) == [(0, nonce), (1, nonce)]


def test_auditors_cannot_replay(client, routed):
    _, source = routed
    (result,) = ingest(source, 1)
    client.force_login(user_make("Auditor"))
    assert client.post(f"/events/{result.event.uuid}/replay").status_code == 403
    assert Delivery.objects.count() == 1


@respx.mock
def test_the_raw_event_is_fetched_from_webmarketer_on_demand(client, routed):
    connection, source = routed
    ingest(source, 1)
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status="delivered", vendor_ref="wm-7")
    respx.post(connection.auth_url).mock(return_value=Response(200, json={"access_token": "t", "expires_in": 3600}))
    raw = respx.get("https://api.webmarketer.io/api/v1/projects/my-project/events/wm-7").mock(
        return_value=Response(
            200, json={"_id": "wm-7", "eventType": "contact-form", "data": {"email": "p0@example.com"}}
        )
    )
    client.force_login(user_make("Auditor"))

    detail = client.get(f"/events/{delivery.event.uuid}/").content.decode()
    assert f"/deliveries/{delivery.pk}/raw" in detail
    html = client.get(f"/deliveries/{delivery.pk}/raw", headers={"HX-Request": "true"}).content.decode()

    assert raw.called
    assert "wm-7" in html and "p0@example.com" in html


@respx.mock
def test_a_raw_event_webmarketer_does_not_know_is_explained(client, routed):
    connection, source = routed
    ingest(source, 1)
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status="delivered", vendor_ref="wm-404")
    respx.post(connection.auth_url).mock(return_value=Response(200, json={"access_token": "t", "expires_in": 3600}))
    respx.get(url__regex=r".*/events/wm-404$").mock(
        return_value=Response(404, json={"statusCode": 404, "message": "Event not found"})
    )
    client.force_login(user_make("Auditor"))

    html = client.get(f"/deliveries/{delivery.pk}/raw").content.decode()

    assert "Could not read the event at Webmarketer" in html and "Event not found" in html


def test_home_sends_each_role_to_its_first_page(client):
    client.force_login(user_make("Auditor"))
    assert client.get("/").url == "/dashboard/"
    client.force_login(user_make("Sales"))
    assert client.get("/").url == "/leads/"
    client.force_login(user_make(username="nobody"))
    assert client.get("/").status_code == 403


def test_the_event_detail_links_its_webmarketer_trash_items(client, routed):
    connection, source = routed
    (result,) = ingest(source, 1)
    item = TrashedEvent.objects.create(
        wm_id="trash-1", connection=connection, event_type_ref="contact-form", event=result.event
    )
    client.force_login(user_make("Auditor"))

    html = client.get(f"/events/{result.event.uuid}/").content.decode()

    assert f'href="/trash/{item.pk}/"' in html and "open" in html


def test_the_event_detail_shows_each_attempt_with_the_vendors_answer(client, routed):
    _, source = routed
    (result,) = ingest(source, 1)
    delivery = Delivery.objects.get()
    Attempt.objects.create(
        delivery=delivery,
        method="POST",
        url="https://api.webmarketer.io/api/v1/events",
        request_body='{"nonce": "n-0"}',
        response_status=503,
        response_body='{"message": "try later"}',
        outcome="retry",
        error="HTTP 503: try later",
    )
    client.force_login(user_make("Auditor"))

    html = client.get(f"/events/{result.event.uuid}/").content.decode()

    assert "1 attempt<" in html and "https://api.webmarketer.io/api/v1/events" in html
    assert "HTTP 503: try later" in html and "try later&quot;}" in html


# -- the log's delivery badges -------------------------------------------------------------------------------
def badges(response, event) -> list[tuple[str, str]]:
    """(connection, status) of the badges in the event's log row."""
    (row,) = [e for e in response.context["page"].items if e.pk == event.pk]
    return [(b.connection, b.status) for b in row.delivery_badges]


@pytest.fixture
def two_vendors(routed):
    connection, source = routed
    tracify = vendor_connection_make("tracify")
    route_make(connection.routes.get().event_type, tracify)
    return connection, tracify, source


def test_the_event_log_shows_where_each_event_stands_at_each_vendor(client, two_vendors):
    webmarketer, tracify, source = two_vendors
    (result,) = ingest(source, 1)
    event = result.event
    Delivery.objects.filter(connection=webmarketer).update(status="failed")
    Delivery.objects.create(event=event, connection=webmarketer, generation=1, nonce="n", status="delivered")
    Delivery.objects.filter(connection=tracify).update(status="failed")
    client.force_login(user_make("Auditor"))

    response = client.get("/events/")

    # The latest generation per connection: the replay that was delivered, not the first send that failed.
    assert badges(response, event) == [("tracify", "failed"), (webmarketer.name, "delivered")]
    html = response.content.decode()
    assert f'<span class="badge delivered" title="{webmarketer.name}: Delivered">{webmarketer.name} ✓</span>' in html
    assert '<span class="badge failed" title="tracify: Failed">tracify ✗</span>' in html


def test_an_event_webmarketer_trashed_shows_as_trashed_in_the_log_until_resolved(client, routed):
    connection, source = routed
    (result,) = ingest(source, 1)
    Delivery.objects.update(status="delivered", vendor_ref="wm-1")
    item = TrashedEvent.objects.create(
        wm_id="trash-1", connection=connection, event_type_ref="contact-form", event=result.event
    )
    client.force_login(user_make("Auditor"))

    response = client.get("/events/")

    assert badges(response, result.event) == [(connection.name, "trashed")]
    (cell,) = re.findall(r'<td class="delivery-badges">.*?</td>', response.content.decode())
    assert f"{connection.name} trashed" in cell and "✓" not in cell and "Delivered" not in cell

    TrashedEvent.objects.filter(pk=item.pk).update(resolved=True)
    assert badges(client.get("/events/"), result.event) == [(connection.name, "delivered")]


def test_the_event_log_reads_the_delivery_badges_of_a_page_in_a_fixed_number_of_queries(client, two_vendors):
    _, _, source = two_vendors
    client.force_login(user_make("Auditor"))
    ingest(source, 2)
    with CaptureQueriesContext(db) as few:
        client.get("/events/")
    events_ingest(
        source=source,
        items=[
            {"eventType": "contact-form", "nonce": f"more-{i}", "data": {"email": "x@example.com", "message": "m"}}
            for i in range(20)
        ],
    )
    with CaptureQueriesContext(db) as many:
        response = client.get("/events/")

    assert len(response.context["page"].items) == 22
    assert len(many) == len(few)
