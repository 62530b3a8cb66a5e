"""A source's Segment settings in a real browser (Playwright, Debian's Chromium): Marketing edits them, a
mistake is shown on the form, and the Segment API then maps the source's calls with them."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import console_login
from tests.factories import PURCHASE, event_type_make, source_make, user_make
from tests.test_api_segment import PAGE_VIEW
from tests.test_console_phone_browser import PHONE, wide
from tracking.models import AuditEntry, Event, SegmentSettings

pytestmark = pytest.mark.browser


def test_marketing_edits_a_sources_segment_settings_and_the_api_uses_them(page, live_server, transactional_db):
    user_make("Marketing", password="pw-m")
    event_type_make(PURCHASE)
    event_type_make(PAGE_VIEW)
    source, token = source_make("shop")

    console_login(page, "marketing", "pw-m")
    page.get_by_role("link", name="Sources", exact=True).click()
    expect(page.locator("#source-table")).to_contain_text("CORS off")
    page.get_by_role("link", name="shop").click()
    page.click("#source-segment-link")
    expect(page.get_by_role("heading", level=1)).to_contain_text("shop")

    page.uncheck("input[name=calls][value=screen]")
    page.fill("#id_event_aliases", "Order Completed = purchas")  # a typo: no such event type
    page.fill("#id_property_renames", "revenue = amount")
    page.select_option("#id_page_view_type", "page-view")
    page.fill("#id_cors_origins", "https://shop.example")
    page.click("#segment-save")
    expect(page.locator(".errorlist")).to_contain_text("no (unarchived) event type has the reference purchas")
    assert not SegmentSettings.objects.exists()

    # The form kept what was typed: fix the typo only.
    expect(page.locator("#id_property_renames")).to_have_value("revenue = amount")
    page.fill("#id_event_aliases", "Order Completed = purchase")
    page.click("#segment-save")
    expect(page.locator("#messages")).to_contain_text("Segment settings of shop saved.")
    expect(page.locator("#id_event_aliases")).to_have_value("Order Completed = purchase")
    expect(page.locator("input[name=calls][value=screen]")).not_to_be_checked()
    assert AuditEntry.objects.get(action="segment_settings.update").user.username == "marketing"

    auth = base64.b64encode(f"{token}:".encode()).decode()
    message = {"event": "Order Completed", "userId": "u-1", "messageId": "m-1",
               "properties": {"email": "kate@example.com", "revenue": 9.5, "currency": "EUR"}}  # fmt: skip
    answer = httpx.post(
        f"{live_server.url}/v1/track",
        content=json.dumps(message),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )
    assert answer.json() == {"success": True}
    event = Event.objects.get()
    assert (event.event_type_ref, event.status, event.data["amount"]) == ("purchase", "ok", 9.5)


def test_the_source_pages_fit_a_phone(page, transactional_db):
    user_make("Marketing", password="pw-m")
    source, _ = source_make("a-source-with-a-rather-long-name")
    SegmentSettings.objects.create(source=source, cors_origins=["https://www.some-long-shop-domain.example"])
    page.set_viewport_size(PHONE)
    console_login(page, "marketing", "pw-m")

    for url in ("/sources/", f"/sources/{source.pk}/segment"):
        assert page.goto(url).status == 200
        assert wide(page) <= PHONE["width"], url
