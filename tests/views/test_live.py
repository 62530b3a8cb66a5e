"""The live stream: rows newer than the cursors, filtered, bounded; by role."""

from __future__ import annotations

import pytest

from tests.factories import event_store, event_type_make, route_make, user_make, vendor_connection_make
from tracking.models import Attempt
from tracking.selectors import LIVE_LIMIT, live_batch

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def routes():
    event_type = event_type_make()
    return route_make(event_type, vendor_connection_make("tracify")), route_make(
        event_type, vendor_connection_make("algonomy")
    )


def test_a_poll_brings_only_what_is_newer_than_its_cursors(client, routes):
    old = event_store(routes[0].event_type, {"email": "a@b.co"}, nonce="old", routes=routes)
    client.force_login(user_make("Auditor"))
    page = client.get("/live/")
    batch = page.context["batch"]
    assert [r.event for r in batch.rows] == [old] and "every 2s" in page.content.decode()

    new = event_store(routes[0].event_type, {"email": "c@d.co"}, nonce="new", routes=routes[:1])
    delivery = new.deliveries.get()
    Attempt.objects.create(delivery=delivery, method="POST", url="u", response_status=200, outcome="delivered")
    polled = client.get("/live/", {"e": batch.event_cursor, "a": batch.attempt_cursor}, headers=HTMX)

    html = polled.content.decode()
    assert [r.kind for r in polled.context["batch"].rows] == ["attempt", "event"]
    assert "<html" not in html and 'hx-swap-oob="true"' in html and f"/events/{new.uuid}/" in html
    assert f"e={new.pk}&amp;a={Attempt.objects.get().pk}" in html  # the poller moved past them


def test_the_stream_filters_by_connection_and_stays_bounded(routes):
    tracify, algonomy = (r.connection for r in routes)
    for i in range(LIVE_LIMIT + 5):
        event_store(routes[0].event_type, {"email": "a@b.co"}, nonce=f"n-{i}", routes=routes[1:])
    assert live_batch(connection=str(tracify.pk)).rows == []
    first = live_batch(event_cursor=0, attempt_cursor=0, connection=str(algonomy.pk))
    assert len(first.rows) == LIVE_LIMIT
    assert len(live_batch(event_cursor=first.event_cursor, attempt_cursor=0).rows) == 5


def test_an_empty_filtered_stream_starts_from_the_newest_row_not_the_log_start(routes):
    event_store(routes[0].event_type, {"email": "a@b.co"}, nonce="n", routes=routes)
    batch = live_batch(event_type="other")
    assert batch.rows == [] and batch.event_cursor > 0


def test_sales_cannot_open_the_live_stream(client):
    client.force_login(user_make("Sales"))
    assert client.get("/live/").status_code == 403
