"""The console in a real browser: Playwright driving Debian's Chromium against a live server."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from tests.conftest import console_login
from tests.factories import event_type_make, route_make, source_make, user_make, webmarketer_connection_make
from tracking.models import Delivery
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.browser


def login(page, username, password):
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_be_visible()


def test_staff_see_an_event_its_delivery_and_attempt_without_secrets(page, transactional_db):
    User.objects.create_superuser("root", "root@example.com", "pw-for-root")
    connection = webmarketer_connection_make()
    route_make(event_type_make(), connection)
    source, _ = source_make()
    events_ingest(
        source=source,
        items=[
            {"eventType": "contact-form", "nonce": "browser-1", "data": {"email": "kate@example.com", "message": "hi"}}
        ],
    )
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status="delivered", vendor_ref="wm-42")

    login(page, "root", "pw-for-root")
    page.goto("/admin/tracking/event/")
    page.get_by_role("link", name=str(delivery.event.uuid)).click()
    expect(page.locator(".field-nonce div.readonly")).to_have_text("browser-1")
    page.goto(f"/admin/tracking/delivery/{delivery.pk}/change/")
    assert "wm-42" in page.content()

    page.goto(f"/admin/tracking/vendorconnection/{connection.pk}/change/")
    html = page.content()
    assert "service_account" in html  # the key is named …
    assert "PRIVATE KEY" not in html  # … its value never shown


def test_the_admin_replay_action_queues_a_new_generation(page, transactional_db):
    User.objects.create_superuser("root", "root@example.com", "pw-for-root")
    route_make(event_type_make(), webmarketer_connection_make())
    source, _ = source_make()
    (result,) = events_ingest(
        source=source, items=[{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "x"}}]
    )

    login(page, "root", "pw-for-root")
    page.goto("/admin/tracking/event/")
    page.check("input.action-select")
    page.select_option("select[name=action]", "replay")
    page.click("button[name=index]")

    expect(page.locator("ul.messagelist")).to_contain_text("1 deliveries queued again.")
    assert list(result.event.deliveries.values_list("generation", "nonce").order_by("generation")) == [
        (0, result.event.vendor_nonce),
        (1, result.event.vendor_nonce),
    ]


def test_marketing_filters_the_event_log_opens_an_event_and_replays_it(page, transactional_db):
    user_make("Marketing", password="pw-m")
    route_make(event_type_make(), webmarketer_connection_make())
    source, _ = source_make()
    items = [{"eventType": "contact-form", "data": {"email": f"p{i}@example.com", "message": "hi"}} for i in range(55)]
    items.append({"eventType": "contact-form", "data": {"email": "broken", "message": "hi"}})
    events_ingest(source=source, items=items)

    console_login(page, "marketing", "pw-m")
    expect(page).to_have_url("/dashboard/")  # Marketing land on the dashboard
    page.get_by_role("link", name="Events", exact=True).click()
    expect(page).to_have_url("/events/")
    expect(page.locator("#event-rows tr:not(.more)")).to_have_count(50)
    page.click("text=Load more")
    expect(page.locator("#event-rows tr:not(.more)")).to_have_count(56)

    page.select_option("select[name=status]", "invalid")
    expect(page.locator("#event-rows tr")).to_have_count(1)
    page.locator("#event-rows a").first.click()
    expect(page.locator("text=Why it is invalid")).to_be_visible()

    page.goto("/events/?q=p3@example.com")
    page.locator("#event-rows a").first.click()
    page.click("text=Replay the ones not delivered")
    expect(page.locator(".messages")).to_contain_text("1 deliveries queued again")
    expect(page.locator("table.grid tbody tr[id^=delivery-]")).to_have_count(2)
