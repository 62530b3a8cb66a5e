"""End to end with the real Segment SDK (segment-analytics-python, gzip on) whose host is the live hub: its calls
become events with the right types, data, trackerIds and nonces, and a real Celery worker delivers them to the
vendor sandbox; route mappings read the Segment context and the identify traits."""

from __future__ import annotations

import pytest
from segment.analytics import Client

from tests.conftest import wait_until
from tests.factories import (
    PURCHASE,
    event_type_make,
    route_make,
    sandbox_connection_make,
    sandbox_vendor_connection_make,
    source_make,
)
from tests.test_api_segment import PAGE_VIEW
from tracking.models import Delivery, Event, SegmentIdentity, SegmentSettings

pytestmark = pytest.mark.integration

SHORT_RETRIES = {"retry_base_seconds": 0.2, "retry_max_seconds": 1.0, "timeout_seconds": 5}


@pytest.fixture
def hub(celery_worker, sandbox, sandbox_url):
    """Purchases go to Webmarketer and Tracardi (whose route reads the Segment context and traits), page views to
    Webmarketer; a source whose Segment settings alias "Order Completed" and rename revenue."""
    purchase, page_view = event_type_make(PURCHASE), event_type_make(PAGE_VIEW)
    webmarketer = sandbox_connection_make(sandbox_url, **SHORT_RETRIES)
    tracardi = sandbox_vendor_connection_make(sandbox_url, "tracardi", **SHORT_RETRIES)
    route_make(purchase, webmarketer)
    route_make(page_view, webmarketer)
    mapping = {"session_id": "anonymousId", "email": "traits.email", "ip": "context.ip", "amount": "data.amount"}
    route_make(purchase, tracardi, mapping=mapping, options={"method": "POST"})
    source, token = source_make()
    SegmentSettings.objects.create(
        source=source,
        event_aliases={"Order Completed": "purchase"},
        property_renames={"revenue": "amount"},
        page_view_type=page_view,
    )
    return token


@pytest.fixture
def analytics(hub, live_server):
    """The Segment SDK pointed at the live hub, gzip on, batching up to 100 messages; its errors are collected."""
    errors: list = []
    client = Client(
        write_key=hub,
        host=live_server.url,
        gzip=True,
        upload_size=100,
        upload_interval=0.2,
        max_retries=1,
        on_error=lambda exc, batch: errors.append(exc),
    )
    yield client
    client.shutdown()
    assert errors == []


def settled():
    deliveries = Delivery.objects.all()
    return deliveries.exists() and not deliveries.exclude(status__in=("delivered", "failed")).exists()


def test_identify_track_and_page_arrive_as_events_and_are_delivered(analytics, sandbox):
    analytics.identify("u-1", {"email": "kate@example.com", "firstName": "Kate"}, anonymous_id="anon-1")
    analytics.flush()  # identify first: the track's traits are those known when it arrives
    analytics.track(
        "u-1",
        "Order Completed",
        {"email": "kate@example.com", "revenue": 42.5, "currency": "EUR"},
        context={"ip": "203.0.113.9"},
        anonymous_id="anon-1",
        message_id="order-1",
    )
    analytics.page(anonymous_id="anon-2", name="Pricing", properties={"url": "https://shop.example/pricing"})
    analytics.flush()

    purchase = Event.objects.get(nonce="order-1")
    assert (purchase.event_type_ref, purchase.status, purchase.tracker_id) == ("purchase", "ok", "u-1")
    assert purchase.data == {"email": "kate@example.com", "amount": 42.5, "currency": "EUR"}
    assert purchase.context["traits"] == {"email": "kate@example.com", "firstName": "Kate"}
    assert purchase.context["context"]["library"]["name"] == "analytics-python"
    page = Event.objects.get(event_type_ref="page-view")
    assert (page.status, page.tracker_id) == ("ok", "anon-2")
    assert page.data == {"name": "Pricing", "url": "https://shop.example/pricing"}
    assert len(page.nonce) == 36  # the SDK's messageId
    assert SegmentIdentity.objects.get(external_id="anon-1").profile.traits["firstName"] == "Kate"

    wait_until(settled, timeout=60, message="the deliveries to settle")
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    webmarketer = sandbox.get("/__sandbox__/webmarketer/events").json()["data"]
    assert sorted((e["eventType"], e["nonce"]) for e in webmarketer) == sorted(
        [("purchase", purchase.vendor_nonce), ("page-view", page.vendor_nonce)]
    )
    (tracardi,) = sandbox.get("/__sandbox__/tracardi/events").json()["data"]
    assert tracardi["session"] == "anon-1"
    assert tracardi["properties"] == {"email": "kate@example.com", "ip": "203.0.113.9", "amount": 42.5}


def test_a_batch_of_100_and_a_message_id_sent_twice(analytics, sandbox):
    for i in range(100):
        analytics.track(
            f"user-{i}",
            "Order Completed",
            {"email": f"p{i}@example.com", "revenue": i, "currency": "EUR"},
            message_id=f"batch-{i}",
        )
    analytics.flush()
    analytics.track("user-0", "Order Completed", {"email": "p0@example.com", "revenue": 0, "currency": "EUR"},
                    message_id="batch-0")  # fmt: skip
    analytics.flush()

    events = Event.objects.filter(nonce__startswith="batch-")
    assert events.count() == 100 and set(events.values_list("status", flat=True)) == {"ok"}
    assert Event.objects.get(nonce="batch-7").tracker_id == "user-7"
    wait_until(settled, timeout=120, interval=0.5, message="200 deliveries to settle")
    assert Delivery.objects.filter(status="delivered").count() == 200  # Webmarketer and Tracardi, once each
    webmarketer = sandbox.get("/__sandbox__/webmarketer/events").json()
    assert webmarketer["count"] == 100
    assert sorted(e["nonce"] for e in webmarketer["data"]) == sorted(events.values_list("vendor_nonce", flat=True))
