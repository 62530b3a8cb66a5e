"""Source pages: the list and each source's Segment settings (permissions, validation, audit)."""

from __future__ import annotations

import pytest

from tests.factories import PURCHASE, event_type_make, source_make, user_make
from tests.test_api_segment import PAGE_VIEW
from tracking.models import AuditEntry, Event, SegmentSettings

pytestmark = pytest.mark.django_db

FORM = {
    "calls": ["track", "identify", "page"],
    "event_aliases": "Order Completed = purchase\n\nCheckout Started=purchase",
    "property_renames": "orderId = order_id",
    "page_view_type": "page-view",
    "cors_origins": "https://Shop.example/\n",
}


@pytest.fixture
def source():
    event_type_make(PURCHASE)
    event_type_make(PAGE_VIEW)
    return source_make()[0]


def test_marketing_saves_segment_settings_and_the_change_is_audited(client, source):
    user = user_make("Marketing")
    client.force_login(user)

    response = client.post(f"/sources/{source.pk}/segment", FORM)

    assert response.status_code == 302
    settings = SegmentSettings.objects.get(source=source)
    assert settings.calls == ["track", "identify", "page"]
    assert settings.event_aliases == {"Order Completed": "purchase", "Checkout Started": "purchase"}
    assert settings.property_renames == {"orderId": "order_id"}
    assert settings.page_view_type.reference == "page-view" and settings.cors_origins == ["https://shop.example"]
    entry = AuditEntry.objects.get(action="segment_settings.update")
    assert entry.user == user and "event_aliases" in entry.details["fields"]
    page = client.get("/sources/").content.decode()
    assert "track, identify, page" in page and "https://shop.example" in page


def test_a_bad_table_line_or_an_unknown_event_type_is_shown_and_nothing_saved(client, source):
    client.force_login(user_make("Marketing"))

    bad_line = client.post(f"/sources/{source.pk}/segment", {**FORM, "property_renames": "orderId"})
    unknown = client.post(f"/sources/{source.pk}/segment", {**FORM, "event_aliases": "Signed Up = signup"})

    assert bad_line.status_code == 200 and "line 1: write Segment property key = data key" in bad_line.content.decode()
    assert "no (unarchived) event type has the reference signup" in unknown.content.decode()
    assert not SegmentSettings.objects.exists() and not AuditEntry.objects.exclude(action="source.create").exists()


def test_auditors_read_the_settings_and_cannot_change_them_sales_see_nothing(client, source):
    client.force_login(user_make("Auditor"))
    page = client.get(f"/sources/{source.pk}/segment")
    assert page.status_code == 200 and "segment-save" not in page.content.decode()
    assert client.post(f"/sources/{source.pk}/segment", FORM).status_code == 403

    client.force_login(user_make("Sales", username="sales"))
    assert client.get("/sources/").status_code == 403
    assert client.get(f"/sources/{source.pk}/segment").status_code == 403
    assert not SegmentSettings.objects.exists()


def test_the_event_page_shows_what_a_segment_call_brought(client, source):
    from tracking.services.segment import segment_messages_ingest

    segment_messages_ingest(
        source=source,
        call="track",
        messages=[{"event": "Coupon Applied", "anonymousId": "a-1", "context": {"ip": "203.0.113.9"}}],
    )
    client.force_login(user_make("Marketing"))

    html = client.get(f"/events/{Event.objects.get().uuid}/").content.decode()

    assert "names no event type" in html and "203.0.113.9" in html and 'id="event-context"' in html


def test_the_admin_saves_segment_settings_through_the_checked_audited_service(client, source):
    client.force_login(user_make("admin"))
    form = {"source": source.pk, "calls": '["track"]', "event_aliases": '{"Signed Up": "nope"}',
            "property_renames": "{}", "page_view_type": "", "cors_origins": "[]"}  # fmt: skip

    refused = client.post("/admin/tracking/segmentsettings/add/", form)
    saved = client.post("/admin/tracking/segmentsettings/add/", {**form, "event_aliases": '{"Signed Up": "purchase"}'})

    assert (
        refused.status_code == 200 and "no (unarchived) event type has the reference nope" in refused.content.decode()
    )
    assert saved.status_code == 302
    settings = SegmentSettings.objects.get()
    assert settings.calls == ["track"] and settings.event_aliases == {"Signed Up": "purchase"}
    assert AuditEntry.objects.exclude(action="source.create").get().action == "segment_settings.update"
    assert client.get("/admin/tracking/segmentprofile/").status_code == 200
